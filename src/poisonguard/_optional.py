"""Lazy imports of optional dependencies with a clear error naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

__all__ = ["import_optional"]


def import_optional(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"torch"`` or ``"opacus"``.
    extra : str
        The poisonguard extra that installs it, e.g. ``"torch"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised when extras are absent
        raise MissingExtraError(module.split(".")[0], extra) from exc
