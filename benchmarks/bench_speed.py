"""Time and memory of the default scan against the number of rows (issue 12, item 1).

Usage::

    python benchmarks/bench_speed.py                  # 100k, 300k, 1M rows x 32
    python benchmarks/bench_speed.py --big            # also 3M
    python benchmarks/bench_speed.py --rows 100000 --rows 2000000

Each size runs in a fresh subprocess: ``load_dataset("synthetic", n_rows=N)`` with 5%
label flips (``flip_labels``), then ``poisonguard.scan(frame, label=...)``. The child
measures its resident set just before the scan and resets the kernel's peak counter
there (``/proc/self/clear_refs``), so "peak RSS" is the scan's own peak and "RSS
increase" the scan's share of it; ``ru_maxrss`` (``getrusage``) is recorded as well.

Targets: 1M x 32 in <= 60 s on 2 cores; the scan's RSS increase <= 3x the float32
matrix (rows x 32 x 4 bytes); 10x the rows for <= 12x the time; 100k in <= 20 s.
Timings on a shared machine are noisy: compare rows of one run only. "CPU s" is the
scan's user + system CPU time (all threads): under load the wall time grows with the
host's load while the CPU time mostly does not, so it is the figure to compare across
runs; the 1-minute load average is printed at the start and end of each size.

Writes ``benchmarks/results/speed.json``, ``speed.md`` and ``speed.png`` (time and
memory against rows, log-log).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
FEATURES = 32
FLIP_RATE = 0.05
DEFAULT_ROWS = (100_000, 300_000, 1_000_000)
BIG_ROWS = (3_000_000,)


# --------------------------------------------------------------------- child
def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hwm_mib() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def poisoned_table(rows: int, seed: int) -> tuple[Any, Any, str]:
    """The synthetic table of ``rows`` x 32 with FLIP_RATE flips: frame, poisoned-row mask, label column.

    The generator's own frame is dropped before returning, so the RSS measured next is
    the table the scan gets and nothing else.
    """
    import gc

    import numpy as np

    from poisonguard.attacks import flip_labels
    from poisonguard.datasets import load_dataset

    ds = load_dataset("synthetic", n_rows=rows, seed=seed)
    poisoned = flip_labels(ds.frame, ds.label, FLIP_RATE, seed=seed)
    del ds
    gc.collect()
    return poisoned.frame, np.asarray(poisoned.mask, dtype=bool), poisoned.label


def child(rows: int, seed: int) -> dict[str, Any]:
    """One measured scan; returns its figures."""
    from sklearn.metrics import roc_auc_score

    import poisonguard

    frame, mask, label = poisoned_table(rows, seed)
    before = _rss_mib()
    reset = _reset_peak()
    load_before = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    result = poisonguard.scan(frame, label=label)
    seconds = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    hwm = _hwm_mib()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = hwm if (reset and hwm is not None) else maxrss
    return {
        "rows": rows,
        "features": FEATURES,
        "poisoned": int(mask.sum()),
        "seconds": round(seconds, 2),
        "s_per_million": round(seconds / rows * 1e6, 2),
        "cpu_s": round(cpu, 2),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "rss_before_mib": round(before, 1),
        "peak_rss_mib": round(peak, 1),
        "rss_increase_mib": round(peak - before, 1),
        "ru_maxrss_mib": round(maxrss, 1),
        "peak_reset": reset,
        "float32_matrix_mib": round(rows * FEATURES * 4 / 2**20, 1),
        "timings_s": {k: round(v, 2) for k, v in result.timings.items()},
        "auroc": round(float(roc_auc_score(mask, result.suspicion)), 5),
        "flagged": result.n_flagged,
        "flagged_poisoned": int((result.flagged & mask).sum()),
        "status": result.status,
    }


# -------------------------------------------------------------------- parent
def run_one(rows: int, seed: int, timeout: float | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pg-speed-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(rows), "--seed", str(seed),
               "--child-out", str(out)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"rows": rows, "status": "timeout", "error": f"no result within {timeout} s"}
        if proc.returncode != 0 or not out.exists():
            return {"rows": rows, "status": "failed", "error": proc.stderr.strip().splitlines()[-1:] or ["?"]}
        return json.loads(out.read_text())


def to_markdown(results: list[dict[str, Any]]) -> str:
    detectors = sorted({k for r in results for k in r.get("timings_s", {}) if k != "total"})
    head = ["rows", "s", "CPU s", "load 1-min (start, end)", "s per 1M rows", "peak RSS MiB", "RSS before MiB", "RSS increase MiB",
            "3x float32 matrix MiB", *[f"{d} s" for d in detectors], "AUROC", "flagged", "flagged poisoned"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in results:
        if r.get("status") not in ("ok", "failed") or "seconds" not in r:
            lines.append(f"| {r['rows']:,} | {r.get('status')}: {r.get('error')} |")
            continue
        t = r["timings_s"]
        load = r.get("load_average", [float("nan")] * 2)
        cells = [f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{r.get('cpu_s', float('nan')):.1f}",
                 f"{load[0]:.1f}, {load[1]:.1f}", f"{r['s_per_million']:.1f}", f"{r['peak_rss_mib']:.0f}",
                 f"{r['rss_before_mib']:.0f}", f"{r['rss_increase_mib']:.0f}", f"{3 * r['float32_matrix_mib']:.0f}",
                 *[f"{t.get(d, float('nan')):.1f}" for d in detectors], f"{r['auroc']:.4f}", f"{r['flagged']:,}",
                 f"{r['flagged_poisoned']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    ok = [r for r in results if "seconds" in r]
    if len(ok) >= 2:
        lines.append("")
        for a, b in zip(ok, ok[1:]):
            lines.append(f"- {b['rows'] // 1000:,}k / {a['rows'] // 1000:,}k rows: {b['rows'] / a['rows']:.1f}x the rows, "
                         f"{b['seconds'] / a['seconds']:.2f}x the time")
        first, last = ok[0], ok[-1]
        if len(ok) > 2:
            lines.append(f"- {last['rows'] // 1000:,}k / {first['rows'] // 1000:,}k rows: "
                         f"{last['rows'] / first['rows']:.1f}x the rows, {last['seconds'] / first['seconds']:.2f}x the time")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> Path | None:
    ok = [r for r in results if "seconds" in r]
    if len(ok) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r["rows"] for r in ok]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.loglog(rows, [r["seconds"] for r in ok], "o-", label="scan")
    ax1.loglog(rows, [ok[0]["seconds"] * n / rows[0] for n in rows], ":", color="grey", label="linear from the first")
    ax1.set(xlabel="rows (x 32 features)", ylabel="seconds", title="Scan time")
    ax1.legend()
    ax2.loglog(rows, [r["peak_rss_mib"] for r in ok], "o-", label="peak RSS")
    ax2.loglog(rows, [max(r["rss_increase_mib"], 1.0) for r in ok], "s-", label="RSS increase during the scan")
    ax2.loglog(rows, [3 * r["float32_matrix_mib"] for r in ok], ":", color="grey", label="3x the float32 matrix")
    ax2.set(xlabel="rows (x 32 features)", ylabel="MiB", title="Scan memory")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="table size (repeatable); default 100k, 300k, 1M")
    ap.add_argument("--big", action="store_true", help="also 3M rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=None, help="per-size timeout in seconds")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.child_out.write_text(json.dumps(child(args.child, args.seed)))
        return 0
    sizes = list(args.rows or DEFAULT_ROWS) + (list(BIG_ROWS) if args.big else [])
    results = []
    for rows in sorted(sizes):
        print(f"scanning {rows:,} x {FEATURES} ...", file=sys.stderr, flush=True)
        results.append(run_one(rows, args.seed, args.timeout))
    md = to_markdown(results)
    print(md)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg(), "flip_rate": FLIP_RATE, "seed": args.seed}
    (args.out_dir / "speed.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (args.out_dir / "speed.md").write_text(
        f"Default scan of `synthetic` x {FEATURES} with {FLIP_RATE:.0%} label flips; one fresh process per size; "
        f"load average at the end {meta['load_average_at_end'][0]:.1f} on {meta['cpus']} CPUs.\n\n" + md)
    plot(results, args.out_dir / "speed.png")
    return 0 if all(r.get("status") == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
