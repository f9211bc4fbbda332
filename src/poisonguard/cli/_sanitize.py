"""``poisonguard sanitize`` and ``poisonguard evaluate``: remove flagged rows, measure the effect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .._io import check_outputs
from ._app import app, console


@app.command("sanitize")
def sanitize_command(
    data: Path = typer.Argument(..., help="Table to sanitize (CSV or Parquet)."),
    label: str = typer.Option(..., "--label", help="Label column."),
    out: Path = typer.Option(..., "--out", help="Where to write the kept rows (.csv or .parquet)."),
    quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="Also write the removed rows here."),
    review: Optional[Path] = typer.Option(
        None, "--review",
        help="Reviewed suspicious_samples.csv with a 'decision' column (remove/poison or keep/clean; empty = "
        "the detector's flag stands). No scan runs; reviewer decisions override the detectors.",
    ),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Manifest JSON (default: <out stem>.manifest.json)."),
    id_col: Optional[str] = typer.Option(None, "--id", help="Row id column (recorded in the manifest)."),
    contamination: str = typer.Option("auto", "--contamination", help="Flag rule of the scan: auto or a fraction."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the scan."),
) -> None:
    """Remove (or with --quarantine set aside) flagged rows and write a manifest of what went and why."""
    from ..sanitize import sanitize, write_outputs

    if manifest is None:
        manifest = out.with_name(out.stem + ".manifest.json")
    check_outputs({"--out": out, "--quarantine": quarantine, "--manifest": manifest}, {"DATA": data, "--review": review})
    res = sanitize(data, label=label, review=review, id_col=id_col, contamination=contamination, random_state=seed)
    written = write_outputs(res, out, quarantine=quarantine, manifest=manifest)
    c = res.manifest["counts"]
    console.print(
        f"{c['input']} rows: kept {c['kept']}, removed {c['quarantined']} "
        f"({c['removed_by_detector']} by detector, {c['removed_by_reviewer']} by reviewer; "
        f"{c['kept_by_reviewer']} kept by reviewer)",
        highlight=False,
    )
    for key, p in written.items():
        console.print(f"  {key}: {p}", highlight=False)


@app.command("evaluate")
def evaluate_command(
    train: Path = typer.Argument(..., help="Training table as received (possibly poisoned)."),
    label: str = typer.Option(..., "--label", help="Label column."),
    test: Path = typer.Option(..., "--test", help="Holdout with a boolean 'triggered' column (from `attack --holdout`)."),
    sanitized: Optional[Path] = typer.Option(None, "--sanitized", help="The sanitized table (from `sanitize --out`)."),
    clean: Optional[Path] = typer.Option(None, "--clean", help="The unpoisoned table, as a reference."),
    target: Optional[str] = typer.Option(None, "--target", help="Backdoor target class (default: inferred)."),
    model: str = typer.Option("logreg", "--model", help="logreg (default) or forest."),
    id_col: Optional[str] = typer.Option(None, "--id", help="Row id column (not a feature)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the result as JSON."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the model."),
) -> None:
    """Clean accuracy and attack success rate of a model trained on each table."""
    from ..sanitize import evaluate
    from .._io import atomic_write_json
    from ..validation import load_table

    check_outputs({"--json": json_out}, {"TRAIN": train, "--test": test, "--sanitized": sanitized, "--clean": clean})

    res = evaluate(
        load_table(train), label=label, test=load_table(test), sanitized=load_table(sanitized) if sanitized else None,
        clean=load_table(clean) if clean else None, target=target, model=model, id_col=id_col, random_state=seed,
    )
    how = " (inferred)" if res.target_inferred else ""
    console.print(
        f"model {res.model}; target {res.target}{how}; {res.n_clean_test} clean / {res.n_triggered_test} triggered test rows",
        highlight=False,
    )
    console.print("| trained on | rows | clean accuracy | ASR |\n|---|---:|---:|---:|", highlight=False)
    for s in res.scores:
        asr = "n/a" if s.asr is None else f"{s.asr:.3f}"
        console.print(f"| {s.name} | {s.n_train} | {s.clean_accuracy:.3f} | {asr} |", highlight=False)
    if json_out is not None:
        atomic_write_json(json.loads(json.dumps(res.to_dict(), default=str)), json_out)
