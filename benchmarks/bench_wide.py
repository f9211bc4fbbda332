"""Wide-table benchmark: a default scan of 784- and 2048-column tables against two anchors.

Tables (generated, see ``tests/detectors/_wide_helpers.py``; no installed package
ships a real 28x28 image table):

* ``digits784``: 5,000 generated 28x28 digit images (0-255 pixels), clean, with 10%
  label flips, and with a 3x3 patch backdoor (pixel 255, bottom-right) on 6% of rows;
* ``emb2048``: 2,000 model-like float32 embeddings of 2,048 dimensions, clean and with
  10% label flips;
* with ``--big``: the generated 100,000 x 32 table with 5% flips (the speed target).

Per cell: rows x columns, the default scan's seconds and each detector's, the seconds
and AUROC of cleanlab's 5-fold logistic regression and of a 10-NN vote on the same
encoded matrix in the same run, the ratio scan / cleanlab, the scan's AUROC of
``suspicion`` and the share of rows it flags, and the process's peak RSS so far.
Seconds are wall-clock on a shared machine: compare ratios within one run. The CPU
seconds of the scan and of cleanlab (this process's, all threads) and their ratio are
given too: on a loaded host they measure the work, where wall-clock measures the
queue; the 1-minute load average is recorded per cell. A 300-row scan runs first so
that imports and one-time set-up are not charged to the first cell. Cells that share a
feature matrix (clean and flip of one table) reuse what the detectors memoise per
matrix in one process (PCA basis, neighbour graph): the clean cell is the cold one.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_wide.py [--big] [--out DIR]``.
Writes ``wide.json`` and ``wide.md`` into ``benchmarks/results`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

from sklearn.metrics import roc_auc_score  # noqa: E402

import poisonguard  # noqa: E402
from poisonguard.attacks import poison  # noqa: E402
from poisonguard.bench import anchors_for  # noqa: E402
from poisonguard.datasets import load_dataset  # noqa: E402
from poisonguard.encoding import TableEncoder  # noqa: E402
from poisonguard.validation import prepare_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "detectors"))
from _wide_helpers import digits784, embeddings  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ANCHORS = {a.name: a for a in anchors_for("scan")}


def _tables(big: bool) -> list[dict]:
    d = digits784(5000, seed=0)
    e = embeddings(2000, 2048, seed=0)
    cells = [
        dict(table="digits784", attack="clean", frame=d),
        dict(table="digits784", attack="flip 10%", frame=d, kind="flip", rate=0.10),
        dict(table="digits784", attack="patch 3x3 6%", frame=d, kind="backdoor", rate=0.06,
             params=dict(target=0, trigger="patch", image_shape=(28, 28),
                         trigger_options={"position": "bottom-right", "size": 3})),
        dict(table="emb2048", attack="clean", frame=e),
        dict(table="emb2048", attack="flip 10%", frame=e, kind="flip", rate=0.10),
    ]
    if big:
        s = load_dataset("synthetic", n_rows=100_000)
        cells.append(dict(table="synthetic", attack="flip 5%", frame=s.frame, label=s.label, kind="flip", rate=0.05))
    return cells


def run_cell(cell: dict) -> dict:
    """Poison, scan, time the anchors on the same encoded matrix; one result row."""
    frame = cell["frame"]
    label = cell.get("label", "label")
    if "kind" in cell:
        p = poison(cell["kind"], frame, label=label, rate=cell["rate"], seed=0, **cell.get("params", {}))
        frame, mask = p.frame, np.asarray(p.mask)
    else:
        mask = np.zeros(len(frame), dtype=bool)
    load = os.getloadavg()[0]
    t, c = time.perf_counter(), time.process_time()
    res = poisonguard.scan(frame, label=label)
    scan_s, scan_cpu = time.perf_counter() - t, time.process_time() - c
    res.raise_for_status()
    table = prepare_table(frame, label=label)
    X = TableEncoder().fit_transform(table.frame, table.features)
    row = {"table": cell["table"], "attack": cell["attack"], "rows": int(X.shape[0]), "cols": int(X.shape[1]),
           "poisoned": int(mask.sum()), "scan_s": round(scan_s, 2), "flagged": float(np.mean(res.flagged)),
           "auroc": float(roc_auc_score(mask, res.suspicion)) if mask.any() else None,
           "detector_s": {k: round(float(v), 2) for k, v in res.timings.items()}}
    row["scan_cpu_s"] = round(scan_cpu, 2)
    for key in ("cleanlab", "knn10"):
        t, c = time.perf_counter(), time.process_time()
        s = ANCHORS[key].score(X, table.y, 0)
        row[f"{key}_s"] = round(time.perf_counter() - t, 2)
        row[f"{key}_cpu_s"] = round(time.process_time() - c, 2)
        row[f"{key}_auroc"] = float(roc_auc_score(mask, s)) if mask.any() else None
    row["ratio_scan_cleanlab"] = round(row["scan_s"] / max(row["cleanlab_s"], 1e-9), 2)
    row["cpu_ratio_scan_cleanlab"] = round(row["scan_cpu_s"] / max(row["cleanlab_cpu_s"], 1e-9), 2)
    row["load_avg_1m"] = round((load + os.getloadavg()[0]) / 2, 1)
    row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return row


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def markdown(rows: list[dict]) -> str:
    """The result table; per-detector seconds in one column, slowest first."""
    head = ("| table | attack | rows x cols | scan s | cleanlab CV-LR s | 10-NN s | scan / cleanlab | scan CPU s | "
            "cleanlab CPU s | CPU scan / cleanlab | load avg | AUROC scan | "
            "AUROC cleanlab | AUROC 10-NN | flagged | peak RSS MiB | detector s (slowest first) |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
    lines = []
    for r in rows:
        det = {k: v for k, v in r["detector_s"].items() if k not in ("total", "encode", "explain")}
        det_s = ", ".join(f"{k} {v:.1f}" for k, v in sorted(det.items(), key=lambda kv: -kv[1]))
        lines.append(
            f"| {r['table']} | {r['attack']} | {r['rows']:,} x {r['cols']} | {r['scan_s']:.1f} | {r['cleanlab_s']:.1f} | "
            f"{r['knn10_s']:.1f} | {r['ratio_scan_cleanlab']:.2f} | {r['scan_cpu_s']:.1f} | {r['cleanlab_cpu_s']:.1f} | "
            f"{r['cpu_ratio_scan_cleanlab']:.2f} | {r['load_avg_1m']:.1f} | {_f(r['auroc'])} | {_f(r['cleanlab_auroc'])} | "
            f"{_f(r['knn10_auroc'])} | {r['flagged']:.1%} | {r['peak_rss_mib']} | {det_s} |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", action="store_true", help="add the 100,000 x 32 speed cell")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for wide.json and wide.md")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    # one small scan first: imports and one-time set-up are not charged to the first cell
    poisonguard.scan(digits784(300, seed=1), label="label")
    for cell in _tables(args.big):
        rows.append(run_cell(cell))
        r = rows[-1]
        print(f"# {r['table']} {r['attack']}: scan {r['scan_s']} s, cleanlab {r['cleanlab_s']} s, "
              f"AUROC {_f(r['auroc'])}, flagged {r['flagged']:.1%}", file=sys.stderr, flush=True)
        # written after every cell: a long run that is stopped keeps what it measured
        meta = {"seconds": round(time.perf_counter() - t0, 1), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "data": "generated (tests/detectors/_wide_helpers.py)"}
        (args.out / "wide.json").write_text(json.dumps({"meta": meta, "cells": rows}, indent=2) + "\n")
        (args.out / "wide.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
