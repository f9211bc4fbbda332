"""Benchmark of the scan against simulated poisoning, with reference detectors.

The matrix (:func:`matrix`) crosses built-in tables with attacks at several rates,
plus a clean cell per table; :func:`holdout_cells` crosses the held-out real tables
(:data:`HOLDOUT_TABLES`, never designed on) with attack variants nobody designed for. Each cell poisons a table with
:mod:`poisonguard.attacks`, runs :func:`poisonguard.scan` and scores the suspicion
against the truth (:func:`auroc`, :func:`precision_at_k`, :func:`flag_metrics`),
beside the anchors of :func:`anchors_for` (``"scan"``; the backdoor benchmark
selects ``"backdoor"``, which adds IBM ART's poisoning defences). Run it with
``poisonguard bench`` or ``python benchmarks/bench_scan.py``.
"""

from __future__ import annotations

from ._anchors import ANCHORS, BENCHES, Anchor, anchor_available, anchors_for
from ._cells import (
    ATTACK_SPECS,
    HOLDOUT_ATTACKS,
    HOLDOUT_TABLES,
    TABLES,
    AttackSpec,
    Cell,
    default_attack_names,
    holdout_cells,
    matrix,
    quick_cells,
    real_cells,
    register_attack_spec,
    speed_cells,
)
from ._metrics import (
    CLEAN_CLASS_LIMIT,
    CLEAN_ROW_LIMIT,
    FUSION_TOLERANCE,
    OUTLIER_KINDS,
    OUTLIER_RECALL_FLOOR,
    FlagMetrics,
    FusionCheck,
    auroc,
    class_damage,
    flag_metrics,
    fusion_check,
    precision_at_k,
)
from ._report import breaks, git_head, to_markdown
from ._run import MEMORY_METHOD, BenchReport, bench_meta, run_benchmark, run_cell, run_cell_isolated, scan_available

__all__ = [
    "ANCHORS",
    "BENCHES",
    "Anchor",
    "anchor_available",
    "anchors_for",
    "ATTACK_SPECS",
    "HOLDOUT_ATTACKS",
    "HOLDOUT_TABLES",
    "TABLES",
    "AttackSpec",
    "Cell",
    "default_attack_names",
    "holdout_cells",
    "matrix",
    "quick_cells",
    "real_cells",
    "register_attack_spec",
    "speed_cells",
    "CLEAN_CLASS_LIMIT",
    "CLEAN_ROW_LIMIT",
    "FUSION_TOLERANCE",
    "OUTLIER_KINDS",
    "OUTLIER_RECALL_FLOOR",
    "FlagMetrics",
    "FusionCheck",
    "auroc",
    "class_damage",
    "flag_metrics",
    "fusion_check",
    "precision_at_k",
    "breaks",
    "git_head",
    "to_markdown",
    "MEMORY_METHOD",
    "BenchReport",
    "bench_meta",
    "run_benchmark",
    "run_cell",
    "run_cell_isolated",
    "scan_available",
]
