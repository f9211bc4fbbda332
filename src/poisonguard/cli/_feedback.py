"""``poisonguard feedback ...`` (quarantine review, counts, campaigns, trusted labels) and ``poisonguard retrain``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import GateBlockedError, InputError
from ..store import ENV_DB, open_store
from ._app import app, console

__all__: list[str] = []

feedback_app = typer.Typer(help="Feedback: review the quarantine, counts, campaigns, trusted labels.",
                           no_args_is_help=True)
retrain_app = typer.Typer(help="Batched retraining: campaign check, shadow model, gate, promotion.",
                          invoke_without_command=True)
app.add_typer(feedback_app, name="feedback")
app.add_typer(retrain_app, name="retrain")

_DB = typer.Option(None, "--db", envvar=ENV_DB,
                   help="Store: SQLAlchemy URL or SQLite path [default: .poisonguard/poisonguard.db].")


def _ids(spec: Optional[str]) -> list[int]:
    if not spec:
        return []
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError(f"ids must be comma-separated integers, got {spec!r}") from exc


@feedback_app.command("review")
def review_cmd(
    release: Optional[str] = typer.Option(None, "--release", help="Comma-separated ids to release into the next batch."),
    reject: Optional[str] = typer.Option(None, "--reject", help="Comma-separated ids to reject for good."),
    reason: Optional[str] = typer.Option(None, "--reason", help="List only this rule, e.g. campaign, confident-prediction."),
    limit: int = typer.Option(50, "--limit", min=1),
    note: str = typer.Option("", "--note", help="Why (kept in the audit trail)."),
    db: Optional[str] = _DB,
) -> None:
    """List the quarantine (no action given), or release / reject items."""
    from ..feedback import list_items, review
    from ..registry import actor

    with open_store(db) as store:
        if release or reject:
            n = review(store, _ids(release), action="release", actor=actor(), note=note) if release else 0
            m = review(store, _ids(reject), action="reject", actor=actor(), note=note) if reject else 0
            console.print(f"released {n}, rejected {m}", highlight=False)
            return
        items = list_items(store, status="quarantined", reason=reason, limit=limit)
    t = Table("id", "user", "item", "label", "served", "rep", "reason")
    for r in items:
        served = "" if r.served_label is None else f"{r.served_label} ({r.served_conf:.2f})"
        t.add_row(str(r.id), r.user, r.item[:20], r.label, served, f"{r.reputation:.2f}", r.reason)
    console.print(t)
    console.print(f"{len(items)} quarantined item(s) shown; release with --release IDS, reject with --reject IDS",
                  highlight=False)


@feedback_app.command("stats")
def stats_cmd(db: Optional[str] = _DB) -> None:
    """Items per status and quarantined items per rule."""
    from ..feedback import feedback_counts

    with open_store(db) as store:
        console.print_json(json.dumps(feedback_counts(store)))


@feedback_app.command("trust")
def trust_cmd(
    file: Path = typer.Argument(..., help="Table of trusted labels (CSV or Parquet)."),
    item_col: str = typer.Option(..., "--item-col", help="Column with the item key the clients send as `item`."),
    label: str = typer.Option(..., "--label", "-y", help="Label column."),
    source: str = typer.Option("trusted", "--source", help="Where the labels come from."),
    db: Optional[str] = _DB,
) -> None:
    """Record trusted labels; feedback is checked against them and builds users' reputation."""
    from ..feedback import add_trusted_labels
    from ..validation import load_table

    df = load_table(file)
    for col in (item_col, label):
        if col not in df:
            raise InputError(f"{file} has no column {col!r}")
    with open_store(db, create=True) as store:
        n = add_trusted_labels(store, dict(zip(df[item_col].astype(str), df[label])), source=source)
    console.print(f"{n} trusted label(s) recorded", highlight=False)


@feedback_app.command("campaigns")
def campaigns_cmd(
    validation: Optional[Path] = typer.Option(None, "--validation", help="Held-out table: the champion's error rates."),
    label: Optional[str] = typer.Option(None, "--label", "-y"),
    apply: bool = typer.Option(False, "--apply", help="Quarantine what is found (retrain always does)."),
    db: Optional[str] = _DB,
) -> None:
    """Test the pending feedback for coordinated campaigns (a dry run unless --apply)."""
    from ..feedback import confusion_rates, detect_campaigns
    from ..registry import actor, load_alias
    from ..validation import load_table

    with open_store(db) as store:
        rates = None
        if validation is not None:
            if not label:
                raise InputError("--validation needs --label")
            _, champ = load_alias(store)
            rates = confusion_rates(champ, load_table(validation)[[*champ.features, label]], label)
        rep = detect_campaigns(store, error_rates=rates, apply=apply, actor=actor())
    t = Table("kind", "change", "users", "fresh", "k / n", "p-value", "threshold", "campaign")
    for c in sorted(rep.tests, key=lambda c: c.p_value)[:30]:
        change = f"{c.from_label}->{c.to_label}" if c.kind == "class-pair" else f"{c.key}->{c.to_label}"
        t.add_row(c.kind, change, str(c.n_users), f"{c.fresh_share:.0%}", f"{c.k} / {c.n}", f"{c.p_value:.2e}",
                  f"{c.threshold:.2e}", "YES" if c.campaign else "no")
    console.print(t)
    console.print(f"{len(rep.campaigns)} campaign(s); {len(rep.quarantined)} item(s) "
                  + ("quarantined" if apply else "would be quarantined"), highlight=False)


@retrain_app.callback()
def retrain_cmd(
    ctx: typer.Context,
    base: Optional[Path] = typer.Option(None, "--base", help="Table the champion was trained on."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Held-out table the gate evaluates on."),
    label: Optional[str] = typer.Option(None, "--label", "-y"),
    canary: Optional[Path] = typer.Option(None, "--canary", help="JSON list of known triggers: [{name, values: {col: v}}]."),
    max_accuracy_drop: float = typer.Option(0.01, "--max-accuracy-drop"),
    max_recall_drop: float = typer.Option(0.05, "--max-recall-drop"),
    min_accuracy: float = typer.Option(0.0, "--min-accuracy"),
    max_batch_flag_rate: float = typer.Option(0.05, "--max-batch-flag-rate"),
    no_promote: bool = typer.Option(False, "--no-promote", help="Run the gate but leave the champion alone."),
    as_json: bool = typer.Option(False, "--json"),
    db: Optional[str] = _DB,
    root: Optional[Path] = typer.Option(None, "--models-dir", envvar="POISONGUARD_MODELS"),
) -> None:
    """Retrain on the accepted feedback batch; promote only if the gate passes. Exit 3 when blocked."""
    if ctx.invoked_subcommand is not None:
        return
    from ..feedback import retrain
    from ..gate import Canary, GatePolicy

    if base is None or validation is None or not label:
        raise InputError("retrain needs --base, --validation and --label")
    canaries = []
    if canary is not None:
        try:
            canaries = [Canary(name=str(c["name"]), values=dict(c["values"]), source="known")
                        for c in json.loads(canary.read_text())]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"--canary {canary}: expected a JSON list of {{name, values}}: {exc}") from exc
    policy = GatePolicy(max_accuracy_drop=max_accuracy_drop, max_recall_drop=max_recall_drop, min_accuracy=min_accuracy,
                        max_batch_flag_rate=max_batch_flag_rate)
    with open_store(db) as store:
        res = retrain(store, base=base, validation=validation, label=label, canaries=canaries, gate_policy=policy,
                      promote=not no_promote, root=root)
    if as_json:
        console.print_json(json.dumps(res.to_dict(), default=str))
    else:
        _print_retrain(res)
    if res.status == "blocked":
        raise GateBlockedError(f"gate report {res.gate.id} failed: {', '.join(res.gate.failed_checks)}; "
                               f"champion stays version {res.champion}")


def _print_retrain(res) -> None:  # type: ignore[no-untyped-def]
    console.print(f"campaigns: {len(res.campaigns.campaigns)} found, {len(res.campaigns.quarantined)} item(s) "
                  "quarantined", highlight=False)
    if res.status == "no-feedback":
        console.print("no accepted feedback since the last batch: nothing to do", highlight=False)
        return
    console.print(f"batch {res.batch_id}: {res.n_items} item(s); challenger version {res.challenger}; "
                  f"gate report {res.gate.id}: {'PASSED' if res.gate.passed else 'FAILED'}", highlight=False)
    for c in res.gate.checks:
        if not c.passed:
            console.print(f"  FAIL {c.name}: {c.detail}", highlight=False, markup=False)
    console.print(f"status: {res.status}; champion: "
                  f"{res.challenger if res.status == 'promoted' else res.champion}", highlight=False)


@retrain_app.command("schedule")
def schedule_cmd(
    cron: str = typer.Option("0 3 * * 0", "--cron", help="Five cron fields [weekly: Sunday 03:00]."),
    args: str = typer.Option("--base base.csv --validation validation.csv --label y", "--args",
                             help="Arguments of the scheduled retrain."),
) -> None:
    """Print the crontab line that runs the retrain on a schedule (weekly by default)."""
    from ..feedback import cron_line

    # typer.echo, not rich: a crontab line must not be wrapped
    typer.echo(cron_line(cron, command=f"poisonguard retrain {args} >> .poisonguard/retrain.log 2>&1"))
