"""Does the combined suspicion keep every detector's signal? (issue 9, item 2)

Per cell: the scan's AUROC, each detector's own AUROC (its raw ``score_samples``), the
best single detector and ``scan - best`` (the fusion property asks for >= -0.005), the
default flag rule's recall and precision, the share of rows flagged and the class
damage (the largest share of any one class's clean rows that were flagged).

Cells: the benchmark's real-table and generated hard cells (``poisonguard.bench.real_cells``),
then held-out tables nobody designed on (statsmodels, vega_datasets, river) clean, with
5% flips, 1% far outliers, 5% and 10% in-range outliers, and 5% clustered outliers (far and
in range), and outliers in three columns only.

    python benchmarks/bench_fusion.py                 # everything (long)
    python benchmarks/bench_fusion.py --only credit   # cells whose key contains "credit"

Writes ``benchmarks/results/fusion.json`` (and ``fusion.md``, the printed table).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poisonguard.attacks import poison
from poisonguard.bench import real_cells
from poisonguard.bench._metrics import auroc, class_damage, flag_metrics
from poisonguard.datasets import load_dataset

RESULTS = Path(__file__).parent / "results"
TOLERANCE = 0.005
HOLDOUT = ("fair", "anes96", "seattle_weather", "cars", "phishing", "image_segments", "pima")


@dataclass(frozen=True)
class FusionCell:
    """One table, one attack (``"clean"`` for none), its rate and attack arguments."""

    table: str
    attack: str
    rate: float = 0.0
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    group: str = "benchmark"

    @property
    def key(self) -> str:
        label = self.name or self.attack
        return f"{self.table}/{label}" + (f"@{self.rate:g}" if self.attack != "clean" else "")


def cells() -> list[FusionCell]:
    """The benchmark's real and generated cells, then the held-out variants."""
    out = [FusionCell(c.table, c.attack, c.rate, c.display, dict(c.params)) for c in real_cells()]
    for t in HOLDOUT:
        out += [
            FusionCell(t, "clean", 0.0, "clean", group="held-out"),
            FusionCell(t, "flip", 0.05, "flip", group="held-out"),
            FusionCell(t, "outlier", 0.01, "outlier", group="held-out"),
            FusionCell(t, "outlier", 0.05, "outlier-in-range", {"placement": "in_range"}, group="held-out"),
            FusionCell(t, "outlier", 0.10, "outlier-in-range", {"placement": "in_range"}, group="held-out"),
            FusionCell(t, "outlier", 0.05, "outlier-cluster", {"placement": "cluster"}, group="held-out"),
            FusionCell(t, "outlier", 0.05, "outlier-cluster-in-range", {"placement": "cluster_in_range"},
                       group="held-out"),
        ]
    for t in ("credit", "fair"):
        out.append(FusionCell(t, "outlier", 0.05, "outlier-3-columns", {"columns": 3}, group="held-out"))
    return out


def _poisoned(cell: FusionCell) -> tuple[Any, np.ndarray]:
    ds = load_dataset(cell.table, seed=0)
    if cell.attack == "clean":
        return ds.frame, np.zeros(ds.n_rows, dtype=bool)
    params = dict(cell.params)
    if "columns" in params:  # outliers in a few numeric columns only; the rest copied from real rows
        numeric = [c for c in ds.features if np.issubdtype(ds.frame[c].dtype, np.number)]
        params = {"features": numeric[: int(params.pop("columns"))]}
    res = poison(cell.attack, ds.frame, label=ds.label, rate=cell.rate, seed=0, **params)
    return res.frame, res.mask


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def measure(suspicion: np.ndarray, flagged: np.ndarray, scores: dict[str, np.ndarray], mask: np.ndarray,
            y: np.ndarray | None) -> dict[str, Any]:
    """The row of one cell from a scan's suspicion, flags and per-detector raw scores."""
    fm = flag_metrics(flagged, mask)
    row: dict[str, Any] = {
        "rows": int(mask.size), "poisoned": int(mask.sum()),
        "flagged_frac": float(flagged.mean()), "class_damage": class_damage(flagged, mask, y),
        "flag_recall": _num(fm.recall), "flag_precision": _num(fm.precision),
    }
    if mask.any():
        per = {n: auroc(v, mask) for n, v in scores.items() if np.isfinite(v).all()}
        best = max(per, key=lambda k: per[k])
        scan_auc = auroc(suspicion, mask)
        row.update(scan_auroc=_num(scan_auc), detector_auroc={k: _num(v) for k, v in per.items()},
                   best_detector=best, best_auroc=_num(per[best]), gap=_num(scan_auc - per[best]),
                   fusion_ok=bool(scan_auc - per[best] >= -TOLERANCE))
    return row


def run(cell: FusionCell) -> dict[str, Any]:
    import poisonguard

    out: dict[str, Any] = {"key": cell.key, "group": cell.group, "table": cell.table, "attack": cell.name,
                           "rate": cell.rate, "status": "ok"}
    try:
        frame, mask = _poisoned(cell)
        t0 = time.perf_counter()
        res = poisonguard.scan(frame, label="label", random_state=0)
        out["scan_s"] = round(time.perf_counter() - t0, 2)
        scores = {n: res.detector_scores[n].to_numpy(dtype=float) for n in res.detector_scores.columns}
        out.update(measure(np.asarray(res.suspicion), np.asarray(res.flagged, dtype=bool), scores, mask, res.table.y))
        out["tail_test"] = {n: info["tail_test"] for n, info in res.detector_info.items() if "tail_test" in info}
    except Exception as exc:  # fail closed: a crashed cell is reported as failed, never as clean
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    return out


_SHORT = {"backdoor_clean_label": "bd_clean", "backdoor_spectral": "bd_spec", "backdoor_trigger": "bd_trig",
          "confident": "confident", "duplicates": "dup", "ecod": "ecod", "iforest": "iforest", "knn_label": "knn"}
_DETS = list(_SHORT)


def _f(x: Any, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The printed markdown table (one line per cell)."""
    head = (["cell", "scan AUROC"] + [_SHORT[d] for d in _DETS]
            + ["best", "scan - best", "flag recall", "flag precision", "flagged", "class damage"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['key']} | FAILED: {r.get('error')} |")
            continue
        per = r.get("detector_auroc", {})
        gap = r.get("gap")
        mark = "" if gap is None or gap >= -TOLERANCE else " ✗"
        clean_bad = r["poisoned"] == 0 and (r["flagged_frac"] > 0.01 or (r["class_damage"] or 0) > 0.05)
        cells_ = ([r["key"] + (" ✗" if clean_bad else ""), _f(r.get("scan_auroc"))]
                  + [_f(per.get(d)) for d in _DETS]
                  + [_SHORT.get(r.get("best_detector"), "–") if r.get("best_detector") else "–",
                     (f"{gap:+.3f}{mark}" if gap is not None else "–"), _f(r.get("flag_recall")),
                     _f(r.get("flag_precision")), _f(r["flagged_frac"], True), _f(r["class_damage"], True)])
        lines.append("| " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    ok = [r for r in rows if r.get("status") == "ok"]
    attacked = [r for r in ok if r["poisoned"]]
    clean = [r for r in ok if not r["poisoned"]]
    bad = [r["key"] for r in attacked if not r["fusion_ok"]]
    bad_clean = [r["key"] for r in clean if r["flagged_frac"] > 0.01 or (r["class_damage"] or 0) > 0.05]
    return (f"fusion property (scan >= best single - {TOLERANCE}): {len(attacked) - len(bad)} of {len(attacked)} "
            f"attacked cells; fails: {', '.join(bad) or 'none'}\n"
            f"clean tables within 1% of rows and 5% of any class: {len(clean) - len(bad_clean)} of {len(clean)}; "
            f"fail: {', '.join(bad_clean) or 'none'}\n"
            f"failed cells: {', '.join(r['key'] for r in rows if r.get('status') != 'ok') or 'none'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="run only cells whose key contains this text")
    ap.add_argument("--out", default=str(RESULTS / "fusion.json"))
    args = ap.parse_args(argv)
    chosen = [c for c in cells() if args.only is None or args.only in c.key]
    rows = []
    for c in chosen:
        rows.append(run(c))
        print(f"{c.key}: {rows[-1].get('scan_auroc')} (gap {rows[-1].get('gap')})", file=sys.stderr, flush=True)
    text = table(rows) + "\n\n" + summary(rows)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "tolerance": TOLERANCE,
            "note": "detector AUROC: of each detector's raw score_samples; timings wall-clock under load"}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
