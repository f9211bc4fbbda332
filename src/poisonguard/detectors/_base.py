"""The detector contract and the registry of detectors by declared name.

A detector:

* takes keyword-only settings in ``__init__`` and stores them unchanged;
* learns in ``fit(X, y)`` (attributes with a trailing underscore) and returns ``self``;
* scores rows with ``score_samples(X, y)``: one finite float per row, higher is
  more suspicious, and the call never mutates the detector;
* explains a row with :meth:`BaseDetector.explain`, returning evidence a person can check.

``X`` is the numeric matrix produced by :class:`poisonguard.encoding.TableEncoder`;
``y`` holds integer class codes ``0..n_classes-1``. When ``score_samples`` is called
on the very matrix the detector was fitted on, detectors that would otherwise see a
row's own label (neighbour votes, classifiers) use leave-one-out or out-of-fold
answers, so scoring the training table is honest.
"""

from __future__ import annotations

import hashlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..errors import ConfigError, DataError, InputError
from ..validation import check_is_fitted, check_X, check_y, frozen_fact

__all__ = [
    "BaseDetector",
    "Explanation",
    "register",
    "get_detector",
    "detector_class",
    "available_detectors",
    "default_detectors",
    "fingerprint_array",
    "resolve_settings",
]


@dataclass(frozen=True)
class Explanation:
    """Why a detector finds a row suspicious.

    Attributes
    ----------
    detector : str
        Registered name of the detector.
    row : int
        0-based position of the row in the scored matrix.
    score : float
        The detector's raw score for the row.
    reason : str
        One human sentence with the evidence, e.g. "label 3, but 9 of its 10
        nearest neighbours are labelled 8".
    evidence : dict
        Machine-readable evidence behind ``reason``.
    """

    detector: str
    row: int
    score: float
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def fingerprint_array(X: np.ndarray) -> str:
    """A digest of an array's shape and bytes, to recognise the training matrix.

    Computed once for a frozen matrix (:func:`~poisonguard.validation.frozen_fact`):
    a scan asks for it a few dozen times, and at a million rows each digest took
    longer than most detectors.
    """
    return frozen_fact(X, "fingerprint", _digest) if isinstance(X, np.ndarray) else _digest(np.asarray(X))


def _digest(X: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(X.shape).encode())
    arr = np.ascontiguousarray(X)
    try:
        h.update(memoryview(arr).cast("B"))  # the bytes in place, no copy
    except (TypeError, ValueError):  # dtypes without a buffer format (objects) and empty shapes
        h.update(arr.tobytes())
    return h.hexdigest()


class BaseDetector(ABC):
    """Base class of every poisonguard detector.

    Subclasses declare ``name`` once (the registry key), set ``needs_label`` and
    implement ``_fit``, ``_score`` and ``_explain``.
    """

    name: ClassVar[str] = ""
    #: True when the detector needs labels (it is skipped on unlabeled tables).
    needs_label: ClassVar[bool] = False
    #: True when the default scan runs it; the registry is the only list of defaults.
    in_default_scan: ClassVar[bool] = True
    #: Short description shown by ``poisonguard detectors``.
    summary: ClassVar[str] = ""
    #: What the detector is aimed at: "label", "outlier", "backdoor", "duplicate", "shift".
    family: ClassVar[str] = "outlier"
    #: How the ensemble calibrates raw scores: "probability" when the raw score already
    #: estimates the chance that the row is poisoned (in [0, 1]); "anomaly" when it is an
    #: unbounded outlyingness to be compared with the bulk of the table.
    score_kind: ClassVar[str] = "anomaly"

    # ----------------------------------------------------------------- params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        """The constructor settings, as given."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> "BaseDetector":
        """Change settings; unknown names raise :class:`ConfigError`."""
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ConfigError(f"detector {self.name!r} has no setting {k!r}; settings are: {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --------------------------------------------------------------- contract
    def fit(self, X: Any, y: Any = None) -> "BaseDetector":
        """Learn from ``X`` (and labels ``y`` when the detector needs them).

        Returns
        -------
        self
        """
        self._validate_params()
        X = check_X(X)
        y = self._check_labels(X, y)
        self.n_features_in_ = X.shape[1]
        self.fit_fingerprint_ = fingerprint_array(X)
        self._fit(X, y)
        return self

    def score_samples(self, X: Any, y: Any = None) -> np.ndarray:
        """Score each row; higher is more suspicious. Does not mutate ``self``."""
        check_is_fitted(self, "n_features_in_")
        X = check_X(X, n_features=self.n_features_in_)
        y = self._check_labels(X, y)
        scores = np.asarray(self._score(X, y, self._is_fit_data(X)), dtype=np.float64)
        if scores.shape != (X.shape[0],):
            raise DataError(f"detector {self.name!r} returned {scores.shape} scores for {X.shape[0]} rows")
        if not np.isfinite(scores).all():
            raise DataError(f"detector {self.name!r} returned non-finite scores")
        return scores

    def explain(self, X: Any, y: Any, row: int, *, scores: np.ndarray | None = None) -> Explanation:
        """Explain why ``row`` of ``X`` got its score (see :meth:`explain_rows`)."""
        return self.explain_rows(X, y, [row], scores=scores)[0]

    def explain_rows(
        self, X: Any, y: Any, rows: Sequence[int], *, scores: np.ndarray | None = None
    ) -> list[Explanation]:
        """Explain several rows at once, validating and preparing shared state once.

        Parameters
        ----------
        rows : sequence of int
            0-based positions in ``X``.
        scores : ndarray, optional
            Scores already computed by :meth:`score_samples` for the same ``X``,
            to avoid scoring twice.

        Reason strings may contain ``{label:K}`` (K a class code) and ``{feature:J}``
        (J an encoded column index) placeholders that the scan replaces with the
        original label value and column name.
        """
        check_is_fitted(self, "n_features_in_")
        X = check_X(X, n_features=self.n_features_in_)
        y = self._check_labels(X, y)
        idx = np.asarray(list(rows), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= X.shape[0]):
            bad = int(idx[(idx < 0) | (idx >= X.shape[0])][0])
            raise InputError(f"row {bad} is out of range for {X.shape[0]} rows")
        s = self.score_samples(X, y) if scores is None else np.asarray(scores, dtype=np.float64)
        if s.shape != (X.shape[0],):
            raise InputError(f"scores has shape {s.shape}, expected ({X.shape[0]},)")
        if idx.size == 0:
            return []
        pairs = self._explain(X, y, idx, s, self._is_fit_data(X))
        return [
            Explanation(detector=self.name, row=int(r), score=float(s[r]), reason=reason, evidence=ev)
            for r, (reason, ev) in zip(idx, pairs)
        ]

    # ------------------------------------------------------------- internals
    def _check_labels(self, X: np.ndarray, y: Any) -> np.ndarray | None:
        if y is None:
            if self.needs_label:
                raise InputError(f"detector {self.name!r} needs labels (y)")
            return None
        return check_y(y, X.shape[0])

    def _is_fit_data(self, X: np.ndarray) -> bool:
        return getattr(self, "fit_fingerprint_", None) == fingerprint_array(X)

    def _validate_params(self) -> None:
        """Check settings; subclasses extend. Called from ``fit`` (``set_params`` skips ``__init__``)."""

    @abstractmethod
    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None: ...

    @abstractmethod
    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray: ...

    @abstractmethod
    def _explain(
        self, X: np.ndarray, y: np.ndarray | None, rows: np.ndarray, scores: np.ndarray, is_fit_data: bool
    ) -> list[tuple[str, dict[str, Any]]]:
        """One ``(reason, evidence)`` pair per row in ``rows``."""


# --------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[BaseDetector]] = {}
D = TypeVar("D", bound=type[BaseDetector])


def register(cls: D | None = None, *, force: bool = False) -> D | Callable[[D], D]:
    """Class decorator adding a detector to the registry under its ``name``.

    Registering a name twice raises :class:`ConfigError` unless ``force=True``.
    """

    def deco(c: D) -> D:
        if not (isinstance(c, type) and issubclass(c, BaseDetector)):
            raise ConfigError(f"{c!r} is not a BaseDetector subclass")
        if not c.name:
            raise ConfigError(f"{c.__name__} declares no name")
        if c.name in _REGISTRY and _REGISTRY[c.name] is not c and not force:
            raise ConfigError(f"a detector named {c.name!r} is already registered ({_REGISTRY[c.name].__name__})")
        _REGISTRY[c.name] = c
        return c

    return deco(cls) if cls is not None else deco


def detector_class(name: str) -> type[BaseDetector]:
    """The class registered as ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown detector {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def get_detector(name: str, **params: Any) -> BaseDetector:
    """Instantiate the detector registered as ``name`` with ``params``."""
    cls = detector_class(name)
    valid = set(cls._param_names())
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ConfigError(f"detector {name!r} has no setting(s) {unknown}; settings are: {sorted(valid)}")
    return cls(**params)


def available_detectors() -> dict[str, type[BaseDetector]]:
    """All registered detectors by name (a copy)."""
    return dict(sorted(_REGISTRY.items()))


def default_detectors(*, labeled: bool) -> list[str]:
    """Names of the detectors the default scan runs, derived from the registry."""
    return [n for n, c in sorted(_REGISTRY.items()) if c.in_default_scan and (labeled or not c.needs_label)]


def resolve_settings(
    names: Sequence[str] | None, settings: Mapping[str, Mapping[str, Any]] | None, *, labeled: bool
) -> list[BaseDetector]:
    """Build detector instances from names and per-name settings.

    Settings for a detector that is not selected are an error, so typos surface.
    """
    chosen = list(names) if names else default_detectors(labeled=labeled)
    settings = dict(settings or {})
    extra = sorted(set(settings) - set(chosen))
    if extra:
        raise ConfigError(f"settings were given for detector(s) {extra} that are not selected: {chosen}")
    out = []
    for n in chosen:
        cls = detector_class(n)
        if cls.needs_label and not labeled:
            raise ConfigError(f"detector {n!r} needs labels; pass --label COL or leave it out")
        det = get_detector(n, **dict(settings.get(n, {})))
        det._validate_params()  # a bad setting is a usage error, not a detector crash
        out.append(det)
    return out
