"""The secured feedback loop: validation, reputation, campaign detection, quarantine, batches, retraining.

Feedback is never trusted implicitly: each item is accepted or quarantined with a
reason (both stored), coordinated campaigns are tested for before a batch is formed,
and a batch only reaches production through a shadow model that passes the promotion
gate (:mod:`poisonguard.gate`) into the registry (:mod:`poisonguard.registry`).
"""

from __future__ import annotations

from ._campaign import CampaignReport, CampaignTest, confident_threshold, confusion_rates, detect_campaigns
from ._ingest import ChampionView, Decision, FeedbackIn, canonical_features, item_key_for, submit_feedback
from ._models import STATUSES, FeedbackBatch, FeedbackEvent, FeedbackItem, FeedbackUser, PredictionLog, TrustedLabel
from ._policy import FeedbackPolicy, Reputation, reputation
from ._simulate import DemoLoop, SimulatedFeedback, demo_loop, flip_campaign, honest_feedback, loop_table, trigger_campaign
from ._retrain import DEFAULT_SCHEDULE, RetrainResult, cron_line, retrain
from ._review import (
    REVIEW_ACTIONS,
    Batch,
    FeedbackRecord,
    add_trusted_labels,
    close_batch,
    reopen_batch,
    feedback_counts,
    list_items,
    review,
    take_batch,
)

__all__ = [
    "FeedbackPolicy", "Reputation", "reputation",
    "FeedbackIn", "Decision", "ChampionView", "submit_feedback", "item_key_for", "canonical_features",
    "CampaignTest", "CampaignReport", "detect_campaigns", "confusion_rates", "confident_threshold",
    "FeedbackRecord", "Batch", "list_items", "review", "add_trusted_labels", "feedback_counts", "take_batch",
    "close_batch", "reopen_batch", "REVIEW_ACTIONS",
    "DemoLoop", "demo_loop", "SimulatedFeedback", "loop_table", "honest_feedback", "flip_campaign", "trigger_campaign",
    "RetrainResult", "retrain", "DEFAULT_SCHEDULE", "cron_line",
    "STATUSES", "FeedbackItem", "FeedbackUser", "TrustedLabel", "PredictionLog", "FeedbackBatch", "FeedbackEvent",
]
