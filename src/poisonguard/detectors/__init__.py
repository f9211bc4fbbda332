"""Detectors: one class per module, all under one contract and one registry.

Importing this package registers the built-in detectors.
"""

from __future__ import annotations

from ._base import (
    BaseDetector,
    Explanation,
    available_detectors,
    default_detectors,
    detector_class,
    get_detector,
    register,
    resolve_settings,
)
from ._backdoor_clean_label import BackdoorCleanLabelDetector
from ._backdoor_spectral import BackdoorSpectralDetector
from ._backdoor_trigger import BackdoorTriggerDetector
from ._class_outlier import ClassOutlierDetector
from ._cluster import ClusterDetector
from ._confident import ConfidentLearningDetector
from ._contrast import ContrastDetector
from ._duplicates import DuplicateConflictDetector, RelabelledTwinDetector
from ._ecod import ECODDetector
from ._gaussian_label import GaussianLabelDetector
from ._iforest import IsolationForestDetector
from ._knn_label import KNNLabelDetector

__all__ = [
    "BaseDetector",
    "Explanation",
    "available_detectors",
    "default_detectors",
    "detector_class",
    "get_detector",
    "register",
    "resolve_settings",
    "BackdoorCleanLabelDetector",
    "BackdoorSpectralDetector",
    "BackdoorTriggerDetector",
    "ClassOutlierDetector",
    "ClusterDetector",
    "ConfidentLearningDetector",
    "ContrastDetector",
    "DuplicateConflictDetector",
    "RelabelledTwinDetector",
    "ECODDetector",
    "GaussianLabelDetector",
    "IsolationForestDetector",
    "KNNLabelDetector",
]
