"""Natural patterns that determine a class are not clean-label stamps, nor injected blobs.

Real tables carry value conjunctions enriched in one class because they *cause* it:
the two one-hot columns of a yes/no flag (AER ``HMDA``: denied mortgage insurance),
a discount with the sale price derived from it (ISLR ``OJ``), and groups of rows that
share one context and differ in a free attribute (one store-week of ``OJ``). The
generated tables below reproduce each; the old detectors flagged all of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.detectors import BackdoorCleanLabelDetector, ClusterDetector
from poisonguard.detectors._backdoor_clean_label import independent_features

from _table_helpers import encode as _encode, rdataset


def _flag_table(seed: int = 0) -> pd.DataFrame:
    """A loan table: a rare yes/no flag (2% of rows) that nearly always means a denial."""
    rng = np.random.default_rng(seed)
    n = 2000
    num = rng.normal(size=(n, 4))
    flag = rng.random(n) < 0.02
    deny = (num[:, 0] + 0.5 * num[:, 1] + rng.normal(scale=0.8, size=n) > 1.6) | flag
    frame = pd.DataFrame(num, columns=["a", "b", "c", "d"])
    frame["insurance_denied"] = np.where(flag, "yes", "no")
    frame["label"] = np.where(deny, "deny", "ok")
    return frame


def _promo_table(seed: int = 0) -> pd.DataFrame:
    """Purchases in store-weeks: a deep discount on brand A (with its derived sale price and
    percentage) in a few store-weeks makes the customers there buy A, whatever their loyalty."""
    rng = np.random.default_rng(seed)
    rows = []
    for week in range(60):
        for store in range(4):
            price = float(rng.choice([1.69, 1.79, 1.86, 1.99]))
            disc = 0.5 if (week, store) in {(7, 1), (23, 2), (41, 0), (52, 3)} else float(
                rng.choice([0.0, 0.0, 0.0, 0.1, 0.2, 0.3]))
            if disc == 0.5:
                price = 1.99  # the deep promotion runs on the dearest pack
            for _ in range(int(rng.integers(3, 9))):
                loyal = float(rng.random())
                p_a = 1.0 if disc == 0.5 else 1 / (1 + np.exp(-(4 * loyal - 2 + 3 * disc)))
                rows.append({"week": week, "store": store, "price": price, "disc": disc,
                             "sale": round(price - disc, 2), "pct": round(disc / price, 6), "loyal": loyal,
                             "label": "A" if rng.random() < p_a else "B"})
    return pd.DataFrame(rows)


def test_a_one_hot_flag_is_one_feature():
    X, y = _encode(_flag_table())
    det = BackdoorCleanLabelDetector().fit(X, y)
    # the flag's two one-hot columns are one yes/no column, not a two-feature stamp ...
    assert det.report_["poisoned_classes"] == []
    assert (det.score_samples(X, y) > 0).sum() == 0
    # ... though they are enriched together in the denials
    assert any(len(s.token.features) == 2 and s.independent_features == 1 for s in det.candidates_)
    assert det.report_["natural"] and det.report_["natural"][0]["independent_features"] == 1


def test_a_derived_discount_pattern_is_embedded_not_stamped():
    X, y = _encode(_promo_table())
    det = BackdoorCleanLabelDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert (det.score_samples(X, y) > 0).sum() == 0
    natural = det.report_["natural"]
    assert natural and all(d["embedded"] for d in natural)
    assert all(d["neighbour_share"] > 3 * d["neighbour_chance"] for d in natural)


def test_a_stamp_written_on_random_rows_of_the_class_is_still_found():
    # the same promotion table, plus a clean-label stamp on two columns of random A rows
    frame = _promo_table()
    rng = np.random.default_rng(1)
    rows = rng.choice(np.flatnonzero(frame["label"].to_numpy() == "A"), 40, replace=False)
    frame.loc[rows, "loyal"] = 0.051234
    frame.loc[rows, "pct"] = 0.123456
    X, y = _encode(frame)
    det = BackdoorCleanLabelDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == [0]
    s = det.score_samples(X, y)
    mask = np.zeros(len(frame), dtype=bool)
    mask[rows] = True
    assert (s[mask] >= 0.5).mean() >= 0.95 and (s[~mask] > 0).sum() == 0


def test_independent_features_counts_links_not_columns():
    rng = np.random.default_rng(0)
    n = 500
    yes = (rng.random(n) < 0.3).astype(float)
    cont = rng.normal(size=(n, 2))  # all-distinct values: trivially one-to-one, never merged
    X = np.column_stack([1 - yes, yes, cont])
    assert independent_features(X, (0, 1)) == 1
    assert independent_features(X, (2, 3)) == 2
    assert independent_features(X, (0, 1, 2)) == 2
    # a stamp writes both one-hot columns at once on some rows: the link breaks, they count twice
    X[:10, 0:2] = 1.0
    assert independent_features(X, (0, 1)) == 2


def _slice_table(seed: int = 0) -> pd.DataFrame:
    """Store-week purchases; one store-week with an unusual discount has 21 more customers."""
    frame = _promo_table(seed)
    rng = np.random.default_rng(seed + 1)
    # every shared value lies within its column's range: a context, not a written value
    extra = pd.DataFrame({"week": 30, "store": 1, "price": 1.79, "disc": 0.4, "sale": 1.39,
                          "pct": round(0.4 / 1.79, 6), "loyal": rng.random(21), "label": "A"})
    return pd.concat([frame, extra], ignore_index=True)


def test_a_slice_of_one_context_is_not_an_injected_blob():
    X, _ = _encode(_slice_table())
    det = ClusterDetector().fit(X)
    # (the old detector's failure on such a slice is pinned on the real OJ store-week below)
    assert det.report_["injected_groups"] == 0
    assert (det.score_samples(X) == 0).all()


def test_a_blob_next_to_the_slice_is_still_found():
    from poisonguard.attacks import inject_outliers

    pt = inject_outliers(_slice_table(), "label", 0.03, seed=0, placement="cluster_in_range", spread=0.05)
    X, _ = _encode(pt.frame)
    s = ClusterDetector().fit(X).score_samples(X)
    assert (s[pt.mask] >= 0.5).mean() >= 0.95
    assert (s[~pt.mask] > 0).sum() == 0


@pytest.mark.parametrize("item, label, cls", [("ISLR/OJ", "Purchase", "CH"), ("AER/HMDA", "deny", "yes")])
def test_real_tables_keep_their_class(item, label, cls):
    frame = rdataset(item, label)
    X, y = _encode(frame)
    k = list(np.sort(frame["label"].unique())).index(cls)
    bcl = BackdoorCleanLabelDetector().fit(X, y)
    assert k not in bcl.report_["poisoned_classes"]
    assert (bcl.score_samples(X, y) > 0).sum() == 0
    assert (ClusterDetector().fit(X).score_samples(X) > 0).sum() == 0
