"""Markdown rendering of a :class:`~poisonguard.bench.BenchReport`."""

from __future__ import annotations

from typing import Any

from ._anchors import ANCHORS, anchors_for
from ._run import BenchReport

__all__ = ["to_markdown"]

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


def to_markdown(report: BenchReport) -> str:
    """The matrix table, the speed table and notes, as GitHub markdown."""
    lines: list[str] = []
    anchors = _columns(report)
    head = ["table", "attack", "rate", "rows", "poisoned", "AUROC", "P@k", "flag recall", "flag precision",
            "flagged", "class damage", "scan s", "peak RSS MiB"] + [f"{title} AUROC / P@k" for _, title in anchors]
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
            _f(s["auroc"]), _f(s["p_at_k"]),
            *((_DASH, _DASH) if r.get("kind") == "clean" else (_f(s["flag_recall"]), _f(s["flag_precision"]))),
            _pct(s["flagged_frac"]), _pct(s.get("class_damage")), _secs(s["time_s"]), _mib(r.get("memory")),
        ] + [_anchor_cell(r, name) for name, _ in anchors]
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
    m = report.meta
    lines += [
        "",
        "AUROC: of `suspicion` against the poisoned-row mask. P@k: precision among the k highest scores, "
        "k = number of poisoned rows (ties at the cut count at their expected value). flag recall / precision: "
        "of the default flag rule (`res.flagged`). flagged: share of rows flagged; on a *clean* row this is the "
        "false-flag rate. class damage: the largest share of any one class's clean rows that the default rule "
        "flagged. Anchors: IsolationForest (contamination 0.01, score = -score_samples), cleanlab label "
        "quality from 5-fold CV logistic regression (1 - quality), PyOD ECOD, and the share of the 10 nearest "
        "neighbours (standardized features) with another label.",
        f"Memory: {m.get('memory_method', _DASH)}. Machine: {m.get('machine', _DASH)}, Python {m.get('python', _DASH)}; "
        "timings are wall-clock on a shared machine and noisy.",
    ]
    return "\n".join(lines) + "\n"
