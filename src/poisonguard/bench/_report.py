"""Markdown rendering of a :class:`~poisonguard.bench.BenchReport`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._anchors import ANCHORS, anchors_for
from ._metrics import CLEAN_CLASS_LIMIT, CLEAN_ROW_LIMIT, FUSION_TOLERANCE, OUTLIER_KINDS, OUTLIER_RECALL_FLOOR
from ._run import BenchReport

__all__ = ["to_markdown", "breaks", "git_head"]

_DASH = "–"


def _f(x: Any, digits: int = 3) -> str:
    return _DASH if x is None else f"{x:.{digits}f}"


def _pct(x: Any) -> str:
    return _DASH if x is None else f"{100 * x:.1f}%"


def _secs(x: Any) -> str:
    if x is None:
        return _DASH
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _mib(mem: Any, key: str = "peak_rss_mib") -> str:
    return _DASH if not mem or mem.get(key) is None else f"{mem[key]:.0f}"


def _anchor_cell(row: dict[str, Any], name: str) -> str:
    a = (row.get("anchors") or {}).get(name)
    if a is None:
        return _DASH
    if a.get("status") != "ok":
        return a.get("status", "failed") if a.get("status") != "failed" else "failed"
    if a.get("auroc") is None:
        return _DASH
    return f"{a['auroc']:.3f} / {_f(a.get('p_at_k'), 2)}"


def _columns(report: BenchReport) -> list[tuple[str, str]]:
    """(name, title) of the anchors the report ran (its ``meta["anchors"]``), in order."""
    titles = {a.name: a.title for a in ANCHORS}
    names = list(report.meta.get("anchors") or ()) or [a.name for a in anchors_for("scan")]
    return [(n, titles.get(n, n)) for n in names]


def _detector_names(report: BenchReport) -> list[str]:
    """Detectors that ran in any cell, in order of first appearance."""
    names: list[str] = []
    for r in report.rows:
        for name in ((r.get("scan") or {}).get("detector_auroc") or {}):
            if name not in names:
                names.append(name)
    return names


def _gap(s: dict[str, Any]) -> str:
    gap = s.get("fusion_gap")
    if gap is None:
        return _DASH
    return f"{gap:+.3f}" + (" ✗" if gap < -FUSION_TOLERANCE else "")


def _best(s: dict[str, Any]) -> str:
    if s.get("best_auroc") is None:
        return _DASH
    return f"{s['best_detector']} {s['best_auroc']:.3f}"


def to_markdown(report: BenchReport, *, title: str | None = None) -> str:
    """The matrix table, the speed table, what breaks, and notes, as GitHub markdown."""
    lines: list[str] = [f"## {title}", ""] if title else []
    anchors = _columns(report)
    detectors = _detector_names(report)
    head = (["table", "attack", "rate", "rows", "poisoned", "AUROC", "best single", "scan − best", "P@k",
             "flag recall", "flag precision", "flagged", "class damage", "scan s", "peak RSS MiB"]
            + [f"{title} AUROC / P@k" for _, title in anchors] + [f"{d} AUROC" for d in detectors])
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
    for r in report.rows:
        rate = _DASH if r.get("kind") == "clean" else f"{r['rate']:.0%}"
        if r.get("status") != "ok":
            cells = [r["table"], r["attack"], rate, "FAILED: " + str(r.get("error", ""))[:80]] + [""] * (len(head) - 4)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        s = r["scan"]
        cells = [
            r["table"], r["attack"], rate, str(r["n_rows"]), str(r["n_poisoned"]),
            _f(s["auroc"]), _best(s), _gap(s), _f(s["p_at_k"]),
            *((_DASH, _DASH) if r.get("kind") == "clean" else (_f(s["flag_recall"]), _f(s["flag_precision"]))),
            _pct(s["flagged_frac"]), _pct(s.get("class_damage")), _secs(s["time_s"]), _mib(r.get("memory")),
        ] + [_anchor_cell(r, name) for name, _ in anchors] + [
            _f((s.get("detector_auroc") or {}).get(d)) for d in detectors
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if report.speed:
        lines += ["", "| speed: table | rows x features | poisoned | scan s | peak RSS MiB | RSS before scan MiB | AUROC | flagged |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in report.speed:
            if r.get("status") != "ok":
                lines.append(f"| {r['table']} | FAILED: {str(r.get('error', ''))[:80]} | | | | | | |")
                continue
            s = r["scan"]
            lines.append(
                f"| {r['table']} {r['attack']} {r['rate']:.0%} | {r['n_rows']:,} x {r['n_features']} | {r['n_poisoned']:,} | "
                f"{_secs(s['time_s'])} | {_mib(r.get('memory'))} | {_mib(r.get('memory'), 'base_rss_mib')} | "
                f"{_f(s['auroc'])} | {_pct(s['flagged_frac'])} |"
            )
    found = breaks(report)
    lines += ["", f"What breaks ({len(found)} cell(s)):" if found else "What breaks: nothing."]
    lines += [f"- {b}" for b in found]
    m = report.meta
    lines += [
        "",
        "AUROC: of `suspicion` against the poisoned-row mask. best single: the registered detector whose own raw "
        f"score has the highest AUROC; scan − best: the scan's AUROC minus it (✗: below −{FUSION_TOLERANCE}, "
        "the combination lost a detector's signal); the last columns: each detector's own AUROC. "
        "P@k: precision among the k highest scores, "
        "k = number of poisoned rows (ties at the cut count at their expected value). flag recall / precision: "
        "of the default flag rule (`res.flagged`). flagged: share of rows flagged; on a *clean* row this is the "
        "false-flag rate. class damage: the largest share of any one class's clean rows that the default rule "
        "flagged. Anchors: IsolationForest (contamination 0.01, score = -score_samples), cleanlab label "
        "quality from 5-fold CV logistic regression (1 - quality), PyOD ECOD, and the share of the 10 nearest "
        "neighbours (standardized features) with another label. What breaks: clean cells that flag more than "
        f"{CLEAN_ROW_LIMIT:.0%} of rows or {CLEAN_CLASS_LIMIT:.0%} of a class; attacked cells where the scan trails "
        f"its best single detector or an anchor by more than {FUSION_TOLERANCE}; outlier, perturbed or scaled "
        f"cells whose flag rule catches under {OUTLIER_RECALL_FLOOR:.0%} of the poisoned rows; attacked cells whose "
        f"flag rule also takes more than {CLEAN_CLASS_LIMIT:.0%} of a class's clean rows; failed cells.",
        f"Memory: {m.get('memory_method', _DASH)}. Machine: {m.get('machine', _DASH)}, Python {m.get('python', _DASH)}; "
        "timings are wall-clock on a shared machine and noisy.",
    ]
    return "\n".join(lines) + "\n"


def _flagged_by(s: dict[str, Any]) -> str:
    by = s.get("flagged_by") or {}
    return ", ".join(f"{k} {v}" for k, v in list(by.items())[:3]) or "nothing named"


def breaks(report: BenchReport) -> list[str]:
    """One line per cell that misses a target: clean-table damage, lost fusion signal, losing to an anchor, failure."""
    out: list[str] = []
    for r in report.rows:
        where = f"{r['table']} / {r['attack']}" + ("" if r.get("kind") == "clean" else f" {r['rate']:.0%}")
        if r.get("status") != "ok":
            out.append(f"{where}: FAILED ({str(r.get('error', ''))[:120]})")
            continue
        s = r["scan"]
        if r.get("kind") == "clean":
            frac, damage = s.get("flagged_frac") or 0.0, s.get("class_damage") or 0.0
            if frac > CLEAN_ROW_LIMIT or damage > CLEAN_CLASS_LIMIT:
                out.append(f"{where}: clean table, {s['n_flagged']} rows flagged ({_pct(frac)}), class damage "
                           f"{_pct(damage)}; flagged rows name {_flagged_by(s)}")
            continue
        problems = []
        if s.get("fusion_gap") is not None and s["fusion_gap"] < -FUSION_TOLERANCE:
            problems.append(f"scan AUROC {_f(s['auroc'])} < {s['best_detector']} alone {_f(s['best_auroc'])}")
        scan_auc = s.get("auroc")
        for name, a in (r.get("anchors") or {}).items():
            if a.get("status") == "ok" and a.get("auroc") is not None and scan_auc is not None \
                    and a["auroc"] > scan_auc + FUSION_TOLERANCE:
                problems.append(f"anchor {name} {a['auroc']:.3f} > scan {scan_auc:.3f}")
        damage = s.get("class_damage")
        if damage is not None and damage > CLEAN_CLASS_LIMIT:
            worst = max(s.get("per_class") or [{}], key=lambda c: c.get("clean_flagged", 0) / max(c.get("clean_rows", 1), 1))
            detail = f" (class {worst['class']}: {worst['clean_flagged']} of {worst['clean_rows']} clean rows)" if worst else ""
            problems.append(f"class damage {_pct(damage)}{detail}; flagged rows name {_flagged_by(s)}")
        recall = s.get("flag_recall")
        if r.get("kind") in OUTLIER_KINDS and recall is not None and recall < OUTLIER_RECALL_FLOOR:
            problems.append(f"flag recall {recall:.3f} ({_pct(s.get('flagged_frac'))} of rows flagged)")
        if problems:
            out.append(f"{where}: " + "; ".join(problems))
    return out


def git_head(cwd: str | Path) -> str | None:
    """The checkout's short commit, marked when ``src/`` has uncommitted changes; None outside git.

    Benchmarks write it into their results so that a table says which code measured it.
    """
    import subprocess

    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, check=False, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
                               cwd=cwd, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    head = proc.stdout.strip() or None
    return f"{head} (src/ has uncommitted changes)" if head and dirty.stdout.strip() else head
