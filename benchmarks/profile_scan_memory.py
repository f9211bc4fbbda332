"""Resident memory of the default scan, stage by stage (issue 12, the memory target).

Usage::

    python benchmarks/profile_scan_memory.py --rows 1000000 [--save /tmp/scan.npz]

Builds the table ``bench_speed.py`` builds (``synthetic`` x 32, 5% label flips), then
runs ``poisonguard.scan`` with a progress callback while a sampling thread reads the
process's resident set every few milliseconds. Prints, per stage (encoding, each
detector, combine, explain), the resident set when the stage started and the highest
one seen during it, both relative to the resident set just before the scan. The
sampler can miss a spike shorter than its period; the kernel's peak counter (reset
before the scan) is printed as well and bounds every stage.

``--save`` writes the scan's suspicion, flags and raw scores (``.npz``) so that two
versions of the code can be compared row by row (``--compare A.npz B.npz``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_speed import _hwm_mib, _reset_peak, _rss_mib, poisoned_table  # noqa: E402


class _Sampler:
    """Highest resident set per stage, sampled on a thread."""

    def __init__(self, period: float = 0.005, snapshot_at: str | None = None) -> None:
        self.period = period
        #: with tracemalloc running: a snapshot of the live allocations when this stage starts
        self.snapshot_at = snapshot_at
        self.snapshot = None
        self.stage = "encode"
        self.start: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self.order: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def enter(self, stage: str) -> None:
        if stage == self.snapshot_at and self.snapshot is None:
            import tracemalloc

            self.snapshot = tracemalloc.take_snapshot()
        rss = _rss_mib()
        self.stage = stage
        if stage not in self.start:
            self.start[stage] = rss
            self.order.append(stage)
        self.peak[stage] = max(self.peak.get(stage, 0.0), rss)

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss = _rss_mib()
            st = self.stage
            self.peak[st] = max(self.peak.get(st, 0.0), rss)
            time.sleep(self.period)

    def __enter__(self) -> "_Sampler":
        self.enter("encode")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _instrument(s: _Sampler) -> None:
    """Name finer stages: each detector's fit and each scoring call (by rows), combine, explain, the result."""
    import functools

    from poisonguard.detectors import BaseDetector
    from poisonguard.scan import _scan

    def staged(fn, name_of):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = s.stage
            s.enter(name_of(*args))
            try:
                return fn(*args, **kwargs)
            finally:
                s.enter(prev)
        return wrapper

    BaseDetector.fit = staged(BaseDetector.fit, lambda self, X, *a: f"{self.name}.fit")
    BaseDetector.score_samples = staged(BaseDetector.score_samples,
                                        lambda self, X, *a: f"{self.name}.score {len(X):,}")
    for fn in ("_flag", "_explain", "ScanResult"):
        setattr(_scan, fn, staged(getattr(_scan, fn), lambda *a, fn=fn: fn))


def profile(rows: int, seed: int, save: Path | None, fine: bool = False, snapshot_at: str | None = None) -> int:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    import poisonguard

    frame, mask, label = poisoned_table(rows, seed)
    before = _rss_mib()
    _reset_peak()
    t = time.perf_counter()
    if snapshot_at:
        import tracemalloc

        tracemalloc.start(1)
    with _Sampler(snapshot_at=snapshot_at) as s:
        if fine:
            _instrument(s)
        result = poisonguard.scan(frame, label=label, progress=lambda stage, done, total: s.enter(stage))
    seconds = time.perf_counter() - t
    hwm = _hwm_mib()
    print(f"{rows:,} x 32: {seconds:.1f} s, RSS before {before:.0f} MiB, kernel peak {hwm:.0f} MiB "
          f"(+{hwm - before:.0f}), 3x float32 matrix {3 * rows * 32 * 4 / 2**20:.0f} MiB")
    print(f"{'stage':<24}{'s':>8}{'start +MiB':>12}{'peak +MiB':>12}")
    for st in s.order:
        print(f"{st:<24}{result.timings.get(st, float('nan')):>8.1f}{s.start[st] - before:>12.0f}"
              f"{s.peak[st] - before:>12.0f}")
    print(f"after the scan +{_rss_mib() - before:.0f} MiB; AUROC {roc_auc_score(mask, result.suspicion):.5f}, "
          f"flagged {result.n_flagged:,} ({int((result.flagged & mask).sum()):,} poisoned), status {result.status}")
    if s.snapshot is not None:
        stats = s.snapshot.statistics("lineno")
        total = sum(st.size for st in stats)
        print(f"live Python/numpy allocations when {snapshot_at} started: {total / 2**20:.0f} MiB "
              "(tracemalloc: not faiss's own memory); the largest:")
        for st in stats[:15]:
            print(f"  {st.size / 2**20:8.1f} MiB  {st.traceback[0].filename.split('site-packages/')[-1]}:"
                  f"{st.traceback[0].lineno}")
    if save is not None:
        np.savez_compressed(save, suspicion=result.suspicion, flagged=result.flagged,
                            **{f"raw_{c}": result.detector_scores[c].to_numpy() for c in result.detector_scores},
                            reasons=np.asarray(result.reasons, dtype=object))
    return 0


def compare(a: Path, b: Path) -> int:
    import numpy as np

    A, B = np.load(a, allow_pickle=True), np.load(b, allow_pickle=True)
    same = True
    for key in sorted(set(A.files) | set(B.files)):
        if key not in A.files or key not in B.files:
            print(f"{key}: only in {'A' if key in A.files else 'B'}")
            same = False
            continue
        x, y = A[key], B[key]
        if x.dtype == object:
            diff = int(sum(p != q for p, q in zip(x.tolist(), y.tolist())))
            print(f"{key}: {diff:,} rows differ")
        else:
            diff = int((x != y).sum())
            gap = float(np.max(np.abs(x.astype(float) - y.astype(float)))) if x.size else 0.0
            print(f"{key}: {diff:,} rows differ, max |difference| {gap:.3g}")
        same &= diff == 0
    print("identical" if same else "different")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fine", action="store_true", help="finer stages: each fit and scoring call, the result")
    ap.add_argument("--snapshot-at", help="trace allocations and list the live ones when this stage starts")
    ap.add_argument("--save", type=Path, help="write the scan's scores and flags (.npz)")
    ap.add_argument("--compare", type=Path, nargs=2, metavar=("A", "B"), help="compare two saved scans")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    return profile(args.rows, args.seed, args.save, args.fine, args.snapshot_at)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
