"""``poisonguard registry ...``: model versions, aliases, gated promotion, rollback, gate reports."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import InputError
from ..store import ENV_DB, open_store
from ._app import app, console

__all__: list[str] = []

registry_app = typer.Typer(help="Model registry: versions, champion/challenger, promote, rollback, history.",
                           no_args_is_help=True)
app.add_typer(registry_app, name="registry")

_DB = typer.Option(None, "--db", envvar=ENV_DB,
                   help="Store: SQLAlchemy URL or SQLite path [default: .poisonguard/poisonguard.db].")
_ROOT = typer.Option(None, "--models-dir", envvar="POISONGUARD_MODELS",
                     help="Where registered model copies live [default: models/ beside the SQLite store].")


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


@registry_app.command("add")
def add_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory (poisonguard train --out)."),
    champion: bool = typer.Option(False, "--champion", help="Make it the first champion (only when there is none)."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Held-out table: calibrates when the model's "
                                              "confident predictions may judge feedback."),
    label: Optional[str] = typer.Option(None, "--label", "-y", help="Label column of --validation."),
    note: str = typer.Option("", "--note"),
    db: Optional[str] = _DB,
    root: Optional[Path] = _ROOT,
) -> None:
    """Verify a model directory, copy it into the registry and record a new version."""
    from ..feedback import confident_threshold
    from ..registry import alias_version, promote, register_model
    from ..training import load_model
    from ..validation import load_table

    detail = {}
    if validation is not None:
        if not label:
            raise InputError("--validation needs --label")
        model = load_model(model_dir)
        val = load_table(validation)
        detail["confident_threshold"] = confident_threshold(model, val[[*model.features, label]], label)
    with open_store(db, create=True) as store:
        if champion and alias_version(store, "champion") is not None:
            raise InputError("there already is a champion; a new version becomes champion only through "
                             "poisonguard retrain (gate) or registry promote --force --reason")
        info = register_model(store, model_dir, root=root, note=note, detail=detail)
        if champion:
            promote(store, info.version, force=True, reason="first champion (registry add --champion)")
    console.print(f"registered version {info.version} ({info.kind}) at {info.path}"
                  + (" [champion]" if champion else ""), highlight=False)


@registry_app.command("list")
def list_cmd(db: Optional[str] = _DB) -> None:
    """Every version with its aliases."""
    from ..registry import alias_version, list_versions

    with open_store(db) as store:
        versions = list_versions(store)
        aliases = {a: alias_version(store, a) for a in ("champion", "challenger")}
    t = Table("version", "aliases", "kind", "registered (UTC)", "note")
    for v in versions:
        names = ",".join(a for a, n in aliases.items() if n == v.version)
        t.add_row(str(v.version), names, v.kind, _when(v.created_at), v.note)
    console.print(t)


@registry_app.command("history")
def history_cmd(db: Optional[str] = _DB, as_json: bool = typer.Option(False, "--json")) -> None:
    """The append-only audit trail: registrations, promotions (gated or forced), rollbacks."""
    from ..registry import history

    with open_store(db) as store:
        events = history(store)
    if as_json:
        console.print_json(json.dumps([e.__dict__ for e in events]))
        return
    t = Table("seq", "at (UTC)", "event", "version", "previous", "gate report", "by", "reason")
    for e in events:
        t.add_row(str(e.seq), _when(e.at), e.kind, str(e.version or ""), str(e.previous or ""),
                  str(e.gate_report or ""), e.actor, e.reason)
    console.print(t)


@registry_app.command("promote")
def promote_cmd(
    version: int = typer.Argument(...),
    gate_report: Optional[int] = typer.Option(None, "--gate-report", help="Passed gate report [default: the latest for VERSION]."),
    force: bool = typer.Option(False, "--force", help="Promote without a passed gate (audited; needs --reason)."),
    reason: str = typer.Option("", "--reason"),
    db: Optional[str] = _DB,
) -> None:
    """Make VERSION the champion: only after a passed gate, unless --force --reason."""
    from ..gate import list_reports
    from ..registry import promote

    with open_store(db) as store:
        if gate_report is None and not force:
            mine = [r for r in list_reports(store) if r.challenger == version]
            gate_report = mine[-1].id if mine else None
        promote(store, version, gate_report=gate_report, force=force, reason=reason)
    console.print(f"version {version} is now champion" + (" (forced)" if force else f" (gate report {gate_report})"),
                  highlight=False)


@registry_app.command("rollback")
def rollback_cmd(reason: str = typer.Option("", "--reason"), db: Optional[str] = _DB) -> None:
    """Return the champion alias to the previous champion."""
    from ..registry import rollback

    with open_store(db) as store:
        e = rollback(store, reason=reason)
    console.print(f"champion rolled back from {e.previous} to {e.version}", highlight=False)


@registry_app.command("verify")
def verify_cmd(version: Optional[int] = typer.Argument(None, help="[default: the champion]"), db: Optional[str] = _DB) -> None:
    """Check a registered version's files against its pinned manifest digest (exit 4 on a mismatch)."""
    from ..registry import alias_version, load_version

    with open_store(db) as store:
        v = version if version is not None else alias_version(store, "champion")
        if v is None:
            raise InputError("no champion; give a VERSION")
        load_version(store, v)
    console.print(f"ok: version {v} matches its registered hashes", highlight=False)


@registry_app.command("gate")
def gate_cmd(report: Optional[int] = typer.Argument(None, help="Report id [default: list all]."),
             db: Optional[str] = _DB) -> None:
    """List the stored gate reports, or show one check by check."""
    from ..gate import get_report, list_reports

    with open_store(db) as store:
        reports = [get_report(store, report)] if report is not None else list_reports(store)
    if report is None:
        t = Table("id", "at (UTC)", "challenger", "champion", "result", "failed checks")
        for r in reports:
            t.add_row(str(r.id), _when(r.at), str(r.challenger), str(r.champion), "PASSED" if r.passed else "FAILED",
                      ", ".join(r.failed_checks))
        console.print(t)
        return
    r = reports[0]
    console.print(f"gate report {r.id}: {'PASSED' if r.passed else 'FAILED'} (challenger {r.challenger}, "
                  f"champion {r.champion})", highlight=False)
    t = Table("check", "result", "value", "threshold", "detail")
    for c in r.checks:
        t.add_row(c.name, "pass" if c.passed else "FAIL", "" if c.value is None else f"{c.value:.4g}",
                  "" if c.threshold is None else f"{c.threshold:.4g}", c.detail)
    console.print(t)


@registry_app.command("mirror-mlflow")
def mirror_cmd(
    name: str = typer.Option(..., "--name", help="MLflow registered model name."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", envvar="MLFLOW_TRACKING_URI"),
    db: Optional[str] = _DB,
) -> None:
    """Copy versions and the champion/challenger aliases to an MLflow model registry (extra mlflow)."""
    from ..registry import mirror_to_mlflow

    with open_store(db) as store:
        out = mirror_to_mlflow(store, name=name, tracking_uri=tracking_uri)
    console.print(f"mirrored {len(out['versions'])} version(s); aliases: {out['aliases']}", highlight=False)
