"""A small, thread-safe memo shared by detectors that repeat one computation in a scan."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["BoundedMemo"]

V = TypeVar("V")


class BoundedMemo(Generic[V]):
    """The last ``size`` results by key; the oldest goes first.

    Bounded because the values (neighbour graphs, token matrices) grow with the table,
    and big tables must not pile up in memory across scans.
    """

    def __init__(self, size: int = 2) -> None:
        self._size = size
        self._items: dict[Hashable, V] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items.pop(key, None)
            while len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = value

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._items.clear()
