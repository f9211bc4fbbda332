"""The scan engine: run the detectors, calibrate, combine, flag and explain."""

from __future__ import annotations

from ._ensemble import Combined, calibrate, combine, robust_z
from ._scan import AUTO_THRESHOLD, FIT_SAMPLE_ROWS, ScanResult, scan

__all__ = ["scan", "ScanResult", "AUTO_THRESHOLD", "FIT_SAMPLE_ROWS", "calibrate", "combine", "Combined", "robust_z"]
