"""The self-contained HTML monitoring report.

Plots are drawn with matplotlib's object API (``Figure``, no pyplot: no global state,
no GUI backend) and embedded as base64 PNG, so the page is one file that opens offline.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes
from ..errors import DataError
from ._history import history_frame

__all__ = ["render_report", "write_report"]

_METRICS = ("accuracy", "precision", "recall", "f1")
_CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}td.l{text-align:left}.alert{color:#b00;font-weight:600}.ok{color:#070}
.summary span{display:inline-block;margin-right:18px}img{max-width:100%}"""


def _dates(bodies: Sequence[dict[str, Any]]) -> list[_dt.datetime]:
    return [_dt.datetime.fromtimestamp(b["window_end"], tz=_dt.timezone.utc) for b in bodies]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # a single check: the date locator warns that one day has no interval
        warnings.filterwarnings("ignore", message="AutoDateLocator was unable", category=UserWarning)
        fig.savefig(buf, format="png", dpi=90)  # fixed margins: a "tight" box would draw every figure twice
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _check_of(body: dict[str, Any], metric: str, label: str | None) -> dict[str, Any] | None:
    return next((c for c in body.get("checks", []) if c["metric"] == metric and c["label"] == label), None)


def _series(bodies: Sequence[dict[str, Any]], metric: str, label: str | None) -> tuple[np.ndarray, ...]:
    """Value, baseline, drop threshold, minimum and breached flag of one rule over the checks."""
    cols: list[list[float]] = [[], [], [], [], []]
    for b in bodies:
        c = _check_of(b, metric, label)
        if c is None:
            for col in cols:
                col.append(np.nan)
            continue
        base = c["baseline"]
        cols[0].append(np.nan if c["value"] is None else c["value"])
        cols[1].append(np.nan if base is None else base)
        cols[2].append(np.nan if base is None or c["max_drop"] is None else base - c["max_drop"])
        cols[3].append(np.nan if c["min"] is None else c["min"])
        cols[4].append(1.0 if c["breached"] else 0.0)
    return tuple(np.asarray(c, dtype=float) for c in cols)


def _metric_axes(ax: Any, x: list[_dt.datetime], bodies: Sequence[dict[str, Any]], metric: str,
                 label: str | None, title: str, baseline: float | None) -> None:
    value, base, drop, low, breached = _series(bodies, metric, label)
    if baseline is not None and not np.isfinite(base).any():  # no labelled window yet: still show the baseline
        base = np.full(len(x), baseline)
    ax.plot(x, value, marker="o", ms=3, lw=1.2, color="#1f77b4", label="window")
    ax.plot(x, base, color="#2ca02c", lw=1, label="baseline")
    ax.step(x, drop, where="mid", color="#d62728", lw=1, ls="--", label="alert threshold")
    if np.isfinite(low).any():
        ax.step(x, low, where="mid", color="#ff7f0e", lw=1, ls=":", label="minimum")
    hit = breached > 0
    if hit.any():
        ax.scatter(np.asarray(x, dtype=object)[hit], value[hit], s=60, facecolors="none", edgecolors="#d62728",
                   lw=1.5, zorder=5, label="alert")
    for i, b in enumerate(bodies):  # any alert of the check: a faint band, so panels line up
        if b.get("alerts"):
            ax.axvspan(x[i] - _dt.timedelta(hours=8), x[i] + _dt.timedelta(hours=8), color="#d62728", alpha=0.07)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def _figure(n: int, ncols: int, height: float) -> tuple[Any, np.ndarray]:
    from matplotlib.figure import Figure

    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(4.2 * ncols, height * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12 / nrows, top=1 - 0.1 / nrows, hspace=0.45, wspace=0.25)
    for ax in axes[n:]:
        ax.set_visible(False)
    locator = AutoDateLocator(maxticks=6)
    for ax in axes[:n]:
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return fig, axes


def _overall_plot(bodies: Sequence[dict[str, Any]], x: list[_dt.datetime], base: dict[str, Any]) -> str:
    fig, axes = _figure(4, 2, 2.6)
    for ax, m in zip(axes, _METRICS):
        _metric_axes(ax, x, bodies, m, None, f"{m} (macro)" if m != "accuracy" else m, base["metrics"].get(m))
    axes[0].legend(fontsize=7, loc="lower left")
    return _png(fig)


def _class_plot(bodies: Sequence[dict[str, Any]], x: list[_dt.datetime], classes: list[str],
                base: dict[str, Any]) -> str:
    shown = classes[:24]
    recall = base["metrics"]["per_class"]["recall"]
    fig, axes = _figure(len(shown), 4, 2.0)
    for i, (ax, cls) in enumerate(zip(axes, shown)):
        _metric_axes(ax, x, bodies, "recall", cls, f"recall of class {cls}", recall[i] if i < len(recall) else None)
    axes[0].legend(fontsize=6, loc="lower left")
    return _png(fig)


def _drift_plot(bodies: Sequence[dict[str, Any]], x: list[_dt.datetime]) -> str:
    fig, axes = _figure(2, 2, 2.6)
    psi = [next((d["psi"] for d in b.get("drift", []) if d["kind"] == "predictions"), np.nan) for b in bodies]
    thr = [next((d["psi_threshold"] for d in b.get("drift", []) if d["kind"] == "predictions"), np.nan) for b in bodies]
    axes[0].plot(x, psi, marker="o", ms=3, label="prediction PSI")
    axes[0].step(x, thr, where="mid", ls="--", color="#d62728", label="PSI threshold")
    axes[0].set_title("prediction drift (PSI)", fontsize=9)
    axes[0].legend(fontsize=7)
    for kind, color in (("share", "#9467bd"), ("probe", "#8c564b"), ("confidence", "#e377c2")):
        vals = []
        for b in bodies:
            ps = [s["p_value"] for s in b.get("signatures", []) if s["signature"] == kind and s["p_value"] is not None]
            vals.append(-np.log10(max(min(ps), 1e-300)) if ps else np.nan)
        axes[1].plot(x, vals, marker=".", color=color, label=f"{kind}: -log10 min p")
    thr_p = [next((s["threshold"] for s in b.get("signatures", [])), np.nan) for b in bodies]
    axes[1].step(x, -np.log10(np.asarray(thr_p, dtype=float)), where="mid", ls="--", color="#d62728",
                 label="decision threshold")
    axes[1].set_title("poisoning signatures (presence tests)", fontsize=9)
    axes[1].legend(fontsize=7)
    for ax in axes[:2]:
        ax.tick_params(labelsize=7)
    return _png(fig)


def _table(frame: Any) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for r in frame.itertuples(index=False):
        cells = []
        for v in r:
            txt = f"{v:.4f}" if isinstance(v, float) and v == v else ("–" if v is None or v != v else str(v))
            cls = ' class="l alert"' if txt in ("alert", "failed") else (' class="l"' if isinstance(v, str) else "")
            cells.append(f"<td{cls}>{html.escape(txt)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _alert_table(alerts: Sequence[dict[str, Any]], bodies: Sequence[dict[str, Any]]) -> str:
    if not alerts:
        return "<p>No alert has fired.</p>"
    window_end = {b.get("check_id"): b.get("window_end") for b in bodies}
    rows = []
    for a in alerts[-200:]:
        t = window_end.get(a["check_id"]) or a["at"]
        when = _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        if a["suppressed"]:
            sent = "suppressed (cooldown)"
        elif not a["deliveries"]:
            sent = "not sent (notifications off)"
        else:
            sent = "delivered" if a["delivered"] else "NOT delivered"
        failed = [d for d in a["deliveries"] if not d["ok"]]
        if failed:
            sent += "; failed: " + ", ".join(f"{d['channel']} ({d['error']})" for d in failed)
        rows.append(f"<tr><td>{a['check_id']}</td><td class='l'>{when}</td><td class='l alert'>"
                    f"{html.escape(a['rule'])}</td><td class='l'>{html.escape(a['message'])}</td>"
                    f"<td class='l'>{html.escape(sent)}</td></tr>")
    return ("<table><tr><th>check</th><th>window end (UTC)</th><th>rule</th><th>message</th><th>notification</th></tr>"
            + "".join(rows) + "</table>")


def render_report(monitor: Any, *, limit: int | None = None) -> str:
    """The HTML page for ``monitor``'s model (a :class:`~poisonguard.monitoring.Monitor`).

    Raises
    ------
    NotFoundError
        Unknown model.
    DataError
        The model has no stored check yet.
    """
    bodies = monitor.history(limit=limit)
    if not bodies:
        raise DataError(f"model {monitor.model} has no stored check yet; run: poisonguard monitor check")
    _, classes, base = monitor.baseline()
    alerts = monitor.alerts()
    x = _dates(bodies)
    n_alert = sum(1 for b in bodies if b.get("status") == "alert")
    bm = base["metrics"]
    title = html.escape(f"poisonguard monitoring report: {monitor.model}")
    summary = (f"<div class='summary'><span>checks: <b>{len(bodies)}</b></span>"
               f"<span>with alerts: <b class='{'alert' if n_alert else 'ok'}'>{n_alert}</b></span>"
               f"<span>baseline: {base['n']} rows, accuracy {bm['accuracy']:.4f}, macro F1 {bm['f1']:.4f}</span>"
               f"<span>windows: {html.escape(str(bodies[0].get('window_start_iso')))} .. "
               f"{html.escape(str(bodies[-1].get('window_end_iso')))}</span></div>")
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style>"
        f"</head><body><h1>{title}</h1>{summary}",
        "<p>Each point is one check window. Green: the baseline; dashed red: the alert threshold (baseline minus the "
        "allowed drop); circled points: the rule fired; shaded bands: checks with any alert.</p>",
        f"<h2>Metrics against the baseline</h2><img alt='overall metrics' src='{_overall_plot(bodies, x, base)}'>",
        f"<h2>Per-class recall</h2><img alt='per-class recall' src='{_class_plot(bodies, x, classes, base)}'>",
        f"<h2>Drift and poisoning signatures</h2><img alt='drift and signatures' src='{_drift_plot(bodies, x)}'>",
        f"<h2>Alerts</h2>{_alert_table(alerts, bodies)}",
        f"<h2>History</h2>{_table(history_frame(bodies))}",
        f"<p style='color:#777;font-size:11px'>generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} "
        "by poisonguard</p></body></html>",
    ]
    return "\n".join(parts)


def write_report(monitor: Any, out: str | Path, *, limit: int | None = None) -> Path:
    """Render the report and write it atomically to ``out``."""
    return atomic_write_bytes(render_report(monitor, limit=limit).encode("utf-8"), Path(out))
