"""The promotion gate: a challenger is promoted only if every check passes (fail closed).

Checks, each a named :class:`GateCheck` with its value and threshold:

* ``inputs``: a non-empty held-out validation set with the label, a champion to compare
  with (unless the policy allows a first model), a batch to check;
* ``value:accuracy`` / ``value:macro_f1``: TFX-style absolute thresholds;
* ``change:accuracy`` / ``change:macro_f1``: no worse than the champion by more than the
  allowed drop;
* ``recall:<class>``: per-class recall above a floor and not down by more than the limit;
* ``canary:<name>``: stamped probe rows must not move to a single class more than the
  champion's do (plus a margin);
* ``anomaly:*``: the scan engine finds the batch clean (no failed detector, flag rate
  under the limit, no backdoor presence test positive);
* any ``extra_checks`` the caller decided (the retrain adds ``feedback:campaigns``).

A check that raises is a failed check; a report with no checks fails. ``passed`` is
derived from the checks and cannot be set on its own.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from ..errors import GateBlockedError, NotFoundError
from ..store import Store
from ._canary import Canary, canary_rate, carriers
from ._models import GateReportRow

__all__ = ["GatePolicy", "GateCheck", "GateReport", "run_gate", "run_checks", "record_report", "get_report",
           "list_reports", "BACKDOOR_DETECTORS"]

log = logging.getLogger(__name__)
BACKDOOR_DETECTORS = ("backdoor_trigger", "backdoor_clean_label", "backdoor_spectral")


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds of the gate (all keyword-only; defaults are deliberately strict)."""

    min_accuracy: float = 0.0
    min_macro_f1: float = 0.0
    max_accuracy_drop: float = 0.01
    max_macro_f1_drop: float = 0.01
    min_class_recall: float = 0.0
    max_recall_drop: float = 0.05
    canary_margin: float = 0.15
    canary_floor: float = 0.20
    canary_confident: float = 0.9
    canary_min_carriers: int = 3
    max_batch_flag_rate: float = 0.05
    backdoor_detectors: tuple[str, ...] = BACKDOOR_DETECTORS
    allow_first_model: bool = False

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        bad = [f"{k}={v!r}" for k, v in asdict(self).items()
               if isinstance(v, float) and not (0.0 <= v <= 1.0)]
        if bad:
            raise ConfigError(f"gate thresholds must lie in [0, 1]: {', '.join(bad)}")


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    detail: str = ""


@dataclass
class GateReport:
    """Every check of one gate run. ``passed`` only if there is at least one check and all passed."""

    checks: list[GateCheck]
    challenger: int | None = None
    champion: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    at: float = field(default_factory=time.time)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def raise_for_status(self) -> "GateReport":
        if not self.passed:
            raise GateBlockedError(f"gate failed: {'; '.join(f'{c.name}: {c.detail}' for c in self.checks if not c.passed) or 'no checks ran'}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "challenger": self.challenger, "champion": self.champion,
                "passed": self.passed, "checks": [asdict(c) for c in self.checks], "metrics": self.metrics}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GateReport":
        return cls(checks=[GateCheck(**c) for c in d.get("checks", [])], challenger=d.get("challenger"),
                   champion=d.get("champion"), metrics=dict(d.get("metrics", {})), id=d.get("id"),
                   at=float(d.get("at", 0.0)))


CheckFn = Callable[[], list[GateCheck]]


def run_checks(groups: Sequence[tuple[str, CheckFn]]) -> list[GateCheck]:
    """Run check groups; a group that raises or returns nothing becomes one failed check."""
    out: list[GateCheck] = []
    for name, fn in groups:
        try:
            got = list(fn())
        except Exception as exc:  # fail closed: an error is a failed check, never a skipped one
            log.warning("gate check %s crashed: %s", name, exc)
            out.append(GateCheck(name=name, passed=False, detail=f"error: {type(exc).__name__}: {exc}"))
            continue
        if not got:
            out.append(GateCheck(name=name, passed=False, detail="the check produced no result"))
        out.extend(got)
    return out


def _metrics(model: Any, frame: pd.DataFrame, y: np.ndarray, classes: Sequence[Any]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    pred = np.asarray(model.predict(frame)).astype(str)
    yt = np.asarray(y).astype(str)
    labels = [str(c) for c in classes]
    rec = recall_score(yt, pred, labels=labels, average=None, zero_division=0)
    return {"accuracy": float(accuracy_score(yt, pred)),
            "macro_f1": float(f1_score(yt, pred, labels=labels, average="macro", zero_division=0)),
            "recall": {lab: float(r) for lab, r in zip(labels, rec)}}


def _value_and_change(ch: dict[str, Any], champ: dict[str, Any] | None, p: GatePolicy) -> list[GateCheck]:
    out = []
    for m, floor, drop in (("accuracy", p.min_accuracy, p.max_accuracy_drop), ("macro_f1", p.min_macro_f1, p.max_macro_f1_drop)):
        v = ch[m]
        out.append(GateCheck(f"value:{m}", v >= floor, v, floor, f"{m} {v:.4f} (floor {floor:.4f})"))
        if champ is not None:
            need = champ[m] - drop
            out.append(GateCheck(f"change:{m}", v >= need, v - champ[m], -drop,
                                 f"{m} {v:.4f} vs champion {champ[m]:.4f} (allowed drop {drop:.4f})"))
    for lab, r in ch["recall"].items():
        need = p.min_class_recall
        detail = f"recall {r:.4f} (floor {p.min_class_recall:.4f}"
        if champ is not None:
            need = max(need, champ["recall"].get(lab, 0.0) - p.max_recall_drop)
            detail += f"; champion {champ['recall'].get(lab, 0.0):.4f}, allowed drop {p.max_recall_drop:.4f}"
        out.append(GateCheck(f"recall:{lab}", r >= need, r, need, detail + ")"))
    return out


def _canary_checks(challenger: Any, champion: Any | None, frame: pd.DataFrame, y: np.ndarray,
                   canaries: Sequence[Canary], batch: pd.DataFrame, p: GatePolicy) -> list[GateCheck]:
    out = []
    need = max(p.canary_min_carriers, int(np.ceil(0.002 * len(batch))))
    for c in canaries:
        n_carry = carriers(batch, c)
        r = canary_rate(challenger, frame, y, c, confident=p.canary_confident)
        limit = p.canary_floor
        detail = (f"{n_carry} batch row(s) carry it; {r.rate:.3f} of {r.n_probe} confidently predicted probe rows "
                  f"moved to class {r.to_class!r}")
        if champion is not None:
            base = canary_rate(champion, frame, y, c, confident=p.canary_confident).rate
            limit = max(limit, base + p.canary_margin)
            detail += f" (champion {base:.3f}, margin {p.canary_margin:.2f})"
        if n_carry < need:
            # the batch cannot have taught a trigger it does not carry: any movement is the champion's too
            out.append(GateCheck(f"canary:{c.name}", True, r.rate, limit, detail + f"; fewer than {need} carriers"))
        else:
            out.append(GateCheck(f"canary:{c.name}", r.rate <= limit, r.rate, limit, detail))
    return out


def _anomaly_checks(base: pd.DataFrame | None, batch: pd.DataFrame, label: str, p: GatePolicy,
                    metrics: dict[str, Any]) -> list[GateCheck]:
    from ..scan import scan

    parts = [batch] if base is None else [base, batch]
    table = pd.concat(parts, ignore_index=True)
    res = scan(table, label=label, strict=False)
    if res.status != "ok":
        return [GateCheck("anomaly:scan", False, None, None, f"scan failed: {res.failures}")]
    in_batch = np.zeros(len(table), dtype=bool)
    in_batch[len(table) - len(batch):] = True
    rate = float(res.flagged[in_batch].mean()) if in_batch.any() else 0.0
    metrics["batch_flagged"] = [int(i) for i in np.flatnonzero(res.flagged[in_batch])]
    out = [GateCheck("anomaly:batch_flag_rate", rate <= p.max_batch_flag_rate, rate, p.max_batch_flag_rate,
                     f"{int(res.flagged[in_batch].sum())} of {int(in_batch.sum())} batch rows flagged by the scan")]
    info = res.summary()["detector_info"]
    for name in p.backdoor_detectors:
        if name not in info:
            continue
        poisoned = info[name].get("poisoned_classes", [])
        out.append(GateCheck(f"anomaly:{name}", not poisoned, float(len(poisoned)), 0.0,
                             f"presence test positive for class code(s) {poisoned}" if poisoned
                             else "presence test negative in every class"))
    return out


def _inputs(validation: pd.DataFrame | None, label: str, champion: Any, batch: pd.DataFrame | None,
            p: GatePolicy) -> list[GateCheck]:
    out = []
    ok = validation is not None and len(validation) > 0 and label in validation
    out.append(GateCheck("inputs:validation", ok, None if validation is None else float(len(validation)), None,
                         "held-out validation set present" if ok else "no held-out validation set (or no label column)"))
    ok_champ = champion is not None or p.allow_first_model
    out.append(GateCheck("inputs:champion", ok_champ, None, None,
                         "champion present" if champion is not None else
                         ("no champion; first model allowed by policy" if ok_champ else "no champion to compare with")))
    ok_batch = batch is not None and len(batch) > 0
    out.append(GateCheck("inputs:batch", ok_batch, None if batch is None else float(len(batch)), None,
                         "batch present" if ok_batch else "no batch to check"))
    return out


def run_gate(challenger: Any, *, champion: Any | None, validation: pd.DataFrame | None, label: str,
             batch: pd.DataFrame | None, base: pd.DataFrame | None = None, canaries: Sequence[Canary] = (),
             policy: GatePolicy | None = None, challenger_version: int | None = None,
             champion_version: int | None = None, extra_checks: Sequence[GateCheck] = ()) -> GateReport:
    """Evaluate a challenger; see the module docstring for the checks. Never raises for a failed check.

    ``extra_checks`` are decided elsewhere (e.g. ``feedback:campaigns`` by the retrain)
    and count like any other check. ``metrics["batch_flagged"]`` lists the positions of
    the batch rows the scan flagged.
    """
    p = policy or GatePolicy()
    metrics: dict[str, Any] = {}
    inputs = run_checks([("inputs", lambda: _inputs(validation, label, champion, batch, p))])
    if not all(c.passed for c in inputs):
        # fail closed without guessing: the other checks need these inputs
        return GateReport(checks=inputs, challenger=challenger_version, champion=champion_version)
    assert validation is not None and batch is not None
    y = validation[label].to_numpy()
    frame = validation.drop(columns=[label])
    # every class anyone knows of: a challenger that lost a class must show recall 0 for it, not skip it
    known = [*challenger.classes, *([] if champion is None else champion.classes), *np.unique(y)]
    classes = list(dict.fromkeys(str(c) for c in known))

    def values() -> list[GateCheck]:
        metrics["challenger"] = _metrics(challenger, frame, y, classes)
        metrics["champion"] = None if champion is None else _metrics(champion, frame, y, classes)
        return _value_and_change(metrics["challenger"], metrics["champion"], p)

    groups: list[tuple[str, CheckFn]] = [
        ("values", values),
        ("anomaly", lambda: _anomaly_checks(base, batch, label, p, metrics)),
    ]
    if canaries:
        groups.append(("canaries", lambda: _canary_checks(challenger, champion, frame, y, canaries, batch, p)))
    checks = inputs + run_checks(groups) + list(extra_checks)
    if not canaries:
        checks.append(GateCheck("canaries", False, None, None, "no canary probe set given"))
    return GateReport(checks=checks, challenger=challenger_version, champion=champion_version, metrics=metrics)


def record_report(store: Store, report: GateReport) -> GateReport:
    """Store a report (append-only) and return it with its id."""
    with store.write() as s:
        row = GateReportRow(at=report.at, challenger=report.challenger, champion=report.champion, passed=report.passed,
                            report=json.dumps(report.to_dict(), sort_keys=True, default=str))
        s.add(row)
        s.flush()
        report.id = int(row.id)
    from ..registry import ledger_note

    ledger_note(store, "gate", {"report": report.id, "challenger": report.challenger, "champion": report.champion,
                                "passed": report.passed, "failed": report.failed_checks})
    return report


def _from_row(r: GateReportRow) -> GateReport:
    rep = GateReport.from_dict(json.loads(r.report))
    rep.id = int(r.id)
    # the row's own columns are the ones promotion reads; a report body that disagrees is not trusted
    if rep.passed != bool(r.passed) or rep.challenger != r.challenger or rep.champion != r.champion:
        rep.checks.append(GateCheck("integrity", False, None, None, "stored report body disagrees with its row"))
    return rep


def get_report(store: Store, report_id: int) -> GateReport:
    with store.session() as s:
        r = s.get(GateReportRow, int(report_id))
        if r is None:
            raise NotFoundError(f"no gate report {report_id}")
        return _from_row(r)


def list_reports(store: Store) -> list[GateReport]:
    with store.session() as s:
        return [_from_row(r) for r in s.execute(select(GateReportRow).order_by(GateReportRow.id)).scalars()]
