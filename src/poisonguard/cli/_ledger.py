"""``poisonguard ledger ...`` and ``poisonguard source ...``: the provenance ledger."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.tree import Tree

from ..errors import InputError
from ..store import ENV_DB, open_store
from ._app import app, console

__all__: list[str] = []

ledger_app = typer.Typer(help="Provenance ledger: record, verify, diff and trace dataset versions.",
                         no_args_is_help=True)
source_app = typer.Typer(help="Data sources and their trust scores.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(source_app, name="source")

_DB = typer.Option(None, "--db", envvar=ENV_DB,
                   help="Store: SQLAlchemy URL or SQLite path \\[default: .poisonguard/poisonguard.db].")
_KEY = typer.Option(None, "--key", envvar="POISONGUARD_LEDGER_KEY",
                    help="Signing key file \\[default: .poisonguard/ledger.key].")
_ENGINE = typer.Option("local", "--engine",
                       help="For a partitioned dataset: 'local' (one partition after the other) or 'dask' "
                            "(partitions hashed on a Dask cluster; needs the dask extra).")
_SCHEDULER = typer.Option(None, "--scheduler",
                          help="Dask scheduler address (tcp://host:8786); without it --engine dask starts a "
                               "local cluster. The workers must see the data at the same path.")
_WORKERS = typer.Option(None, "--workers", help="Workers of the local Dask cluster (default 2).")


def _check_engine(engine: str, scheduler: Optional[str], workers: Optional[int]) -> None:
    if engine not in ("local", "dask"):
        raise InputError(f"--engine must be 'local' or 'dask', got {engine!r}")
    if engine == "local" and scheduler is not None:
        raise InputError("--scheduler needs --engine dask")
    if workers is not None and (engine != "dask" or scheduler is not None):
        raise InputError("--workers sizes the local Dask cluster: it needs --engine dask and no --scheduler")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    # Dask's own log chatter is quieted where the cluster is made (distributed.dask_client)


def _store(db: Optional[str], *, create: bool = False):  # type: ignore[no-untyped-def]
    return open_store(db, create=create)


@ledger_app.command("init")
def init_cmd(
    db: Optional[str] = _DB,
    key: Optional[Path] = _KEY,
    alg: str = typer.Option("ed25519", "--alg", help="Algorithm of a newly generated key: ed25519 | hmac."),
) -> None:
    """Create the store and, if missing, a signing key (mode 0600); write the genesis entry.

    Idempotent and safe to run concurrently: exactly one genesis entry and one key are
    ever written; every other run reports "ledger already initialized" and exits 0,
    unless the ledger was initialised with another key (exit 4).
    """
    from ..provenance import KeyExistsError, generate_key, init_ledger, load_key, resolve_key_path

    path = resolve_key_path(key)
    made = False
    if path.exists():
        signer = load_key(path)
    else:
        try:
            signer = generate_key(path, alg=alg)
            made = True
        except KeyExistsError:  # another `ledger init` created it a moment ago
            signer = load_key(path)
    with _store(db, create=True) as store:
        entry = init_ledger(store, signer)
        console.print(f"store: {store.url}")
    console.print(f"key: {path} ({signer.alg}, id {signer.key_id}){' [created]' if made else ''}", highlight=False)
    console.print("ledger initialized" if entry else "ledger already initialized", highlight=False)


@ledger_app.command("add")
def add_cmd(
    file: Path = typer.Argument(..., help="Data file (CSV or Parquet), or a partitioned Parquet dataset: a "
                                          "directory or a quoted glob ('data/part-*.parquet')."),
    name: str = typer.Option(..., "--name", help="Dataset name; versions are NAME@1, NAME@2, ..."),
    source: str = typer.Option(..., "--source", help="Registered source the data came from."),
    parent: Optional[str] = typer.Option(None, "--parent", help="Version this one was derived from."),
    transform: Optional[str] = typer.Option(None, "--transform", help="What was done to the parent."),
    code: Optional[Path] = typer.Option(None, "--code", help="Code file of the transform (its SHA-256 is recorded)."),
    id_col: Optional[str] = typer.Option(None, "--id", help="Id column (names changed rows by id)."),
    source_col: Optional[str] = typer.Option(None, "--source-col", help="Column holding each row's source."),
    ordered: bool = typer.Option(False, "--ordered", help="Make the content digest depend on row order."),
    engine: str = _ENGINE,
    scheduler: Optional[str] = _SCHEDULER,
    workers: Optional[int] = _WORKERS,
    db: Optional[str] = _DB,
    key: Optional[Path] = _KEY,
) -> None:
    """Fingerprint FILE (or a partitioned dataset) and record it as a new signed dataset version.

    A partitioned dataset gets the digest one file holding the same rows would get (the
    partitions in dataset order); its entry lists each partition's name, rows and digest.
    """
    from ..provenance import add_version, load_key

    _check_engine(engine, scheduler, workers)
    signer = load_key(key)
    with _store(db) as store:
        v = add_version(store, file, name=name, source=source, parent=parent, transform=transform, code=code,
                        id_col=id_col, source_col=source_col, ordered=ordered, key=signer, engine=engine,
                        scheduler=scheduler, n_workers=workers)
    parts = v.payload.get("partitions")
    where = f" in {len(parts)} partitions" if parts is not None else ""
    console.print(f"{v.version_id}: {v.n_rows} rows{where}, digest {v.digest} (entry {v.entry_seq})", highlight=False)


@ledger_app.command("verify")
def verify_cmd(
    target: Optional[str] = typer.Argument(None, help="A data FILE, a partitioned dataset (directory or quoted "
                                                        "glob) or a VERSION; omit to check the ledger only."),
    version: Optional[str] = typer.Option(None, "--version", help="Version to compare FILE against."),
    engine: str = _ENGINE,
    scheduler: Optional[str] = _SCHEDULER,
    workers: Optional[int] = _WORKERS,
    db: Optional[str] = _DB,
    key: Optional[Path] = _KEY,
) -> None:
    """Check the chain and signatures; with FILE or VERSION re-hash the data. Exit 4 on any mismatch.

    A partitioned dataset is re-hashed partition by partition; against a version that
    recorded partitions, each changed, missing or added partition is named.
    """
    from ..distributed import is_partitioned
    from ..provenance import load_key, verify_ledger

    _check_engine(engine, scheduler, workers)
    signer = load_key(key)
    path = None
    if target is not None:
        if Path(target).exists() or is_partitioned(target):
            path = target
        elif version is None and not any(target.lower().endswith(s) for s in (".csv", ".parquet", ".pq", ".tsv")):
            version = target
        else:
            raise InputError(f"file not found: {target}")
    with _store(db) as store:
        report = verify_ledger(store, signer, version=version, path=path, engine=engine, scheduler=scheduler,
                               n_workers=workers)
    for line in report.lines():
        console.print(f"MISMATCH {line}", highlight=False, markup=False)
    report.raise_for_problems()
    for line in report.data.notes() if report.data is not None else []:
        console.print(f"note: {line}", highlight=False, markup=False)
    what = f"; {report.data.version_id} data matches ({report.data.n_rows_now} rows)" if report.data else ""
    if report.data is not None and report.data.diff.reordered:
        what += " (rows reordered; digest is order-independent)"
    console.print(f"ok: {report.n_entries} entries, chain and signatures valid{what}", highlight=False)


@ledger_app.command("diff")
def diff_cmd(
    v1: str = typer.Argument(..., help="Old version."),
    v2: str = typer.Argument(..., help="New version."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV file to write \\[default: stdout]."),
    db: Optional[str] = _DB,
) -> None:
    """Write the added, removed and changed rows between two versions as CSV."""
    import pandas as pd

    from ..provenance import diff_versions, load_version_frame

    with _store(db) as store:
        a, b, d = diff_versions(store, v1, v2)
    need_old = d.removed.size or d.changed_old.size
    need_new = d.added.size or d.changed_new.size
    fa = load_version_frame(a) if need_old else None
    fb = load_version_frame(b) if need_new else None
    parts = []

    def _rows(frame, pos, change, old_pos, new_pos):  # type: ignore[no-untyped-def]
        part = frame.iloc[pos].reset_index(drop=True)
        part.insert(0, "_new_row", pd.array(new_pos, dtype="Int64"))
        part.insert(0, "_old_row", pd.array(old_pos, dtype="Int64"))
        part.insert(0, "_change", change)
        return part

    n = lambda k: [None] * k  # noqa: E731
    if d.changed_old.size:
        parts.append(_rows(fa, d.changed_old, "changed_from", d.changed_old, d.changed_new))
        parts.append(_rows(fb, d.changed_new, "changed_to", d.changed_old, d.changed_new))
    if d.removed.size:
        parts.append(_rows(fa, d.removed, "removed", d.removed, n(d.removed.size)))
    if d.added.size:
        parts.append(_rows(fb, d.added, "added", n(d.added.size), d.added))
    if parts:
        table = pd.concat(parts, ignore_index=True)
    else:
        table = pd.DataFrame(columns=["_change", "_old_row", "_new_row"])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    else:
        table.to_csv(sys.stdout, index=False)
    msg = (f"{a.version_id} -> {b.version_id}: {d.n_changed} changed, {d.added.size} added, "
           f"{d.removed.size} removed" + (" (reordered)" if d.reordered else ""))
    if out is not None:
        console.print(msg + f"; written to {out}", highlight=False)
    else:
        from ._app import err_console

        err_console.print(msg, highlight=False)


@ledger_app.command("log")
def log_cmd(
    name: Optional[str] = typer.Option(None, "--name", help="Only versions of this dataset."),
    db: Optional[str] = _DB,
) -> None:
    """List the recorded dataset versions."""
    from ..provenance import list_versions

    with _store(db) as store:
        versions = list_versions(store, name=name)
    table = Table(title="dataset versions")
    for col in ("version", "entry", "source", "rows", "digest", "parent", "recorded by", "at"):
        table.add_column(col)
    for v in versions:
        table.add_row(v.version_id, str(v.entry_seq), v.source, str(v.n_rows), v.digest[:16], v.parent or "",
                      v.recorded_by, v.recorded_at)
    console.print(table)


@ledger_app.command("lineage")
def lineage_cmd(
    name: str = typer.Argument(..., help="Dataset name."),
    db: Optional[str] = _DB,
) -> None:
    """Show the version graph of a dataset with its transforms and scans."""
    from ..provenance import lineage

    with _store(db) as store:
        lin = lineage(store, name)
    tree = Tree(f"[bold]{lin.name}[/bold]")

    def _node(parent_tree: Tree, vid: str) -> None:
        v = lin.get(vid)
        label = f"{v.version_id}  rows={v.n_rows}  source={v.source}  digest={v.digest[:12]}"
        if v.transform:
            label += f"  transform: {v.transform}"
        code = v.payload.get("code")
        if code:
            label += f"  code: {Path(code['path']).name}@{code['sha256'][:8]}"
        t = parent_tree.add(label, highlight=False)
        for sc in lin.scans.get(vid, []):
            rate = ", ".join(f"{s}: {f}/{n}" for s, (f, n) in sc.per_source.items())
            t.add(f"scan (entry {sc.entry_seq}, {sc.recorded_at}) flagged {rate or 'n/a'}", highlight=False)
        for child in lin.children.get(vid, []):
            _node(t, child)

    for root in lin.roots:
        _node(tree, root.version_id)
    console.print(tree)


@ledger_app.command("export")
def export_cmd(
    version: str = typer.Argument(..., help="Version to export."),
    mlflow: bool = typer.Option(False, "--mlflow", help="Log it as an MLflow dataset input."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI \\[default: active]."),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment for a new run."),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Existing MLflow run to log into."),
    db: Optional[str] = _DB,
) -> None:
    """Export a dataset version (to MLflow with --mlflow)."""
    from ..provenance import export_mlflow

    if not mlflow:
        raise InputError("choose an export target: --mlflow")
    with _store(db) as store:
        res = export_mlflow(store, version, tracking_uri=tracking_uri, experiment=experiment, run_id=run_id)
    console.print(f"{res.dataset_name} logged to MLflow run {res.run_id} at {res.tracking_uri}"
                  + (f" (artifact {res.artifact})" if res.artifact else ""), highlight=False)


@source_app.command("add")
def source_add_cmd(
    name: str = typer.Argument(..., help="Source name."),
    kind: str = typer.Option(..., "--kind", help="internal | vendor | user-generated | public-web."),
    owner: Optional[str] = typer.Option(None, "--owner"),
    url: Optional[str] = typer.Option(None, "--url"),
    notes: Optional[str] = typer.Option(None, "--notes"),
    db: Optional[str] = _DB,
    key: Optional[Path] = _KEY,
) -> None:
    """Register a data source."""
    from ..provenance import add_source, load_key

    signer = load_key(key)
    with _store(db) as store:
        s = add_source(store, name, kind=kind, owner=owner, url=url, notes=notes, key=signer)
    console.print(f"source {s.name} ({s.kind}): prior risk {s.score.prior_risk:.3f}", highlight=False)


@source_app.command("list")
def source_list_cmd(db: Optional[str] = _DB) -> None:
    """List sources with kind, prior, evidence and current risk."""
    from ..provenance import list_sources

    with _store(db) as store:
        sources = list_sources(store)
    table = Table(title="data sources")
    for col in ("source", "kind", "prior (a, b)", "prior risk", "flagged / scanned", "scans",
                "failed verifications", "risk", "risk 95% upper", "owner"):
        table.add_column(col)
    for s in sources:
        sc = s.score
        table.add_row(s.name, s.kind, f"Beta({sc.prior_a:g}, {sc.prior_b:g})", f"{sc.prior_risk:.3f}",
                      f"{sc.flagged} / {sc.total}", str(s.n_scans), str(sc.failed_verifications),
                      f"{sc.risk:.3f}", f"{sc.risk_upper:.3f}", s.owner or "")
    console.print(table)
