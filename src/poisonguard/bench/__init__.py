"""Benchmark of the scan against simulated poisoning, with reference detectors.

The matrix (:func:`matrix`) crosses built-in tables with attacks at several rates,
plus a clean cell per table. Each cell poisons a table with
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
    TABLES,
    AttackSpec,
    Cell,
    default_attack_names,
    matrix,
    quick_cells,
    real_cells,
    register_attack_spec,
    speed_cells,
)
from ._metrics import FlagMetrics, auroc, class_damage, flag_metrics, precision_at_k
from ._report import to_markdown
from ._run import MEMORY_METHOD, BenchReport, run_benchmark, run_cell, run_cell_isolated, scan_available

__all__ = [
    "ANCHORS",
    "BENCHES",
    "Anchor",
    "anchor_available",
    "anchors_for",
    "ATTACK_SPECS",
    "TABLES",
    "AttackSpec",
    "Cell",
    "default_attack_names",
    "matrix",
    "quick_cells",
    "real_cells",
    "register_attack_spec",
    "speed_cells",
    "FlagMetrics",
    "auroc",
    "class_damage",
    "flag_metrics",
    "precision_at_k",
    "to_markdown",
    "MEMORY_METHOD",
    "BenchReport",
    "run_benchmark",
    "run_cell",
    "run_cell_isolated",
    "scan_available",
]
