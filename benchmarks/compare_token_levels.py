"""Do the backdoor detectors' scores change with Tarone's correction of the token search?

Runs ``backdoor_trigger`` and ``backdoor_clean_label`` (the two users of the token search)
on every held-out cell (all attacks, clean cells included) twice, with Tarone's level and
with plain Bonferroni over every candidate x class test and over every suspected trigger, and prints the cells where the
scores differ: rows flagged (score >= 0.5), poisoned rows among them, AUROC.
Detector-level, so other modules' changes between two scan runs do not enter the comparison.

    python benchmarks/compare_token_levels.py [--table pima ...]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import poisonguard.detectors._backdoor_trigger as bt  # noqa: E402
import poisonguard.detectors._trigger_search as ts  # noqa: E402
from poisonguard.bench._cells import holdout_cells  # noqa: E402
from poisonguard.bench._metrics import auroc  # noqa: E402
from poisonguard.bench._run import _prepare  # noqa: E402
from poisonguard.datasets import HOLDOUT_TABLES  # noqa: E402
from poisonguard.detectors import get_detector  # noqa: E402
from poisonguard.encoding import TableEncoder  # noqa: E402

TARONE = ts.tarone_level


def _plain(p_min: np.ndarray, alpha: float) -> float:
    return alpha / max(np.size(p_min), 1)


def scores(X: np.ndarray, y: np.ndarray, level) -> dict[str, np.ndarray]:
    ts.tarone_level = bt.tarone_level = level  # the token search and the presence level
    ts._memo = ts.BoundedMemo(2)  # a fresh memo: the other level's search must not be reused
    out = {}
    for name in ("backdoor_trigger", "backdoor_clean_label"):
        det = get_detector(name).fit(X, y)
        out[name] = det.score_samples(X, y)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", action="append", choices=list(HOLDOUT_TABLES))
    args = ap.parse_args(argv)
    n_same = 0
    print("| cell | detector | flagged plain -> Tarone | poisoned flagged plain -> Tarone | AUROC plain -> Tarone |")
    print("|---|---|---|---|---|")
    for cell in holdout_cells(tables=args.table or list(HOLDOUT_TABLES)):
        frame, mask = _prepare(cell)
        feats = [c for c in frame.columns if c != "label"]
        X = TableEncoder().fit_transform(frame, feats, dtype=np.float32)
        y = np.unique(frame["label"].astype(str), return_inverse=True)[1]
        a, b = scores(X, y, _plain), scores(X, y, TARONE)
        for name in a:
            if np.array_equal(a[name], b[name]):
                n_same += 1
                continue
            fa, fb = a[name] >= 0.5, b[name] >= 0.5
            au = (f"{auroc(a[name], mask):.3f} -> {auroc(b[name], mask):.3f}" if mask.any() else "–")
            print(f"| {cell.key} | {name} | {fa.sum()} -> {fb.sum()} | {(fa & mask).sum()} -> {(fb & mask).sum()} | {au} |",
                  flush=True)
    print(f"\n{n_same} cell x detector pairs unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
