"""Isolation Forest explanations quote finite, readable deviations on columns that are mostly one value."""

from __future__ import annotations

import numpy as np

from poisonguard.detectors import get_detector


def test_rare_level_and_constant_columns_are_quoted_on_a_readable_scale():
    rng = np.random.default_rng(0)
    n = 500
    level = np.zeros(n)
    level[:5] = 1.0  # a one-hot level that 1% of rows carry: its median absolute deviation is 0
    X = np.c_[rng.normal(size=n), level, np.full(n, 3.0)]
    det = get_detector("iforest").fit(X)
    explained = det.explain_rows(X, None, list(range(5)))
    for e in explained:
        z = e.evidence["robust_z"]
        assert all(np.isfinite(v) and abs(v) < 50 for v in z.values()), e.reason
        assert z.get(2, 0.0) == 0.0  # a constant column is never extreme
        # the rare level on its standard deviation: (1 - 0.01) / sqrt(0.01 * 0.99) ~ 9.9 (billions before)
        assert 9.0 < z[1] < 11.0, e.reason
