"""``poisonguard bench``: the scan against simulated attacks, beside reference detectors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from ..errors import DetectorFailedError, InputError
from ._app import app


@app.command("bench")
def bench_command(
    quick: bool = typer.Option(False, "--quick", help="A small subset (wine: clean, flip 10%, outlier 5%); no speed rows."),
    attack: Optional[list[str]] = typer.Option(None, "--attack", help="Attack family to run (repeatable); default: the default set."),
    table: Optional[list[str]] = typer.Option(None, "--table", help="Table to run (repeatable); default: all four."),
    speed: bool = typer.Option(True, "--speed/--no-speed", help="Add the speed row: a default scan of synthetic 100k x 32."),
    big: bool = typer.Option(False, "--big", help="Also time synthetic 1M x 32 (slow)."),
    isolate: bool = typer.Option(True, "--isolate/--no-isolate", help="One fresh worker process per cell (measures peak RSS)."),
    anchors: bool = typer.Option(True, "--anchors/--no-anchors", help="Score the reference detectors beside the scan."),
    seed: int = typer.Option(0, "--seed", help="Seed of tables, attacks and scans."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Per-cell timeout in seconds (isolated runs)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON here."),
    md_out: Optional[Path] = typer.Option(None, "--md", help="Write the markdown table here."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Benchmark the scan: AUROC, precision@k, flag recall/precision, time and peak memory per cell.

    Prints a markdown table; exits non-zero if any cell failed.
    """
    from dataclasses import replace

    from .._io import atomic_write_bytes, check_outputs
    from ..bench import TABLES, matrix, quick_cells, run_benchmark, speed_cells, to_markdown

    check_outputs({"--json": json_out, "--md": md_out})
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise InputError(f"--timeout must be a positive number of seconds, got {timeout}")

    if quick:
        if attack or table:
            raise InputError("--quick runs a fixed subset; drop --attack/--table")
        cells = quick_cells(seed=seed)
        speeds = []
    else:
        tables = list(table) if table else list(TABLES)
        unknown = [t for t in tables if t not in TABLES]
        if unknown:
            raise InputError(f"unknown --table {unknown}; choose from: {', '.join(TABLES)}")
        cells = matrix(tables=tables, attacks=list(attack) if attack else None, seed=seed)
        speeds = speed_cells(big=big, seed=seed) if (speed or big) else []
    if not anchors:
        cells = [replace(c, anchors=False) for c in cells]
    report = run_benchmark(cells, speed=speeds, isolate=isolate, progress=progress, timeout=timeout)
    md = to_markdown(report)
    if json_out is not None:
        # through the atomic writer (not report.write_json): a directory or device is handled there
        text = json.dumps(report.to_dict(), indent=2, allow_nan=False, default=str) + "\n"
        atomic_write_bytes(text.encode("utf-8"), json_out)
    if md_out is not None:
        atomic_write_bytes(md.encode("utf-8"), md_out)
    typer.echo(md, nl=False)
    if report.failed:
        raise DetectorFailedError(f"{len(report.failed)} benchmark cell(s) failed: {', '.join(report.failed)}")
