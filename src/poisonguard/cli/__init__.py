"""Command-line interface: ``poisonguard <command>``.

Each command module registers itself on :data:`app` when imported.
"""

from __future__ import annotations

from ._app import app, main
from . import _scan  # noqa: F401  (registers commands)
from . import _train  # noqa: F401
from . import _attack  # noqa: F401
from . import _bench  # noqa: F401
from . import _ledger  # noqa: F401
from . import _sanitize  # noqa: F401
from . import _serve  # noqa: F401
from . import _registry  # noqa: F401
from . import _feedback  # noqa: F401
from . import _monitor  # noqa: F401

__all__ = ["app", "main"]
