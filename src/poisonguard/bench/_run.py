"""Running benchmark cells, in-process or each in a fresh worker process.

Peak memory
-----------
``tracemalloc`` only sees Python's allocator and misses numpy's native buffers, so
memory is measured as the peak resident set size (RSS) of a fresh worker process:
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, read inside the worker right after the
scan (before the anchors run). It includes the interpreter, the imports and the
table; ``base_rss_mib`` is the same reading taken just before the scan, so
``peak - base`` bounds what the scan itself added. In-process runs report no memory.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._anchors import Anchor, anchor_available, anchors_for
from ._cells import Cell
from ._metrics import auroc, class_damage, flag_metrics, fusion_check, precision_at_k

__all__ = ["run_cell", "run_cell_isolated", "run_benchmark", "BenchReport", "MEMORY_METHOD", "scan_available", "bench_meta"]

MEMORY_METHOD = "peak RSS of a fresh worker process (getrusage RUSAGE_SELF ru_maxrss, read after the scan)"


def scan_available() -> bool:
    """Whether ``poisonguard.scan`` can be imported."""
    try:
        import poisonguard

        return callable(getattr(poisonguard, "scan", None))
    except ImportError:
        return False


def _rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if sys.platform != "darwin" else kib / 2**20  # macOS reports bytes


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _prepare(cell: Cell) -> tuple[Any, np.ndarray]:
    from ..attacks import poison
    from ..datasets import load_dataset

    ds = load_dataset(cell.table, n_rows=cell.n_rows, seed=cell.seed)
    if cell.attack == "clean":
        return ds.frame, np.zeros(ds.n_rows, dtype=bool)
    params = dict(cell.params)
    if cell.attack == "backdoor" and ds.image_shape is not None:
        params.setdefault("image_shape", ds.image_shape)
    result = poison(cell.attack, ds.frame, label=ds.label, rate=cell.rate, seed=cell.seed, **params)
    return result.frame, result.mask


def run_cell(
    cell: Cell, *, anchors: Sequence[Anchor] | None = None, measure_memory: bool = False
) -> dict[str, Any]:
    """Run one cell in this process and return its result row (a JSON-ready dict).

    A crash of the scan marks the row ``status="failed"`` with the error; it is
    never reported as a clean result. A crash of an anchor marks only that anchor.
    ``anchors`` defaults to the scan benchmark's, ``anchors_for("scan")``.
    """
    anchors = anchors_for("scan") if anchors is None else anchors
    row: dict[str, Any] = {
        "key": cell.key, "table": cell.table, "attack": cell.display, "kind": cell.attack, "rate": cell.rate,
        "seed": cell.seed, "status": "ok", "error": None,
    }
    try:
        frame, mask = _prepare(cell)
        row.update(n_rows=int(len(frame)), n_features=int(frame.shape[1] - 1), n_poisoned=int(mask.sum()))
        base = _rss_mib() if measure_memory else None
        import poisonguard

        t0 = time.perf_counter()
        res = poisonguard.scan(frame, label="label", random_state=cell.seed)
        elapsed = time.perf_counter() - t0
        peak = _rss_mib() if measure_memory else None
        suspicion = np.asarray(res.suspicion, dtype=float)
        flags = flag_metrics(np.asarray(res.flagged, dtype=bool), mask)
        row["scan"] = {
            "class_damage": class_damage(np.asarray(res.flagged, dtype=bool), mask, res.table.y),
            "auroc": _num(auroc(suspicion, mask)),
            "p_at_k": _num(precision_at_k(suspicion, mask)) if mask.any() else None,
            "flag_recall": _num(flags.recall),
            "flag_precision": _num(flags.precision),
            "n_flagged": flags.n_flagged,
            "flagged_frac": flags.n_flagged / len(frame),
            "false_flag_rate": _num(flags.false_flag_rate),
            "time_s": elapsed,
            **_fusion_fields(res, suspicion, mask),
            "flagged_by": _flagged_by(res),
            "per_class": _per_class(np.asarray(res.flagged, dtype=bool), mask, res.table.y),
        }
        row["memory"] = (
            {"peak_rss_mib": peak, "base_rss_mib": base, "method": MEMORY_METHOD} if measure_memory else None
        )
    except Exception as exc:  # fail closed: the cell is failed, never clean
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
        return row
    row["anchors"] = _run_anchors(frame, mask, cell, anchors) if cell.anchors else {}
    return row


def _fusion_fields(res: Any, suspicion: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """Per-detector AUROC (raw scores and calibrated strengths), the best single detector and ``scan - best``."""
    if not mask.any() or mask.all():
        return {"detector_auroc": {}, "strength_auroc": {}, "best_detector": None, "best_auroc": None,
                "fusion_gap": None, "fusion_ok": None}
    raw = {str(c): res.detector_scores[c].to_numpy() for c in res.detector_scores.columns}
    check = fusion_check(suspicion, raw, mask)
    strengths = fusion_check(suspicion, {str(c): res.strengths[c].to_numpy() for c in res.strengths.columns}, mask)
    return {
        "detector_auroc": {k: _num(v) if v is not None else None for k, v in check.detector_auroc.items()},
        "strength_auroc": {k: _num(v) if v is not None else None for k, v in strengths.detector_auroc.items()},
        "best_detector": check.best_detector,
        "best_auroc": _num(check.best_auroc),
        "fusion_gap": _num(check.gap),
        "fusion_ok": check.ok,
    }


def _flagged_by(res: Any) -> dict[str, int]:
    """How many flagged rows name each detector in ``row_detectors`` (which rule flagged them)."""
    counts: dict[str, int] = {}
    flagged = np.flatnonzero(np.asarray(res.flagged, dtype=bool))
    for i in flagged:
        names = [n.strip() for n in str(res.row_detectors[i]).split(",") if n.strip()] or ["(none given)"]
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _per_class(flagged: np.ndarray, mask: np.ndarray, y: np.ndarray | None) -> list[dict[str, int]]:
    """Per class code: clean rows and clean rows flagged (what ``class damage`` is the worst of)."""
    if y is None:
        return []
    y = np.asarray(y)
    clean = ~mask
    return [
        {"class": int(c), "clean_rows": int((clean & (y == c)).sum()), "clean_flagged": int((flagged & clean & (y == c)).sum())}
        for c in np.unique(y)
    ]


def _run_anchors(frame: Any, mask: np.ndarray, cell: Cell, anchors: Sequence[Anchor]) -> dict[str, Any]:
    from ..encoding import TableEncoder
    from ..validation import prepare_table

    prep = prepare_table(frame, label="label")
    X = TableEncoder().fit_transform(prep.frame, prep.features)
    out: dict[str, Any] = {}
    for anchor in anchors:
        if not anchor_available(anchor):
            out[anchor.name] = {"status": "n/a (not installed)"}
            continue
        try:
            t0 = time.perf_counter()
            s = np.asarray(anchor.score(X, prep.y, cell.seed), dtype=float)
            out[anchor.name] = {
                "status": "ok",
                "auroc": _num(auroc(s, mask)),
                "p_at_k": _num(precision_at_k(s, mask)) if mask.any() else None,
                "time_s": time.perf_counter() - t0,
            }
        except Exception as exc:
            out[anchor.name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return out


def run_cell_isolated(cell: Cell, *, timeout: float | None = None) -> dict[str, Any]:
    """Run one cell in a fresh ``python -m poisonguard.bench._worker`` process (measures peak RSS)."""
    with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp:
        spec, out = Path(tmp) / "cell.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps(cell.to_dict()), encoding="utf-8")
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "poisonguard.bench._worker", str(spec), str(out)],
                capture_output=True, text=True, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            return _failed(cell, f"timed out after {timeout} s")
        if proc.returncode != 0 or not out.exists():
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            return _failed(cell, f"worker exited with code {proc.returncode}: {tail}")
        return json.loads(out.read_text(encoding="utf-8"))


def _failed(cell: Cell, error: str) -> dict[str, Any]:
    return {"key": cell.key, "table": cell.table, "attack": cell.display, "kind": cell.attack, "rate": cell.rate,
            "seed": cell.seed, "status": "failed", "error": error}


@dataclass
class BenchReport:
    """Result rows of a benchmark run.

    Attributes
    ----------
    rows : list of dict
        One per matrix cell (see :func:`run_cell`).
    speed : list of dict
        One per speed cell.
    meta : dict
        Versions, machine, settings and the memory method.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    speed: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [r["key"] for r in self.rows + self.speed if r.get("status") != "ok"]

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta, "rows": self.rows, "speed": self.speed}

    def write_json(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False, default=str) + "\n", encoding="utf-8")
        return p


def bench_meta(isolate: bool, anchors: Sequence[Anchor]) -> dict[str, Any]:
    """Versions, machine and settings of a run (the ``meta`` of :class:`BenchReport`)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    pkgs = ("poisonguard", "numpy", "pandas", "scikit-learn", "cleanlab", "pyod", "adversarial-robustness-toolbox", "torch")
    for pkg in pkgs:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s)",
        "versions": versions,
        "isolated": isolate,
        "memory_method": MEMORY_METHOD if isolate else "not measured (in-process run)",
        "anchors": {a.name: ("ok" if anchor_available(a) else "n/a (not installed)") for a in anchors},
    }


def run_benchmark(
    cells: Sequence[Cell],
    *,
    speed: Sequence[Cell] = (),
    isolate: bool = True,
    anchors: Sequence[Anchor] | None = None,
    progress: bool = False,
    timeout: float | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> BenchReport:
    """Run every cell (and speed cell) and collect a :class:`BenchReport`.

    Parameters
    ----------
    cells, speed : sequence of Cell
        Matrix cells and speed cells.
    isolate : bool, default=True
        Run each cell in a fresh worker process (measures peak RSS; costs an
        interpreter start per cell). ``False`` runs in this process, without memory.
    anchors : sequence of Anchor, optional
        Reference detectors to score beside the scan (for cells with ``anchors``);
        default ``anchors_for("scan")``. Isolated workers always use that default.
    progress : bool, default=False
        Show a rich progress bar on stderr.
    timeout : float, optional
        Per-cell timeout in seconds (isolated runs only).
    """
    anchors = anchors_for("scan") if anchors is None else tuple(anchors)
    report = BenchReport(meta=bench_meta(isolate, anchors))
    todo = [("row", c) for c in cells] + [("speed", c) for c in speed]

    def one(cell: Cell) -> dict[str, Any]:
        if isolate:
            return run_cell_isolated(cell, timeout=timeout)
        return run_cell(cell, anchors=anchors)

    if progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=False,
        ) as bar:
            task = bar.add_task("bench", total=len(todo))
            for where, cell in todo:
                bar.update(task, description=f"bench {cell.key}")
                row = one(cell)
                (report.rows if where == "row" else report.speed).append(row)
                if on_row:
                    on_row(row)
                bar.advance(task)
            bar.update(task, description="bench done")
    else:
        for where, cell in todo:
            row = one(cell)
            (report.rows if where == "row" else report.speed).append(row)
            if on_row:
                on_row(row)
    return report
