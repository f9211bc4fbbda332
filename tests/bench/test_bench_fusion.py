"""The fusion-property columns, the what-breaks list and the held-out matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from poisonguard.bench import (
    FUSION_TOLERANCE,
    HOLDOUT_ATTACKS,
    HOLDOUT_TABLES,
    BenchReport,
    Cell,
    auroc,
    breaks,
    fusion_check,
    holdout_cells,
    run_cell,
    to_markdown,
)
from poisonguard.errors import ConfigError


def test_fusion_check_hand_made() -> None:
    mask = np.array([0, 0, 0, 1, 1], dtype=bool)
    perfect = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    half = np.array([0.1, 0.9, 0.3, 0.5, 0.8])  # 4 of 6 pairs right
    const = np.zeros(5)
    check = fusion_check(half, {"a": half, "b": perfect, "c": const}, mask)
    assert check.detector_auroc == {"a": pytest.approx(4 / 6), "b": 1.0, "c": 0.5}
    assert check.best_detector == "b" and check.best_auroc == 1.0
    assert check.gap == pytest.approx(4 / 6 - 1.0) and not check.ok
    # within the tolerance is fine, and on ties the first detector in order is named
    close = fusion_check(perfect, {"x": perfect, "y": perfect}, mask)
    assert close.ok and close.gap == 0.0 and close.best_detector == "x"
    # a non-finite detector is not scored; nothing to rank -> nothing to compare
    odd = fusion_check(perfect, {"nan": np.array([np.nan, 0, 0, 1, 1]), "b": half}, mask)
    assert odd.detector_auroc["nan"] is None and odd.best_detector == "b" and odd.ok
    none = fusion_check(perfect, {"b": perfect}, np.zeros(5, dtype=bool))
    assert none.best_detector is None and math.isnan(none.gap) and none.ok


def _row(table: str, attack: str, scan: dict, anchors: dict | None = None, kind: str | None = None) -> dict:
    base = {"auroc": None, "p_at_k": None, "flag_recall": None, "flag_precision": None, "n_flagged": 0,
            "flagged_frac": 0.0, "class_damage": 0.0, "time_s": 1.0}
    return {"key": f"{table}/{attack}", "table": table, "attack": attack, "kind": kind or attack, "rate": 0.05,
            "status": "ok", "n_rows": 100, "n_poisoned": 5, "scan": {**base, **scan}, "anchors": anchors or {}}


def test_report_marks_lost_signal_damaged_clean_tables_and_losing_to_an_anchor() -> None:
    gap = -2 * FUSION_TOLERANCE
    rows = [
        _row("t", "clean", {"n_flagged": 3, "flagged_frac": 0.03, "class_damage": 0.2,
                            "flagged_by": {"knn_label": 3}}),
        _row("t", "flip", {"auroc": 0.90, "best_detector": "confident", "best_auroc": 0.90 - gap,
                           "fusion_gap": gap, "detector_auroc": {"confident": 0.90 - gap, "iforest": 0.5}},
             anchors={"cleanlab": {"status": "ok", "auroc": 0.95, "p_at_k": 0.5}}),
        _row("t", "outlier", {"auroc": 1.0, "best_detector": "iforest", "best_auroc": 1.0, "fusion_gap": 0.0,
                              "detector_auroc": {"iforest": 1.0}},
             anchors={"cleanlab": {"status": "ok", "auroc": 0.7, "p_at_k": 0.5}}),
        _row("u", "clean", {"n_flagged": 0}),
        _row("u", "outlier-cluster", {"auroc": 1.0, "flag_recall": 0.2, "flagged_frac": 0.01, "fusion_gap": 0.0},
             kind="outlier"),
        _row("u", "duplicate-flip", {"auroc": 0.9, "flag_recall": 0.0, "fusion_gap": 0.0}, kind="duplicate_flip"),
        _row("v", "scaled", {"auroc": 1.0, "flag_recall": 1.0, "fusion_gap": 0.0, "class_damage": 0.8,
                             "per_class": [{"class": 0, "clean_rows": 90, "clean_flagged": 1},
                                           {"class": 1, "clean_rows": 10, "clean_flagged": 8}],
                             "flagged_by": {"iforest": 12}}, kind="scaled"),
    ]
    report = BenchReport(rows=rows, meta={"anchors": {"cleanlab": "ok"}})
    found = breaks(report)
    assert len(found) == 4  # the relabelled duplicates are not held to the outlier recall floor
    assert found[2] == "u / outlier-cluster 5%: flag recall 0.200 (1.0% of rows flagged)"
    assert found[3] == "v / scaled 5%: class damage 80.0% (class 1: 8 of 10 clean rows); flagged rows name iforest 12"
    assert found[0].startswith("t / clean:") and "class damage 20.0%" in found[0] and "knn_label 3" in found[0]
    assert "confident alone 0.910" in found[1] and "anchor cleanlab 0.950 > scan 0.900" in found[1]
    md = to_markdown(report, title="Held out")
    assert md.startswith("## Held out")
    head = next(line for line in md.splitlines() if line.startswith("| table"))
    assert "| best single | scan − best |" in head and head.endswith("| confident AUROC | iforest AUROC |")
    flip = next(line for line in md.splitlines() if line.startswith("| t | flip"))
    assert "| confident 0.910 | -0.010 ✗ |" in flip and flip.endswith("| 0.910 | 0.500 |")
    outlier = next(line for line in md.splitlines() if line.startswith("| t | outlier"))
    assert "| +0.000 |" in outlier and "✗" not in outlier and outlier.endswith("| – | 1.000 |")
    assert "What breaks (4 cell(s)):" in md


def test_run_cell_fills_the_fusion_columns_from_the_scan() -> None:
    row = run_cell(Cell("wine", "outlier", 0.05, "outlier-cluster", {"placement": "cluster"}), anchors=())
    assert row["status"] == "ok", row.get("error")
    s = row["scan"]
    aucs = {k: v for k, v in s["detector_auroc"].items() if v is not None}
    assert aucs and set(aucs) <= set(s["strength_auroc"])
    assert s["best_auroc"] == max(aucs.values()) and aucs[s["best_detector"]] == s["best_auroc"]
    assert s["fusion_gap"] == pytest.approx(s["auroc"] - s["best_auroc"])
    assert s["fusion_ok"] == (s["fusion_gap"] >= -FUSION_TOLERANCE)
    assert sum(c["clean_rows"] for c in s["per_class"]) == row["n_rows"] - row["n_poisoned"]
    assert max(c["clean_flagged"] / c["clean_rows"] for c in s["per_class"]) == pytest.approx(s["class_damage"])
    if s["n_flagged"]:
        assert sum(s["flagged_by"].values()) >= s["n_flagged"]  # a flagged row names at least one detector
    clean = run_cell(Cell("wine", "clean", 0.0, "clean", anchors=False))
    assert clean["scan"]["best_detector"] is None and clean["scan"]["detector_auroc"] == {}


def test_run_cell_detector_auroc_matches_a_recomputation(monkeypatch) -> None:
    """The per-detector column is the AUROC of what the scan returned for that detector, nothing else."""
    import poisonguard

    seen = {}
    real_scan = poisonguard.scan

    def spy(*args, **kwargs):
        res = real_scan(*args, **kwargs)
        seen["res"] = res
        return res

    monkeypatch.setattr(poisonguard, "scan", spy)
    row = run_cell(Cell("wine", "flip", 0.1, "flip", anchors=False))
    res = seen["res"]
    from poisonguard.attacks import flip_labels
    from poisonguard.datasets import load_dataset

    mask = flip_labels(load_dataset("wine").frame, "label", rate=0.1, seed=0).mask
    for name in res.detector_scores.columns:
        assert row["scan"]["detector_auroc"][name] == pytest.approx(auroc(res.detector_scores[name].to_numpy(), mask))


def test_holdout_matrix() -> None:
    cells = holdout_cells(tables=["pima", "cars"])
    per_table = 1 + sum(len(a.rates) for a in HOLDOUT_ATTACKS)
    assert len(cells) == 2 * per_table
    assert cells[0] == Cell("pima", "clean", 0.0, "clean", anchors=False)
    assert {c.display for c in cells} == {"clean", *(a.name for a in HOLDOUT_ATTACKS)}
    pair = next(c for c in cells if c.table == "cars" and c.attack == "pair")
    assert pair.params == {"source_class": 1, "target_class": 0}
    assert [c.rate for c in cells if c.table == "pima" and c.attack == "flip"] == [0.02, 0.20]
    only = holdout_cells(tables=["pima"], attacks=["scaled"])
    assert [c.key for c in only] == ["pima/clean", "pima/scaled@0.02"]
    with pytest.raises(ConfigError, match="unknown held-out attack"):
        holdout_cells(attacks=["nope"])
    assert len(HOLDOUT_TABLES) >= 6
