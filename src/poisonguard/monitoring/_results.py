"""Result dataclasses of the monitoring API (fixed shapes, JSON via ``to_dict``)."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import DetectorFailedError, ThresholdExceeded
from ._alerts import Alert, Delivery
from ._stats import DriftTest, SignatureTest

__all__ = ["BaselineResult", "LogResult", "LabelResult", "ProbeSetResult", "MetricCheck", "CheckResult", "iso"]


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC (``None`` stays ``None``)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(float(ts), tz=_dt.timezone.utc).isoformat(timespec="seconds")


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


@dataclass(frozen=True)
class BaselineResult:
    model: str
    baseline_id: int
    n_rows: int
    classes: list[str]
    metrics: dict[str, Any]
    features: list[str]
    has_confidence: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LogResult:
    model: str
    n_logged: int
    n_probes: int
    ts_min: float
    ts_max: float
    features: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabelResult:
    """Late labels joined to logged predictions by id."""

    model: str
    n_given: int
    n_matched: int
    n_unmatched: int
    unmatched_examples: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProbeSetResult:
    model: str
    name: str
    n_rows: int
    expected: dict[str, float]
    expected_from: str  # labels | baseline

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MetricCheck:
    """One metric rule evaluated on a window: the value, the baseline and the decision.

    ``label`` is ``None`` for an overall (macro) metric. ``breached`` is false, with the
    reason in ``note``, when the window lacks the labelled rows the rule needs.
    """

    metric: str
    label: str | None
    value: float | None
    baseline: float | None
    change: float | None
    max_drop: float | None
    min: float | None
    support: int
    breached: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckResult:
    """The outcome of one ``monitor check``.

    ``status`` is ``ok``, ``alert`` (a rule fired: the CLI exits 3) or ``failed`` (the
    check itself crashed: nothing may be read as healthy, the CLI exits 5).
    """

    model: str
    status: str
    window_start: float
    window_end: float
    at: float
    n_predictions: int
    n_labelled: int
    n_probes: int
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: list[MetricCheck] = field(default_factory=list)
    drift: list[DriftTest] = field(default_factory=list)
    signatures: list[SignatureTest] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    check_id: int | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def fired(self) -> bool:
        return bool(self.alerts)

    @property
    def delivery_failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; NaN (an untested statistic) becomes ``None``."""
        d = _finite(asdict(self))
        d["window_start_iso"], d["window_end_iso"], d["at_iso"] = iso(self.window_start), iso(self.window_end), iso(self.at)
        return d

    def raise_for_status(self) -> None:
        """Raise unless the check passed: ``DetectorFailedError`` (failed) or ``ThresholdExceeded`` (alerts)."""
        if self.status == "failed":
            raise DetectorFailedError(f"monitor check of model {self.model} failed: {self.error}")
        if self.alerts:
            rules = ", ".join(a.rule for a in self.alerts[:5]) + (" ..." if len(self.alerts) > 5 else "")
            raise ThresholdExceeded(f"model {self.model}: {len(self.alerts)} alert(s) in window "
                                    f"{iso(self.window_start)} .. {iso(self.window_end)}: {rules}")
