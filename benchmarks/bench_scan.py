"""Benchmark the scan on the attack matrix; print a markdown table and save the results.

Usage::

    python benchmarks/bench_scan.py            # matrix + speed row (synthetic 100k x 32)
    python benchmarks/bench_scan.py --big      # also synthetic 1M x 32 (slow)
    python benchmarks/bench_scan.py --no-speed # matrix only

Writes ``benchmarks/results/scan.json`` and ``benchmarks/results/scan.md``. Any other
option of ``poisonguard bench`` is passed through (see ``poisonguard bench --help``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from poisonguard.cli import main

RESULTS = Path(__file__).resolve().parent / "results"

if __name__ == "__main__":
    sys.exit(main(["bench", "--json", str(RESULTS / "scan.json"), "--md", str(RESULTS / "scan.md"), *sys.argv[1:]]))
