"""poisonguard: defend machine-learning pipelines against data poisoning."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import PoisonguardError  # noqa: E402
from .scan import ScanResult, scan  # noqa: E402

__all__ = ["__version__", "scan", "ScanResult", "PoisonguardError"]
