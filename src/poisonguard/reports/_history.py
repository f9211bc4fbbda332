"""The check history as one table (``monitor history``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

__all__ = ["history_frame", "HISTORY_COLUMNS"]

HISTORY_COLUMNS = ["check", "window_end", "status", "predictions", "labelled", "accuracy", "precision", "recall", "f1",
                   "lowest class recall", "prediction PSI", "alerts"]


def _worst_recall(body: dict[str, Any]) -> str:
    per = [(c["value"], c["label"]) for c in body.get("checks", [])
           if c["metric"] == "recall" and c["label"] is not None and c["value"] is not None and not c.get("note")]
    if not per:
        return "–"
    v, label = min(per)
    return f"{label}: {v:.3f}"


def history_frame(bodies: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per stored check (the JSON bodies of :meth:`Monitor.history`), oldest first."""
    rows = []
    for b in bodies:
        m = b.get("metrics") or {}
        psi = next((d["psi"] for d in b.get("drift", []) if d["kind"] == "predictions"), None)
        rules = [a["rule"] for a in b.get("alerts", [])]
        rows.append({
            "check": b.get("check_id"), "window_end": b.get("window_end_iso"), "status": b.get("status"),
            "predictions": b.get("n_predictions"), "labelled": b.get("n_labelled"),
            "accuracy": m.get("accuracy"), "precision": m.get("precision"), "recall": m.get("recall"),
            "f1": m.get("f1"), "lowest class recall": _worst_recall(b), "prediction PSI": psi,
            "alerts": (f"{len(rules)}: " + ", ".join(rules[:3]) + (" ..." if len(rules) > 3 else "")) if rules else "",
        })
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)
