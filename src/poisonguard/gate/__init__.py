"""The promotion gate: fail-closed checks of a challenger model against the champion.

TFX-style value and change thresholds on a held-out validation set, per-class recall
limits, backdoor canaries and a scan of the feedback batch; every report is stored.
"""

from __future__ import annotations

from ._canary import Canary, CanaryResult, batch_canaries, canary_rate, carriers, simulated_canaries
from ._gate import (
    BACKDOOR_DETECTORS,
    GateCheck,
    GatePolicy,
    GateReport,
    get_report,
    list_reports,
    record_report,
    run_checks,
    run_gate,
)
from ._models import GateReportRow

__all__ = [
    "GatePolicy", "GateCheck", "GateReport", "run_gate", "run_checks", "record_report", "get_report", "list_reports",
    "Canary", "CanaryResult", "canary_rate", "carriers", "simulated_canaries", "batch_canaries", "BACKDOOR_DETECTORS",
    "GateReportRow",
]
