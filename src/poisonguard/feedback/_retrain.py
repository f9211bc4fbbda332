"""Batched retraining: campaign check, batch, shadow (challenger) model, gate, promotion.

Never real time: ``poisonguard retrain`` runs on a schedule (:data:`DEFAULT_SCHEDULE`,
weekly) and closes the loop once per batch. Every step that fails leaves the champion
where it is. A detected campaign fails the gate (``feedback:campaigns``) until a person
has reviewed the quarantine, because its undetected part may sit in the batch. A blocked
batch goes back to the pending feedback, minus the rows the scan flagged, which are
quarantined for review; the next run tries again.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError, InputError
from ..store import Store
from ..validation import as_frame, load_table
from ._campaign import CampaignReport, confident_threshold, confusion_rates, detect_campaigns
from ._policy import FeedbackPolicy
from ._review import close_batch, reopen_batch, take_batch

__all__ = ["RetrainResult", "retrain", "DEFAULT_SCHEDULE", "cron_line"]

log = logging.getLogger(__name__)
#: weekly, Sunday 03:00
DEFAULT_SCHEDULE = "0 3 * * 0"


def cron_line(schedule: str = DEFAULT_SCHEDULE, *, command: str) -> str:
    """A crontab line running ``command`` on ``schedule`` (five cron fields).

    Raises
    ------
    InputError
        ``schedule`` does not have five fields.
    """
    fields = schedule.split()
    if len(fields) != 5:
        raise InputError(f"cron schedule {schedule!r} must have 5 fields (minute hour day month weekday)")
    return f"{' '.join(fields)} {command}"


@dataclass
class RetrainResult:
    """What one retraining run did. ``status``: ``promoted``, ``blocked`` or ``no-feedback``."""

    status: str
    champion: int | None
    challenger: int | None = None
    batch_id: int | None = None
    n_items: int = 0
    campaigns: CampaignReport = field(default_factory=CampaignReport)
    gate: Any = None  # GateReport

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "champion": self.champion, "challenger": self.challenger,
                "batch_id": self.batch_id, "n_items": self.n_items,
                "campaigns": [t.__dict__ for t in self.campaigns.campaigns],
                "campaign_quarantined": len(self.campaigns.quarantined),
                "gate": None if self.gate is None else self.gate.to_dict()}


def _table(data: Any, what: str) -> pd.DataFrame:
    if data is None:
        raise InputError(f"retrain needs the {what} table")
    return load_table(data) if isinstance(data, (str, Path)) else as_frame(data, where=what)


def retrain(store: Store, *, base: Any, validation: Any, label: str, settings: Any = None,
            gate_policy: Any = None, feedback_policy: FeedbackPolicy | None = None, canaries: Sequence[Any] = (),
            promote: bool = True, root: str | Path | None = None, seed: int = 0) -> RetrainResult:
    """Run one batch through the loop; see the module docstring.

    Parameters
    ----------
    base : path or DataFrame
        The data the champion was trained on (the challenger trains on it plus the batch).
    validation : path or DataFrame
        Held-out labelled rows the gate evaluates on; never trained on.
    canaries : sequence of Canary
        Known triggers; simulated and batch-derived canaries are always added.
    promote : bool
        Promote the challenger when the gate passes (the only way it becomes champion).

    Raises
    ------
    NotFoundError
        No champion (register the first one with ``poisonguard registry add --champion``).
    """
    from ..gate import GateCheck, batch_canaries, record_report, run_gate, simulated_canaries
    from ..registry import load_alias, promote as promote_version, register_model, set_alias
    from ..training import TrainSettings, save_model, train_model

    champ_v, champion = load_alias(store, "champion")
    base_df = _table(base, "base")
    val_df = _table(validation, "validation")
    feats = list(champion.features)
    missing = [c for c in [*feats, label] if c not in base_df or c not in val_df]
    if missing:
        raise DataError(f"base or validation table lacks column(s) {missing[:10]} the champion needs")
    val_df = val_df[[*feats, label]]
    campaigns = detect_campaigns(store, policy=feedback_policy,
                                 error_rates=confusion_rates(champion, val_df, label))
    batch = take_batch(store, features=feats, label=label, classes=list(champion.classes))
    if batch is None:
        log.info("no accepted feedback since the last batch; nothing to retrain")
        return RetrainResult(status="no-feedback", champion=champ_v, campaigns=campaigns)
    try:
        train_df = pd.concat([base_df[[*feats, label]], batch.frame], ignore_index=True)
        s = settings or TrainSettings(model="logreg", val_fraction=0.0, seed=seed)
        model = train_model(train_df, label=label, settings=s)
        with tempfile.TemporaryDirectory(prefix="poisonguard-challenger-") as tmp:
            save_model(model, Path(tmp) / "model")
            info = register_model(store, Path(tmp) / "model", root=root, note=f"challenger from batch {batch.batch_id}",
                                  detail={"batch_id": batch.batch_id, "n_batch": len(batch.feedback_ids),
                                          "confident_threshold": confident_threshold(model, val_df, label)})
        set_alias(store, "challenger", info.version, reason=f"batch {batch.batch_id}")
        probes = [*canaries, *simulated_canaries(val_df, feats, seed=seed),
                  *batch_canaries(batch.frame, base_df, label, feats)]
        found = campaigns.campaigns
        campaign_check = GateCheck(
            "feedback:campaigns", not found, float(len(found)), 0.0,
            "no coordinated campaign in the pending feedback" if not found else
            f"{len(found)} campaign(s) detected ({'; '.join(c.kind + ' ' + c.key for c in found[:5])}): the batch waits "
            "for a review of the quarantine (poisonguard feedback review) before any promotion")
        report = run_gate(model, champion=champion, validation=val_df, label=label, batch=batch.frame,
                          base=base_df[[*feats, label]], canaries=probes, policy=gate_policy,
                          challenger_version=info.version, champion_version=champ_v, extra_checks=[campaign_check])
        report = record_report(store, report)
    except BaseException:
        close_batch(store, batch.batch_id, status="failed", detail={"error": "retraining raised; see the log"})
        raise
    status = "blocked"
    if report.passed and promote:
        promote_version(store, info.version, gate_report=report.id, reason=f"gate report {report.id}")
        status = "promoted"
    elif report.passed:
        status = "passed"
    if status == "blocked":
        flagged = [batch.feedback_ids[i] for i in report.metrics.get("batch_flagged", [])]
        reopen_batch(store, batch.batch_id, quarantine=flagged,
                     reason=f"scan: flagged in batch {batch.batch_id}, whose gate report {report.id} failed")
    close_batch(store, batch.batch_id, status=status, detail={"gate_report": report.id, "challenger": info.version})
    return RetrainResult(status=status, champion=champ_v, challenger=info.version, batch_id=batch.batch_id,
                         n_items=len(batch.feedback_ids), campaigns=campaigns, gate=report)
