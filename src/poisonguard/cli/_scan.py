"""``poisonguard scan`` and ``poisonguard detectors``: thin layers over :func:`poisonguard.scan`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .._io import check_outputs
from ..config import check_settings, load_scan_config, parse_set_options
from ..distributed import is_partitioned, load_partitioned
from ..errors import InputError, ThresholdExceeded
from ..scan import ScanResult, scan
from ..scan._scan import FIT_SAMPLE_ROWS
from ..validation import check_count, check_fraction, check_output_columns, load_table
from ._app import app, console, err_console

__all__: list[str] = []


@app.command("scan")
def scan_cmd(
    data: Path = typer.Argument(..., help="Training table: CSV or Parquet file, or a directory or glob of Parquet partitions."),
    label: Optional[str] = typer.Option(None, "--label", "-l", help="Label column (without it only label-free detectors run)."),
    id_col: Optional[str] = typer.Option(None, "--id", help="Row id column, copied to the outputs."),
    source_col: Optional[str] = typer.Option(None, "--source", help="Column naming each row's data source."),
    features: Optional[str] = typer.Option(None, "--features", help="Comma-separated feature columns \\[default: all others]."),
    detectors: Optional[str] = typer.Option(None, "--detectors", "-d", help="Comma-separated detector names \\[default: the default set]."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Detector setting, e.g. --set knn_label.n_neighbors=15 (repeatable)."),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON or TOML file with `detectors` and per-detector settings."),
    contamination: str = typer.Option("auto", "--contamination", help="'auto' (flag what stands out) or a fraction to flag."),
    top: Optional[int] = typer.Option(None, "--top", help="Flag exactly the K most suspicious rows."),
    out: Path = typer.Option(Path("suspicious_samples.csv"), "--out", "-o", help="Flagged rows for review."),
    scores: Optional[str] = typer.Option(None, "--scores", help="Write every row's scores here (--engine dask: a path ending in / gets one Parquet file per partition)."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary instead of the table."),
    fail_over: Optional[float] = typer.Option(None, "--fail-over", help="Exit 3 when the flagged fraction exceeds RATE."),
    seed: int = typer.Option(0, "--seed", help="Random seed for every detector."),
    ledger: Optional[str] = typer.Option(None, "--ledger", help="Record the scan against this ledger version (NAME or NAME@N)."),
    since: Optional[str] = typer.Option(None, "--since", help="Score only rows added since this trusted ledger version."),
    db: Optional[str] = typer.Option(None, "--db", envvar="POISONGUARD_DB", help="Store URL for --ledger/--since."),
    key: Optional[Path] = typer.Option(None, "--key", envvar="POISONGUARD_LEDGER_KEY", help="Ledger signing key for --ledger."),
    engine: str = typer.Option("local", "--engine", help="'local' (one process) or 'dask' (partitions scored on a Dask cluster; extra poisonguard\\[dask])."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786); without it --engine dask starts a local cluster."),
    workers: int = typer.Option(2, "--workers", help="Workers of the local Dask cluster (--engine dask without --scheduler)."),
    memory_limit: str = typer.Option("4GB", "--memory-limit", help="Memory limit per worker of the local Dask cluster."),
    sample_rows: int = typer.Option(FIT_SAMPLE_ROWS, "--sample-rows", help="A larger table is scanned by fitting the detectors on a stratified sample of this many rows and scoring every other row against them (both engines: the same rows, the same result); 0 fits on every row (--engine local only)."),
) -> None:
    """Rank the rows of a training table by how likely they are poisoned; write suspicious_samples.csv."""
    if engine not in ("local", "dask"):
        raise InputError(f"--engine must be 'local' or 'dask', got {engine!r}")
    if engine == "local" and (scheduler is not None):
        raise InputError("--scheduler needs --engine dask")
    if engine == "dask" and (since or ledger):
        raise InputError("--since and --ledger are not supported with --engine dask yet; use --engine local")
    partitioned = is_partitioned(data)
    check_outputs({"--out": out, "--scores": scores}, {"DATA": data, "--config": config, "--key": key},
                  input_dirs={"DATA": data} if partitioned and data.is_dir() else None)
    if fail_over is not None:
        check_fraction(fail_over, "--fail-over", inclusive_zero=True)
    cfg = load_scan_config(config) if config else {}
    settings = {k: dict(v) for k, v in cfg.get("settings", {}).items()}
    for name, params in parse_set_options(set_ or []).items():
        settings.setdefault(name, {}).update(params)
    settings = check_settings(settings)
    det_names = detectors.split(",") if detectors else cfg.get("detectors")
    if top is not None:
        check_count(top, "--top")
    if engine == "dask" or sample_rows != 0:
        check_count(sample_rows, "--sample-rows", minimum=100)
    if engine == "dask":
        check_count(workers, "--workers")
        _scan_dask(data, scheduler=scheduler, workers=workers, memory_limit=memory_limit, sample_rows=sample_rows,
                   label=label, id_col=id_col, source_col=source_col, features=features, detectors=det_names,
                   settings=settings or None, contamination=contamination, top=top, seed=seed, out=out,
                   scores=scores, as_json=as_json, fail_over=fail_over)
        return
    frame = load_partitioned(data) if partitioned else load_table(data)
    check_output_columns(frame.columns, where=str(data))
    candidates = None
    if since:
        from ..provenance import rows_since
        from ..store import open_store

        with open_store(db) as store:
            candidates = rows_since(store, frame, since, load_trusted=False).mask
    kwargs: dict[str, Any] = dict(
        label=label, id_col=id_col, source_col=source_col, features=features, detectors=det_names,
        settings=settings or None, contamination=contamination, top=top, random_state=seed, candidates=candidates,
        fit_rows=sample_rows or None,
    )
    if as_json:
        result = scan(frame, **kwargs)
    else:
        with Progress(TextColumn("[bold]scan[/] {task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True) as bar:
            task = bar.add_task("preparing", total=1)

            def tick(stage: str, done: int, total: int) -> None:
                bar.update(task, description=stage, completed=done, total=total)

            result = scan(frame, progress=tick, **kwargs)
    result.to_csv(out)
    if scores:
        result.write_scores(scores)
    summary = result.summary()
    summary["outputs"] = {"suspicious": str(out), "scores": str(scores) if scores else None}
    if ledger:
        from ..provenance import record_scan
        from ..store import open_store

        rates = {str(r.source): (int(r.flagged), int(r.rows)) for r in result.per_source().itertuples(index=False)}
        with open_store(db) as store:
            info = record_scan(store, ledger, {"n_rows": result.n_rows, "n_flagged": result.n_flagged, **summary},
                               rates or None, key=key)
        summary["ledger"] = {"version": info.version_id, "entry": info.entry_seq}
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(result, summary, since=since)
    if fail_over is not None and result.n_flagged / result.n_rows > fail_over:
        raise ThresholdExceeded(
            f"flagged fraction {result.n_flagged / result.n_rows:.4f} exceeds --fail-over {fail_over}"
        )


def _scan_dask(data: Path, *, scheduler: str | None, workers: int, memory_limit: str, sample_rows: int,
               label: str | None, id_col: str | None, source_col: str | None, features: str | None,
               detectors: Any, settings: Any, contamination: str, top: int | None, seed: int, out: Path,
               scores: str | None, as_json: bool, fail_over: float | None) -> None:
    """``scan --engine dask``: the same outputs as the local scan, from a Dask cluster (imported only here)."""
    from ..distributed import dask_client, scan_dask

    kwargs: dict[str, Any] = dict(
        label=label, id_col=id_col, source_col=source_col, features=features, detectors=detectors,
        settings=settings, contamination=contamination, top=top, random_state=seed, sample_rows=sample_rows,
        out=out, scores=scores,
    )
    with dask_client(scheduler, n_workers=workers, memory_limit=memory_limit) as client:
        if as_json:
            result = scan_dask(data, client=client, **kwargs)
        else:
            with Progress(TextColumn("[bold]scan[/] {task.description}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                          console=err_console, transient=True) as bar:
                task = bar.add_task("preparing", total=1)

                def tick(stage: str, done: int, total: int) -> None:
                    bar.update(task, description=stage, completed=done, total=total)

                result = scan_dask(data, client=client, progress=tick, **kwargs)
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        n, k = result.n_rows, result.n_flagged
        eng = summary["engine"]
        console.print(
            f"[bold]{k}[/] of {n} rows flagged ({k / n:.2%}) · rule {result.flag_rule} · detectors: "
            f"{', '.join(result.detectors)} · dask: {eng['partitions']} partition(s), {eng['workers']} worker(s), "
            f"fitted on {eng['sample_rows']} rows · {summary['timings_s'].get('total', 0):.1f}s"
        )
        table = Table(title="Most suspicious rows", show_lines=False)
        for c in ("row", "suspicion", "flag", "strongest reason"):
            table.add_column(c, no_wrap=True, justify="right" if c in ("row", "suspicion") else "left")
        room = max(20, console.width - 40)
        for e in summary["top"]:
            table.add_row(str(e["row"]), f"{e['suspicion']:.3f}", "yes" if e["flagged"] else "",
                          _clip(str(e["reason"]).split("; ")[0], room))
        console.print(table)
        for p in summary["per_class"]:
            if p.get("poisoned"):
                console.print(f"  class {p['class']}: {p['detail']}", highlight=False, markup=False)
        console.print(f"wrote {out}" + (f" and {scores}" if scores else ""))
    if fail_over is not None and result.n_flagged / result.n_rows > fail_over:
        raise ThresholdExceeded(
            f"flagged fraction {result.n_flagged / result.n_rows:.4f} exceeds --fail-over {fail_over}"
        )


def _print_summary(result: ScanResult, summary: dict[str, Any], *, since: str | None) -> None:
    n, k = result.n_rows, result.n_flagged
    scope = f" ({int(result.candidates.sum())} new since {since})" if since and result.candidates is not None else ""
    console.print(
        f"[bold]{k}[/] of {n} rows flagged ({k / n:.2%}){scope} · rule {result.flag_rule} · "
        f"detectors: {', '.join(result.detectors)} · {summary['timings_s'].get('total', 0):.1f}s"
    )
    order = np.argsort(-result.suspicion, kind="stable")[:10]
    table = Table(title="Most suspicious rows", show_lines=False)
    table.add_column("row", justify="right", no_wrap=True, min_width=3)
    if result.table.ids is not None:
        table.add_column("id", no_wrap=True, min_width=2, max_width=16)
    if result.table.label:
        table.add_column("label", no_wrap=True, min_width=5, max_width=16)
    table.add_column("suspicion", justify="right", no_wrap=True, min_width=9)
    table.add_column("flag", no_wrap=True, min_width=4)
    # one line per row keeps the summary on one screen; the full reasons are in the CSV
    room = max(20, console.width - 45 - (18 if result.table.ids is not None else 0))
    table.add_column("strongest reason", no_wrap=True, max_width=room)
    for i in order:
        cells = [str(i)]
        if result.table.ids is not None:
            cells.append(str(result.table.ids[i]))
        if result.table.label and result.table.y is not None:
            cells.append(str(result.table.classes[result.table.y[i]]))
        cells += [f"{result.suspicion[i]:.3f}", "yes" if result.flagged[i] else "", _clip(result.reasons[i].split("; ")[0], room)]
        table.add_row(*cells)
    console.print(table)
    src = result.per_source()
    if len(src):
        st = Table(title="Flag rate per source")
        for c in ("source", "rows", "flagged", "flag rate"):
            st.add_column(c, justify="right" if c != "source" else "left")
        for r in src.itertuples(index=False):
            st.add_row(str(r.source), str(r.rows), str(r.flagged), f"{r.flag_rate:.2%}")
        console.print(st)
    _print_presence(result)
    for w in result.warnings:
        err_console.print(f"poisonguard: warning: {w}", highlight=False)
    console.print(f"wrote {summary['outputs']['suspicious']}" + (f" and {summary['outputs']['scores']}" if summary["outputs"]["scores"] else ""))


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_presence(result: ScanResult) -> None:
    """One line per detector that runs a per-class presence test, plus one per class judged poisoned."""
    for name, info in result.detector_info.items():
        presence = info.get("presence") if isinstance(info, dict) else None
        if not presence:
            continue
        if isinstance(presence, dict):  # one test over the whole table (contrast)
            verdict = "present" if presence.get("present") else "absent"
            console.print(f"[bold]{name}[/] presence test: {verdict}"
                          + "".join(f"; {k} {_short(v)}" for k, v in presence.items() if k != "present"),
                          highlight=False)
            continue
        yes = [p for p in presence if p.get("poisoned")]
        console.print(f"[bold]{name}[/] presence test: poisoned subpopulation in {len(yes)} of {len(presence)} classes")
        for p in sorted(yes, key=lambda p: p.get("p_value", 1.0)):
            k = int(p.get("label", -1))
            label = str(result.table.classes[k]) if 0 <= k < len(result.table.classes) else str(k)
            console.print(
                f"  class {label}: {p.get('statistic_name', 'statistic')} = {float(p.get('statistic', 0)):.3g}, "
                f"p = {float(p.get('p_value', 1)):.2g} < {float(p.get('threshold', 0)):.2g}; {p.get('detail', '')}",
                highlight=False, markup=False,
            )


@app.command("detectors")
def detectors_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable list.")) -> None:
    """List the registered detectors, their settings and whether the default scan runs them."""
    from ..detectors import available_detectors

    rows = []
    for name, cls in available_detectors().items():
        params = {p: cls().get_params()[p] for p in cls._param_names()}
        rows.append({"name": name, "default": cls.in_default_scan, "needs_label": cls.needs_label,
                     "family": cls.family, "summary": cls.summary, "settings": params})
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    t = Table(title="Detectors")
    for c in ("name", "default", "label?", "family", "settings", "what it finds"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["name"], "yes" if r["default"] else "", "yes" if r["needs_label"] else "", r["family"],
                  ", ".join(f"{k}={v}" for k, v in r["settings"].items()), r["summary"])
    console.print(t)
