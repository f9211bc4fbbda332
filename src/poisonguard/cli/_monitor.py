"""``poisonguard monitor ...``: baselines, logging, checks, alerts, schedules, history and the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from ..errors import DetectorFailedError, NotFoundError, ThresholdExceeded
from ..store import ENV_DB, open_store, resolve_db_url
from ._app import app, console, err_console

__all__: list[str] = []

monitor_app = typer.Typer(help="Monitor deployed models: baselines, checks, drift, poisoning signatures, alerts.",
                          no_args_is_help=True)
probes_app = typer.Typer(help="Probe sets: rows carrying a suspected or simulated trigger.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
monitor_app.add_typer(probes_app, name="probes")

_DB = typer.Option(None, "--db", envvar=ENV_DB,
                   help="Store: SQLAlchemy URL or SQLite path [default: .poisonguard/poisonguard.db].")
_MODEL = typer.Option(..., "--model", help="Name of the monitored model.")
_CONFIG = typer.Option(None, "--config", help="Thresholds, tests and alert channels (TOML or YAML).")
_JSON = typer.Option(False, "--json", help="Print the result as JSON.")


def _monitor(model: str, db: Optional[str], config: Optional[Path] = None, *, create: bool = False):  # type: ignore[no-untyped-def]
    """A Monitor over the store; reading commands refuse a missing store as an unknown model."""
    from ..monitoring import Monitor
    from ..store._engine import _sqlite_path

    path = _sqlite_path(resolve_db_url(db))
    if not create and path is not None and not path.exists():
        raise NotFoundError(f"unknown model {model!r}: no store at {path} (record a baseline first: "
                            "poisonguard monitor baseline)")
    return Monitor(model, store=open_store(db, create=create), config=config)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, allow_nan=False) + "\n")


@monitor_app.command("baseline")
def baseline_cmd(
    model: str = _MODEL,
    data: Path = typer.Option(..., "--data", help="Labelled validation set (CSV or Parquet)."),
    label: str = typer.Option(..., "--label", help="Column of true labels."),
    pred: Optional[str] = typer.Option(None, "--pred", help="Column of the model's predictions."),
    conf: Optional[str] = typer.Option(None, "--conf", help="Column of the prediction confidences (with --pred)."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Saved model to predict with (instead of --pred)."),
    features: Optional[str] = typer.Option(None, "--features", help="Input columns to keep reference distributions of "
                                           "[default: all but label, prediction, confidence, id and time]."),
    id_col: str = typer.Option("id", "--id", help="Id column (not a feature)."),
    ts_col: str = typer.Option("timestamp", "--timestamp", help="Time column (not a feature)."),
    db: Optional[str] = _DB,
    as_json: bool = _JSON,
) -> None:
    """Record a baseline: metrics (macro and per class), prediction/confidence and feature distributions."""
    from ..errors import InputError
    from ..validation import parse_columns

    if (pred is None) == (model_dir is None):
        raise InputError("give exactly one of --pred COL and --model-dir DIR")
    with _monitor(model, db, create=True) as mon:
        res = mon.record_baseline(data, label=label, pred=pred, conf=conf, model_dir=model_dir,
                                  features=parse_columns(features), id_col=id_col, ts_col=ts_col)
    if as_json:
        _print_json(res.to_dict())
        return
    m = res.metrics
    console.print(f"baseline {res.baseline_id} for model {res.model}: {res.n_rows} rows, {len(res.classes)} classes, "
                  f"accuracy {m['accuracy']:.4f}, precision {m['precision']:.4f}, recall {m['recall']:.4f}, "
                  f"F1 {m['f1']:.4f}; {len(res.features)} feature(s)"
                  f"{', confidence' if res.has_confidence else ''}", highlight=False)


@monitor_app.command("log")
def log_cmd(
    file: Path = typer.Argument(..., help="Predictions (CSV or Parquet): ids, predictions, timestamps, features."),
    model: str = _MODEL,
    id_col: str = typer.Option("id", "--id", help="Id column (late labels join on it)."),
    pred: str = typer.Option("prediction", "--pred", help="Prediction column."),
    ts_col: str = typer.Option("timestamp", "--timestamp", help="Time column (epoch seconds or ISO-8601) [default: now]."),
    conf: Optional[str] = typer.Option(None, "--conf", help="Confidence column [default: 'confidence' if present]."),
    label: Optional[str] = typer.Option(None, "--label", help="True-label column, if known already."),
    features: Optional[str] = typer.Option(None, "--features", help="Input columns to store [default: the baseline's]."),
    probe: Optional[str] = typer.Option(None, "--probe", help="These rows are the named probe set's predictions."),
    db: Optional[str] = _DB,
) -> None:
    """Log production predictions for later checks."""
    from ..validation import parse_columns

    with _monitor(model, db, create=True) as mon:
        res = mon.log(file, pred=pred, id_col=id_col, ts_col=ts_col, conf=conf, label=label,
                      features=parse_columns(features), probe=probe)
    from ..monitoring._results import iso

    console.print(f"logged {res.n_logged} prediction(s) for model {res.model} ({iso(res.ts_min)} .. {iso(res.ts_max)})"
                  f"{f'; {len(res.features)} feature column(s)' if res.features else ''}", highlight=False)


@monitor_app.command("labels")
def labels_cmd(
    file: Path = typer.Argument(..., help="Late labels (CSV or Parquet): ids and true labels."),
    model: str = _MODEL,
    id_col: str = typer.Option("id", "--id", help="Id column (as logged)."),
    label: str = typer.Option("label", "--label", help="True-label column."),
    db: Optional[str] = _DB,
) -> None:
    """Join true labels that arrived later to the logged predictions, by id."""
    with _monitor(model, db) as mon:
        res = mon.labels(file, id_col=id_col, label=label)
    extra = f"; {res.n_unmatched} id(s) match no prediction (e.g. {', '.join(res.unmatched_examples)})" \
        if res.n_unmatched else ""
    console.print(f"labelled {res.n_matched} of {res.n_given} prediction(s) of model {res.model}{extra}",
                  highlight=False, markup=False)


@probes_app.command("add")
def probes_add_cmd(
    file: Path = typer.Argument(..., help="Probe rows (CSV or Parquet) carrying the suspected or simulated trigger."),
    model: str = _MODEL,
    name: str = typer.Option(..., "--name", help="Name of the probe set."),
    label: Optional[str] = typer.Option(None, "--label", help="True labels of the probes (else baseline shares)."),
    db: Optional[str] = _DB,
) -> None:
    """Register a probe set; log its predictions with `monitor log --probe NAME` or `monitor probes run`."""
    with _monitor(model, db) as mon:
        res = mon.register_probes(name, file, label=label)
    console.print(f"probe set {res.name} of model {res.model}: {res.n_rows} rows (expected shares from "
                  f"{res.expected_from})", highlight=False)


@probes_app.command("run")
def probes_run_cmd(
    model: str = _MODEL,
    name: str = typer.Option(..., "--name", help="Name of the probe set."),
    model_dir: Path = typer.Option(..., "--model-dir", help="The deployed model (safe format) to predict with."),
    db: Optional[str] = _DB,
) -> None:
    """Predict a registered probe set with the deployed model and log the predictions as probes."""
    with _monitor(model, db) as mon:
        res = mon.run_probes(name, model_dir)
    console.print(f"logged {res.n_logged} probe prediction(s) of set {name} for model {model}", highlight=False)


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "–" if v is None or (isinstance(v, float) and v != v) else format(v, spec)


def _print_check(res: Any) -> None:
    from ..monitoring._results import iso

    console.print(f"model {res.model} · window {iso(res.window_start)} .. {iso(res.window_end)} · "
                  f"{res.n_predictions} predictions, {res.n_labelled} labelled, {res.n_probes} probes · "
                  f"[bold]{res.status.upper()}[/]", highlight=False)
    if res.error:
        err_console.print(f"poisonguard: check failed: {res.error}", highlight=False, markup=False)
    shown = [c for c in res.checks if c.label is None or c.breached]
    if shown:
        t = Table("metric", "class", "value", "baseline", "change", "max drop", "min", "support", "alert")
        for c in shown:
            t.add_row(c.metric, c.label or "macro", _fmt(c.value), _fmt(c.baseline), _fmt(c.change, "+.3f"),
                      _fmt(c.max_drop), _fmt(c.min), str(c.support), "ALERT" if c.breached else (c.note or "ok"))
        console.print(t)
    tests = [d for d in res.drift if d.kind != "input" or d.drifted]
    if tests:
        t = Table("drift", "test", "statistic", "p", "PSI", "decision")
        for d in tests:
            t.add_row(d.name, d.test, _fmt(d.statistic, ".4g"), _fmt(d.p_value, ".2g"), _fmt(d.psi),
                      "DRIFT" if d.drifted else "stable")
        n_inputs = sum(d.kind == "input" for d in res.drift)
        console.print(t)
        if n_inputs:
            console.print(f"input drift: {sum(d.drifted for d in res.drift if d.kind == 'input')} of {n_inputs} "
                          "feature(s) drifted", highlight=False)
    sigs = [s for s in res.signatures if s.present or s.signature == "probe"]
    for s in sigs:
        console.print(f"signature {s.signature}[{s.label}]: {s.detail}; p = {_fmt(s.p_value, '.2g')} "
                      f"(threshold {s.threshold:.2g}) -> {'PRESENT' if s.present else 'absent'}", highlight=False,
                      markup=False)
    for a in res.alerts:
        tag = " (within cooldown: not re-sent)" if a.rule in res.suppressed else ""
        console.print(f"ALERT [{a.severity}] {a.rule}: {a.message}{tag}", highlight=False, markup=False)
    for d in res.deliveries:
        if not d.ok:
            err_console.print(f"poisonguard: alert channel {d.channel} FAILED after {d.attempts} attempt(s): {d.error}",
                              highlight=False, markup=False)


@monitor_app.command("check")
def check_cmd(
    model: str = _MODEL,
    window: str = typer.Option("1d", "--window", help="Window length ending at --end: 30m, 24h, 1d, 7d ..."),
    end: Optional[str] = typer.Option(None, "--end", help="End of the window (ISO-8601 or epoch seconds) [default: now]."),
    config: Optional[Path] = _CONFIG,
    notify: bool = typer.Option(True, "--notify/--no-notify", help="Send alerts to the configured channels."),
    db: Optional[str] = _DB,
    as_json: bool = _JSON,
) -> None:
    """Check a window against the baseline. Exit 3 when an alert fires, 5 when the check itself failed."""
    with _monitor(model, db, config) as mon:
        res = mon.check(window=window, end=end, notify=notify)
    if as_json:
        _print_json(res.to_dict())
    else:
        _print_check(res)
    res.raise_for_status()


@monitor_app.command("history")
def history_cmd(
    model: str = _MODEL,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the newest N checks."),
    db: Optional[str] = _DB,
    as_json: bool = _JSON,
) -> None:
    """The stored checks of a model, oldest first."""
    from ..reports import history_frame

    with _monitor(model, db) as mon:
        frame = history_frame(mon.history(limit=limit))
    if as_json:
        _print_json(json.loads(frame.to_json(orient="records")))
        return
    if frame.empty:
        console.print(f"model {model}: no stored check yet", highlight=False)
        return
    t = Table(*frame.columns)
    for row in frame.itertuples(index=False):
        t.add_row(*[_fmt(v, ".4f") if isinstance(v, float) else str(v) for v in row])
    console.print(t)


@monitor_app.command("report")
def report_cmd(
    model: str = _MODEL,
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
    config: Optional[Path] = _CONFIG,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the newest N checks."),
    db: Optional[str] = _DB,
) -> None:
    """Write a self-contained HTML report: metrics against baseline and thresholds, alerts, per-class recall."""
    from ..reports import write_report

    with _monitor(model, db, config) as mon:
        path = write_report(mon, out, limit=limit)
    console.print(f"wrote {path}", highlight=False)


@monitor_app.command("models")
def models_cmd(db: Optional[str] = _DB) -> None:
    """List the monitored models."""
    from ..monitoring import list_models

    try:
        store = open_store(db)
    except Exception:  # no store yet: no models
        console.print("no monitored models")
        return
    with store:
        names = list_models(store)
    console.print("\n".join(names) if names else "no monitored models", highlight=False)


@monitor_app.command("schedule")
def schedule_cmd(
    model: str = _MODEL,
    cron: str = typer.Option("0 2 * * *", "--cron", help="Cron schedule [default: daily at 2 AM]."),
    window: str = typer.Option("1d", "--window", help="Window each check covers."),
    config: Optional[Path] = _CONFIG,
    log_file: Optional[Path] = typer.Option(None, "--log-file", help="Append each run's output to this file."),
    install: bool = typer.Option(False, "--install", help="Install the line in the user's crontab."),
    db: Optional[str] = _DB,
) -> None:
    """Print (with --install, install) the crontab line that runs `monitor check` on schedule."""
    from ..monitoring import cron_line, install_cron, parse_duration

    parse_duration(window, what="--window")
    line = cron_line(model, cron=cron, window=window, config=str(config.resolve()) if config else None,
                     db=db, log_file=str(log_file.resolve()) if log_file else None)
    if install:
        install_cron(line)
        console.print(f"installed in crontab: {line}", highlight=False, markup=False)
    else:
        sys.stdout.write(line + "\n")


@monitor_app.command("run")
def run_cmd(
    model: str = _MODEL,
    every: str = typer.Option("24h", "--every", help="Time between checks."),
    window: Optional[str] = typer.Option(None, "--window", help="Window of each check [default: --every]."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=1, help="Stop after N checks [default: never]."),
    config: Optional[Path] = _CONFIG,
    db: Optional[str] = _DB,
) -> None:
    """Run `monitor check` in a loop (for places without cron). Exit 3/5 if any check alerted/failed."""
    from ..monitoring import parse_duration, run_loop

    seconds = parse_duration(every, what="--every")
    statuses: list[str] = []
    with _monitor(model, db, config) as mon:
        def step() -> None:
            res = mon.check(window=window or every)
            statuses.append(res.status)
            _print_check(res)

        runs = run_loop(step, every=seconds, iterations=iterations)
    errors = [r.error for r in runs if not r.ok]
    if "failed" in statuses or errors:
        raise DetectorFailedError(f"{len(errors) + statuses.count('failed')} of {len(runs)} scheduled check(s) "
                                  f"failed: {'; '.join(e for e in errors if e)[:300]}")
    if "alert" in statuses:
        raise ThresholdExceeded(f"{statuses.count('alert')} of {len(runs)} scheduled check(s) fired alerts")
