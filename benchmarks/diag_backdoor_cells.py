"""Diagnose why the scan ranks a cell's poisoned rows below a single detector (issue 9).

For each cell: per-detector AUROC (raw and strength), where the poisoned rows sit in the
two tiers, which group sets each poisoned row's lower-tier suspicion, the presence
decisions of the backdoor detectors and which anomaly detectors were judged present.

    python benchmarks/diag_backdoor_cells.py pima:backdoor-tabular-1out fair:backdoor-tabular-p90x3
"""

from __future__ import annotations

import json
import sys

import numpy as np

from poisonguard.bench._cells import holdout_cells
from poisonguard.bench._metrics import auroc
from poisonguard.bench._run import _prepare


def diagnose(table: str, attack: str, seed: int = 0) -> None:
    import poisonguard

    cells = [c for c in holdout_cells(seed=seed, tables=[table], attacks=[attack]) if c.display != "clean"
             and c.attack != "clean"]
    for cell in cells:
        frame, mask = _prepare(cell)
        res = poisonguard.scan(frame, label="label", random_state=cell.seed)
        s = np.asarray(res.suspicion)
        print(f"\n=== {table} {cell.display} {cell.rate}: rows {len(frame)} poisoned {mask.sum()} "
              f"scan AUROC {auroc(s, mask):.3f} flagged {int(res.flagged.sum())}")
        for c in res.detector_scores.columns:
            raw = res.detector_scores[c].to_numpy()
            st = res.strengths[c].to_numpy()
            print(f"  {c:22s} raw {auroc(raw, mask):.3f} strength {auroc(st, mask):.3f}"
                  f" str poisoned med {np.median(st[mask]):.3f} clean med {np.median(st[~mask]):.3f}"
                  f" clean q99 {np.quantile(st[~mask], 0.99):.3f}")
        print(f"  suspicion poisoned med {np.median(s[mask]):.3f}, clean med {np.median(s[~mask]):.3f}, "
              f"clean q90 {np.quantile(s[~mask], 0.9):.3f}")
        for name, info in res.detector_info.items():
            if name.startswith("backdoor") or name in ("iforest", "ecod", "cluster"):
                txt = json.dumps(info, default=str)
                print(f"  info {name}: {txt[:1500]}")
        print("  presence:", [(p.get("class"), p.get("poisoned"), p.get("flagged")) for p in res.presence])


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        t, a = arg.split(":")
        diagnose(t, a)
