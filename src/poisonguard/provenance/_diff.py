"""Row-level diff of two row-hash arrays (multiset semantics)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["RowDiff", "diff_hashes", "unmatched"]


@dataclass(frozen=True)
class RowDiff:
    """Rows that differ between an old and a new table.

    Attributes
    ----------
    changed_old, changed_new : ndarray of int
        Paired positions: old row ``changed_old[i]`` became new row ``changed_new[i]``
        (paired by id when ids are known, else by equal position when row counts match).
    changed_ids : ndarray or None
        The id of each changed pair, when paired by id.
    added : ndarray of int
        Positions in the new table of rows absent from the old one.
    removed : ndarray of int
        Positions in the old table of rows absent from the new one.
    reordered : bool
        The same rows, in a different order (nothing added, removed or changed).
    """

    changed_old: np.ndarray
    changed_new: np.ndarray
    changed_ids: np.ndarray | None
    added: np.ndarray
    removed: np.ndarray
    reordered: bool

    @property
    def n_changed(self) -> int:
        return int(self.changed_old.size)

    @property
    def identical(self) -> bool:
        return not (self.changed_old.size or self.added.size or self.removed.size)


def _keys(hashes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(hashes).view(">u8").reshape(-1, 2).astype(np.uint64)


def unmatched(old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of old and new rows without a partner (multiset difference).

    A row hash present ``k`` times in ``old`` and ``m`` times in ``new`` leaves
    ``max(k - m, 0)`` unmatched old rows and ``max(m - k, 0)`` unmatched new rows
    (the later positions).
    """
    n_old, n_new = old.shape[0], new.shape[0]
    if n_old == 0 or n_new == 0:
        return np.ones(n_old, bool), np.ones(n_new, bool)
    keys = np.concatenate([_keys(old), _keys(new)])
    side = np.concatenate([np.zeros(n_old, np.int8), np.ones(n_new, np.int8)])
    pos = np.concatenate([np.arange(n_old), np.arange(n_new)])
    order = np.lexsort((pos, side, keys[:, 1], keys[:, 0]))
    sk = keys[order]
    ss = side[order]
    n = order.size
    start = np.ones(n, bool)
    start[1:] = (sk[1:] != sk[:-1]).any(axis=1)
    gid = np.cumsum(start) - 1
    starts = np.flatnonzero(start)
    count_old = np.bincount(gid, weights=(ss == 0)).astype(np.int64)
    count_new = np.bincount(gid, weights=(ss == 1)).astype(np.int64)
    rank = np.arange(n) - starts[gid]  # old rows come first within a group
    rank_new = rank - count_old[gid]
    um_sorted = np.where(ss == 0, rank >= count_new[gid], rank_new >= count_old[gid])
    um = np.empty(n, bool)
    um[order] = um_sorted
    return um[:n_old], um[n_old:]


def diff_hashes(
    old: np.ndarray,
    new: np.ndarray,
    *,
    old_ids: np.ndarray | None = None,
    new_ids: np.ndarray | None = None,
) -> RowDiff:
    """Diff two ``(n, 16)`` row-hash arrays, naming changed, added and removed rows."""
    um_old, um_new = unmatched(old, new)
    removed = np.flatnonzero(um_old)
    added = np.flatnonzero(um_new)
    empty = np.zeros(0, dtype=np.int64)
    ch_old, ch_new, ch_ids = empty, empty, None
    if old_ids is not None and new_ids is not None and removed.size and added.size:
        left = pd.DataFrame({"id": pd.array(old_ids[removed]), "old": removed})
        right = pd.DataFrame({"id": pd.array(new_ids[added]), "new": added})
        left = left[left["id"].notna()]
        right = right[right["id"].notna()]
        left["k"] = left.groupby("id", sort=False).cumcount()
        right["k"] = right.groupby("id", sort=False).cumcount()
        pairs = left.merge(right, on=["id", "k"], how="inner").sort_values("new")
        if len(pairs):
            ch_old = pairs["old"].to_numpy(np.int64)
            ch_new = pairs["new"].to_numpy(np.int64)
            ch_ids = pairs["id"].to_numpy(dtype=object)
    elif old.shape[0] == new.shape[0] and removed.size and added.size:
        same = np.intersect1d(removed, added)
        if same.size:
            differs = (old[same] != new[same]).any(axis=1)
            same = same[differs]
            ch_old, ch_new = same, same
    if ch_old.size:
        removed = np.setdiff1d(removed, ch_old)
        added = np.setdiff1d(added, ch_new)
    identical = not (ch_old.size or added.size or removed.size)
    reordered = identical and old.shape == new.shape and not np.array_equal(old, new)
    return RowDiff(changed_old=ch_old, changed_new=ch_new, changed_ids=ch_ids,
                   added=added, removed=removed, reordered=bool(reordered))
