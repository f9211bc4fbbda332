"""Deep Partition Aggregation (DPA) and its exact certificate.

Reference: A. Levine and S. Feizi, "Deep Partition Aggregation: Provable Defenses
against General Poisoning Attacks", ICLR 2021.

Each training row goes to the partition ``sha256(canonical feature bytes) mod K``.
The hash covers the *feature values only*, not the label, and not the row's
position, so:

* inserting or deleting a row changes exactly one partition (no other row moves);
* relabelling a row changes only the partition that already held it.

Each partition trains its own base model *with its own encoder* (imputation,
categories and scaling are learned per partition), so no statistic is shared across
partitions and one row really can only move one vote. (A global scaler would let a
single row shift every base model a little, which would void the certificate.)

Votes are counted per class; the prediction is the class with the most votes, ties
going to the smaller class index. An empty partition abstains. With vote counts
``n`` and winner ``c``, one poisoned row (insert, delete or relabel) can at most
move one vote from ``c`` to some ``c'`` and so lower ``n_c - n_c'`` by 2. ``c'``
overtakes ``c`` once ``n_c - n_c' < [c' < c]`` (a tie goes to the smaller index), so
the prediction survives every attack of size ``r`` iff, for every ``c' != c``::

    n_c - n_c' - 2 r >= [c' < c]   <=>   r <= floor((n_c - n_c' - [c' < c]) / 2)

and the certified radius is the minimum over ``c'`` (Levine & Feizi, Theorem 1).
Modifying a row's *features* is a deletion plus an insertion and costs 2.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["canonical_row_bytes", "row_hashes", "assign_partitions", "in_validation", "vote_counts", "dpa_radius"]


def _canonical_value(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT:
        return "\x00NA"
    if isinstance(v, (bool, np.bool_)):
        return "b:1" if v else "b:0"
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "\x00NA"
        if f == 0.0:
            f = 0.0  # -0.0 and 0.0 are the same value
        return "n:" + repr(f)  # 3, 3.0 and "3" read from CSV all hash alike
    return "s:" + str(v)


def canonical_row_bytes(frame: pd.DataFrame, features: Sequence[str]) -> list[bytes]:
    """One canonical byte string per row: the feature names and values, label excluded."""
    cols = list(features)
    header = "\x1e".join(cols)
    values = frame[cols].astype(object).to_numpy()
    return [
        (header + "\x1d" + "\x1f".join(_canonical_value(v) for v in row)).encode("utf-8") for row in values
    ]


def row_hashes(frame: pd.DataFrame, features: Sequence[str]) -> list[bytes]:
    """SHA-256 digest of each row's canonical bytes."""
    return [hashlib.sha256(b).digest() for b in canonical_row_bytes(frame, features)]


def assign_partitions(hashes: Sequence[bytes], k: int) -> np.ndarray:
    """Partition index ``int(sha256[:8]) mod k`` of each row."""
    return np.fromiter((int.from_bytes(h[:8], "big") % k for h in hashes), dtype=np.int64, count=len(hashes))


def in_validation(hashes: Sequence[bytes], fraction: float) -> np.ndarray:
    """Content-based validation split (uses other hash bytes than the partition)."""
    if fraction <= 0:
        return np.zeros(len(hashes), dtype=bool)
    return np.fromiter(
        ((int.from_bytes(h[8:16], "big") / 2**64) < fraction for h in hashes), dtype=bool, count=len(hashes)
    )


def vote_counts(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_rows, n_classes)`` vote counts from ``(n_rows, K)`` votes (``-1`` = abstain)."""
    counts = np.zeros((votes.shape[0], n_classes), dtype=np.int64)
    for j in range(votes.shape[1]):
        v = votes[:, j]
        ok = v >= 0
        np.add.at(counts, (np.flatnonzero(ok), v[ok]), 1)
    return counts


def dpa_radius(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prediction, certified radius and runner-up class from vote counts.

    Parameters
    ----------
    counts : ndarray of shape (n_rows, n_classes)

    Returns
    -------
    pred : ndarray of int
        ``argmax`` with ties to the smaller class index.
    radius : ndarray of int
        ``min over c' != c of floor((n_c - n_c' - [c' < c]) / 2)``; always ``>= 0``.
    runner_up : ndarray of int
        The ``c'`` attaining the minimum (the class an attacker should push to).
    """
    counts = np.asarray(counts, dtype=np.int64)
    n, c = counts.shape
    pred = np.argmax(counts, axis=1)  # first maximum: the smaller index wins ties
    top = counts[np.arange(n), pred]
    idx = np.arange(c)[None, :]
    penalty = (idx < pred[:, None]).astype(np.int64)
    margin = top[:, None] - counts - penalty  # n_c - n_c' - [c' < c]
    margin[np.arange(n), pred] = np.iinfo(np.int64).max  # exclude c itself
    runner = np.argmin(margin, axis=1)
    radius = np.floor_divide(margin[np.arange(n), runner], 2)
    return pred, radius.astype(np.int64), runner
