"""Hardened training: safe model format, DP-SGD and certified robustness (DPA).

* :func:`train_model` / :func:`save_model` / :func:`load_model` train a model on a
  table and store it in a format that loading cannot turn into code execution,
  with a SHA-256 manifest that refuses tampered files.
* DP-SGD through Opacus (``TrainSettings(dp=DPSettings(...))``), with the RDP or
  PRV accountant; the epsilon actually spent is recorded. :func:`dp_recipe` gives
  settings tuned for DP-SGD (tanh MLP, clamped inputs, large batches, small clip).
* Deep Partition Aggregation (``TrainSettings(certified=CertifiedSettings(K))``)
  and its exact per-prediction certified radius (:func:`certify`).
* :func:`privacy_sweep` measures accuracy, and the damage of a poisoning attack,
  across privacy budgets.
"""

from __future__ import annotations

from ._certify import CertifyResult, certify, certified_accuracy_curve
from ._dpa import assign_partitions, dpa_radius, row_hashes
from ._model import TrainedModel, check_model_out, data_digest, ledger_version_for, load_model, save_model, train_model
from ._settings import CertifiedSettings, DPSettings, TrainSettings, dp_recipe, validate_settings
from ._sweep import DEFAULT_EPSILONS, SweepResult, privacy_sweep

__all__ = [
    "TrainSettings",
    "DPSettings",
    "dp_recipe",
    "CertifiedSettings",
    "validate_settings",
    "TrainedModel",
    "train_model",
    "save_model",
    "check_model_out",
    "load_model",
    "data_digest",
    "ledger_version_for",
    "row_hashes",
    "assign_partitions",
    "dpa_radius",
    "CertifyResult",
    "certify",
    "certified_accuracy_curve",
    "SweepResult",
    "privacy_sweep",
    "DEFAULT_EPSILONS",
]
