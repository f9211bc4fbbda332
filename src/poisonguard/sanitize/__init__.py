"""Sanitize a table: set flagged or reviewer-rejected rows aside, with a manifest; measure the effect.

* :func:`sanitize` splits a table into kept and quarantined rows, from a fresh scan
  or from a reviewed ``suspicious_samples.csv`` (whose ``decision`` column overrides
  the detectors), and builds a manifest of every removed row and why.
* :func:`write_outputs` writes the kept rows, the quarantined rows and the manifest
  atomically (temporary file + rename).
* :func:`evaluate` trains a model on the poisoned and on the sanitized table and
  reports clean accuracy and attack success rate on a triggered holdout.
"""

from __future__ import annotations

from ._evaluate import EvaluationResult, ModelScore, evaluate
from .._io import atomic_write_json, atomic_write_table, file_digest
from ._sanitize import KEEP_DECISIONS, REMOVE_DECISIONS, RemovedRow, SanitizeResult, sanitize, write_outputs

__all__ = [
    "sanitize",
    "write_outputs",
    "SanitizeResult",
    "RemovedRow",
    "REMOVE_DECISIONS",
    "KEEP_DECISIONS",
    "evaluate",
    "EvaluationResult",
    "ModelScore",
    "atomic_write_table",
    "atomic_write_json",
    "file_digest",
]
