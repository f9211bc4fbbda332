"""Model registry: versions, ``champion`` / ``challenger`` aliases, gated promotion, rollback, history.

Models are stored in the safe format (:mod:`poisonguard.training`); the manifest digest
is pinned at registration and checked with every file's hash on each load. Aliases can
be mirrored to an MLflow model registry (:func:`mirror_to_mlflow`, extra ``mlflow``).
"""

from __future__ import annotations

from ._mlflow import mirror_to_mlflow
from ._models import AliasRow, ModelVersionRow, RegistryEvent
from ._proba import class_probabilities, predict_with_confidence
from ._registry import (
    ALIASES,
    ENV_MODELS,
    ModelVersion,
    RegistryEventInfo,
    actor,
    alias_version,
    get_version,
    history,
    ledger_note,
    list_versions,
    load_alias,
    load_version,
    models_root,
    promote,
    register_model,
    rollback,
    set_alias,
)

__all__ = [
    "ModelVersion", "RegistryEventInfo", "ALIASES", "ENV_MODELS", "models_root", "register_model", "get_version",
    "list_versions", "alias_version", "set_alias", "promote", "rollback", "history", "load_version", "load_alias",
    "predict_with_confidence", "class_probabilities", "actor", "ledger_note", "mirror_to_mlflow",
    "AliasRow", "ModelVersionRow", "RegistryEvent",
]
