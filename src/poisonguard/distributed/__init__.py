"""Partitioned datasets and the Dask engine (``poisonguard[dask]``).

Only :mod:`._partitions` is imported here: it needs no Dask, so a single machine can
read a partitioned dataset too. The Dask parts are imported lazily by the commands
that use them, which name the ``dask`` extra when it is missing.
"""

from ._partitions import PartitionedDataset, is_partitioned, resolve_partitions

__all__ = ["PartitionedDataset", "is_partitioned", "resolve_partitions"]
