"""Partitioned datasets and the Dask engine (``poisonguard[dask]``).

Only :mod:`._partitions` is imported eagerly: it needs no Dask, so a single machine can
read a partitioned dataset too. The Dask scan (:func:`scan_dask`, :func:`dask_client`)
is loaded on first use, and Dask itself only when a client is made, which names the
``dask`` extra when it is missing.
"""

from __future__ import annotations

from typing import Any

from ._partitions import PartitionedDataset, is_partitioned, load_partitioned, resolve_partitions

__all__ = [
    "PartitionedDataset",
    "is_partitioned",
    "load_partitioned",
    "resolve_partitions",
    "scan_dask",
    "DaskScanResult",
    "dask_client",
    "DEFAULT_SAMPLE_ROWS",
]

_LAZY = {
    "scan_dask": "._scan",
    "DaskScanResult": "._scan",
    "DEFAULT_SAMPLE_ROWS": "._scan",
    "dask_client": "._cluster",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
