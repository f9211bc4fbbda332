"""The scan engine: run the detectors, calibrate, combine, flag and explain."""

from __future__ import annotations

from ._ensemble import Combined, calibrate, combine, robust_z
from ._scan import AUTO_THRESHOLD, ScanResult, scan

__all__ = ["scan", "ScanResult", "AUTO_THRESHOLD", "calibrate", "combine", "Combined", "robust_z"]
