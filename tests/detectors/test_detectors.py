"""Per-detector behaviour on small hand-made tables (the shared contract is in test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from poisonguard.detectors import (
    ClassOutlierDetector,
    ConfidentLearningDetector,
    DuplicateConflictDetector,
    IsolationForestDetector,
    KNNLabelDetector,
    default_detectors,
)
from poisonguard.errors import ConfigError


def _blobs(n_per=40, n_classes=3, dim=5, sep=6.0, seed=0):
    """Well-separated Gaussian classes: class c is centred at sep * e_c."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n_per, dim)) + sep * np.eye(dim)[c] for c in range(n_classes)])
    y = np.repeat(np.arange(n_classes), n_per)
    return X, y


@pytest.fixture
def blobs_with_flip():
    X, y = _blobs()
    y = y.copy()
    y[5] = 1  # row 5 sits in class 0's blob but is labelled 1
    return X, y


# ---------------------------------------------------------------- knn_label
def test_knn_label_leaves_the_row_out_on_fit_data(blobs_with_flip):
    X, y = blobs_with_flip
    det = KNNLabelDetector(n_neighbors=5, noise_rate=0.1).fit(X, y)
    s = det.score_samples(X, y)
    assert s[5] == 1.0  # its 5 other nearest rows are all labelled 0
    assert np.all(s[(y == 0) & (np.arange(len(y)) != 5)] <= 0.2)
    # a copy of the fit matrix is recognised by its bytes, so it is still leave-one-out
    np.testing.assert_array_equal(det.score_samples(X.copy(), y), s)


def test_knn_label_queries_new_rows_against_the_fit_table(blobs_with_flip):
    X, y = blobs_with_flip
    det = KNNLabelDetector(n_neighbors=5, noise_rate=0.0).fit(X, y)
    # as a new query, row 5 finds itself (distance 0, label 1) among its neighbours
    q = det.score_samples(X[[5, 6]], y[[5, 6]])
    assert q[0] == pytest.approx(4 / 5)
    # a genuinely new point in class 1's blob labelled 0 disagrees with all neighbours
    new = np.zeros((1, X.shape[1]))
    new[0, 1] = 6.0
    assert det.score_samples(new, np.array([0]))[0] == 1.0
    assert det.score_samples(new, np.array([1]))[0] == 0.0


def test_knn_label_explains_with_the_majority_label(blobs_with_flip):
    X, y = blobs_with_flip
    det = KNNLabelDetector(n_neighbors=5).fit(X, y)
    e = det.explain(X, y, 5)
    assert e.reason == (
        "label {label:1}, but 5 of its 5 nearest neighbours are labelled otherwise (most common: {label:0}, 5 of 5)"
    )
    assert e.evidence == {"disagreeing": 5, "k": 5, "majority_label": 0, "majority_count": 5}


def test_knn_label_bad_setting():
    X, y = _blobs()
    with pytest.raises(ConfigError, match="n_neighbors must be >= 1, got 0"):
        KNNLabelDetector(n_neighbors=0).fit(X, y)


def test_knn_label_more_neighbours_than_rows_is_capped():
    X, y = _blobs(n_per=3)
    s = KNNLabelDetector(n_neighbors=50, noise_rate=0.0).fit(X, y).score_samples(X, y)
    # each row sees the 8 others: 2 share its label, 6 do not
    np.testing.assert_allclose(s, 6 / 8)


def test_knn_label_turns_the_vote_into_a_true_class_probability():
    X, y = _blobs(n_per=3)  # 3 classes; each row sees 2 of its label among 8 others
    k, r, q = 3, 0.1, 2 / 8
    s = KNNLabelDetector(n_neighbors=50, noise_rate=r).fit(X, y).score_samples(X, y)
    np.testing.assert_allclose(s, 1 - (q - r / (k - 1)) / (1 - r - r / (k - 1)))
    # the correction never reorders rows (it may tie those beyond certainty), and a
    # unanimous vote stays certain either way
    X2, y2 = _blobs(n_per=30, sep=4.0)
    y2[0] = 1  # deep in class 0's blob: every neighbour disagrees
    plain = KNNLabelDetector(noise_rate=0.0).fit(X2, y2).score_samples(X2, y2)
    corrected = KNNLabelDetector().fit(X2, y2).score_samples(X2, y2)
    assert np.all(np.diff(corrected[np.argsort(plain, kind="stable")]) >= 0)
    assert plain[0] == 1.0 and corrected[0] == 1.0
    assert (plain == 0.0).any() and corrected[plain == 0.0].max() == 0.0
    assert len(np.unique(plain)) > 3  # not a degenerate table


# ---------------------------------------------------------------- confident
def test_confident_uses_out_of_fold_probabilities_on_fit_data(blobs_with_flip):
    X, y = blobs_with_flip
    det = ConfidentLearningDetector(n_folds=5).fit(X, y)
    s = det.score_samples(X, y)
    np.testing.assert_allclose(s, 1.0 - det.oof_proba_[np.arange(len(y)), y])
    np.testing.assert_allclose(det.oof_proba_.sum(axis=1), 1.0)
    assert s[5] > 0.5 and int(np.argmax(s)) == 5
    assert np.median(np.delete(s, 5)) < 0.2
    # new rows: the mean of the fold models, not the out-of-fold answers
    new = det.score_samples(X[:10], y[:10])
    mean_p = np.mean([m.predict_proba(X[:10]) for m in det.models_], axis=0)
    np.testing.assert_allclose(new, 1.0 - mean_p[np.arange(10), y[:10]])
    assert len(det.models_) == 5


def test_confident_margin_method_and_explanation(blobs_with_flip):
    X, y = blobs_with_flip
    det = ConfidentLearningDetector(method="margin").fit(X, y)
    s = det.score_samples(X, y)
    assert np.all((s >= 0) & (s <= 1)) and s[5] > 0.5
    e = det.explain(X, y, 5)
    assert "never saw this row" in e.reason and e.evidence["predicted"] == 0
    assert "{label:1}" in e.reason and "{label:0}" in e.reason


@pytest.mark.parametrize(
    ("params", "message"),
    [({"method": "vote"}, "method must be"), ({"n_folds": 1}, "n_folds must be >= 2"), ({"C": 0}, "C must be > 0")],
)
def test_confident_bad_settings(params, message):
    X, y = _blobs()
    with pytest.raises(ConfigError, match=message):
        ConfidentLearningDetector(**params).fit(X, y)


def test_confident_class_too_small_to_stratify():
    X, y = _blobs()
    y = y.copy()
    y[0] = 3  # a class with one row
    s = ConfidentLearningDetector().fit(X, y).score_samples(X, y)
    assert np.isfinite(s).all() and s[0] > 0.5


# ---------------------------------------------------------------- duplicates
def test_duplicates_conflicting_twins_score_half():
    X, y = _blobs()
    X = np.vstack([X, X[[3]], X[[50]], X[[50]], X[[90]]])
    y = np.concatenate([y, [1, 0, 2, 2]])  # row 3's twin conflicts; row 50 (class 1) gets 0, 2; row 90 agrees
    s = DuplicateConflictDetector().fit(X, y).score_samples(X, y)
    n = len(y) - 4
    assert s[3] == 0.5 and s[n] == 0.5  # one conflicting twin each: either may be wrong
    assert s[50] == pytest.approx(2 / 3)  # two conflicting twins
    assert s[n + 1] == pytest.approx(2 / 3) and s[n + 2] == pytest.approx(2 / 3)  # three copies, three labels
    assert s[90] == 0.0 and s[n + 3] == 0.0  # agreeing twins are not suspicious
    others = np.setdiff1d(np.arange(len(y)), [3, 50, 90, n, n + 1, n + 2, n + 3])
    assert np.all(s[others] == 0.0)


def test_duplicates_explain_names_the_conflicting_rows():
    X, y = _blobs()
    X = np.vstack([X, X[[3]]])
    y = np.concatenate([y, [2]])
    det = DuplicateConflictDetector().fit(X, y)
    e = det.explain(X, y, 3)
    assert e.evidence["conflicting_rows"] == [len(y) - 1]
    assert f"[{len(y) - 1}]" in e.reason and "{label:2}" in e.reason
    assert det.explain(X, y, 10).reason == "no conflicting duplicate"


def test_duplicates_near_duplicates_within_tolerance():
    X, y = _blobs()
    X = np.vstack([X, X[[7]] + 1e-6])
    y = np.concatenate([y, [2]])
    assert DuplicateConflictDetector(tolerance=0.05).fit(X, y).score_samples(X, y)[7] == 0.5
    assert DuplicateConflictDetector(tolerance=0.0).fit(X, y).score_samples(X, y)[7] == 0.0


def _big_table_with_twins(n: int = 24_000, seed: int = 0):
    """Above EXACT_MAX_ROWS (the inverted-file search), with exact and near twins planted."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    y = (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    src = rng.choice(n, 60, replace=False)
    twins = X[src].copy()
    twins[30:] += 1e-7  # near twins: far inside the tolerance
    X = np.vstack([X, twins])
    y = np.concatenate([y, 1 - y[src]])  # every twin conflicts with its source row
    return X, y, src


def test_duplicates_finds_planted_twins_above_the_exact_search_limit(monkeypatch):
    """The approximate graph finds every exact and near twin, as the exact search does."""
    from poisonguard.detectors import _neighbors

    X, y, src = _big_table_with_twins()
    assert X.shape[0] > _neighbors.EXACT_MAX_ROWS
    approx = DuplicateConflictDetector().fit(X, y).score_samples(X, y)
    monkeypatch.setattr(_neighbors, "_memo", type(_neighbors._memo)(2))  # search afresh, exactly
    monkeypatch.setattr(_neighbors, "EXACT_MAX_ROWS", 10**9)
    exact = DuplicateConflictDetector().fit(X, y).score_samples(X, y)
    planted = np.concatenate([src, np.arange(X.shape[0] - 60, X.shape[0])])
    assert np.all(approx[planted] == 0.5) and np.all(exact[planted] == 0.5)
    np.testing.assert_array_equal(approx > 0, exact > 0)


def test_neighbour_graph_leaves_each_row_out_and_is_compact_above_the_exact_limit():
    from poisonguard.detectors._neighbors import EXACT_MAX_ROWS, self_neighbours

    X, _, _ = _big_table_with_twins(seed=1)
    nb = self_neighbours(X, 5)
    assert nb.indices.shape == (X.shape[0], 5) and not nb.exact
    assert nb.indices.dtype == np.int32 and nb.distances.dtype == np.float32  # half a float64 graph
    assert not (nb.indices == np.arange(X.shape[0])[:, None]).any()
    assert np.all(np.diff(nb.distances, axis=1) >= 0)
    assert X.shape[0] > EXACT_MAX_ROWS
    from poisonguard.detectors._neighbors import _search

    again = _search(X, X, 6, drop_self=True)  # a second search, not the memo: the same graph
    np.testing.assert_array_equal(again.indices, nb.indices)


# ---------------------------------------------------------------- iforest
def test_iforest_threaded_blocks_score_exactly_as_one_pass(monkeypatch):
    from poisonguard.detectors import _iforest

    X, _ = _blobs(n_per=200)
    det = IsolationForestDetector(n_estimators=30).fit(X)
    one = det.score_samples(X)
    monkeypatch.setattr(_iforest, "_SCORE_BLOCK", 97)  # many blocks on several threads
    np.testing.assert_array_equal(det.score_samples(X), one)


def test_iforest_scores_far_rows_higher_without_labels():
    X, _ = _blobs(n_per=60)
    far = np.full((3, X.shape[1]), 25.0)
    Xa = np.vstack([X, far])
    det = IsolationForestDetector(n_estimators=100).fit(Xa)
    s = det.score_samples(Xa)
    assert s[-3:].min() > s[:-3].max()
    e = det.explain(Xa, None, len(Xa) - 1)
    assert "robust SD" in e.reason and "{feature:" in e.reason
    assert all(abs(v) > 5 for v in e.evidence["robust_z"].values())


def test_iforest_seed_matters_and_is_respected():
    X, _ = _blobs()
    a = IsolationForestDetector(n_estimators=50, random_state=1).fit(X).score_samples(X)
    b = IsolationForestDetector(n_estimators=50, random_state=1).fit(X).score_samples(X)
    c = IsolationForestDetector(n_estimators=50, random_state=2).fit(X).score_samples(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ---------------------------------------------------------------- class_outlier
def test_class_outlier_flags_a_flipped_row_within_its_class(blobs_with_flip):
    X, y = blobs_with_flip
    det = ClassOutlierDetector().fit(X, y)
    s = det.score_samples(X, y)
    assert s[5] > s[y == 1][np.flatnonzero(y == 1) != 5].max()  # far from the other rows labelled 1
    e = det.explain(X, y, 5)
    assert "typical distance from the rows labelled {label:1}" in e.reason
    assert "closest to class {label:0}" in e.reason and e.evidence["closest_class"] == 0


def test_class_outlier_unseen_label_is_maximally_out_of_place(blobs_with_flip):
    X, y = blobs_with_flip
    det = ClassOutlierDetector().fit(X, y)
    s = det.score_samples(X[:4], np.array([0, 0, 0, 7]))
    assert np.isfinite(s).all() and s[3] == s.max()


def test_class_outlier_is_opt_in():
    assert "class_outlier" not in default_detectors(labeled=True)
    assert "iforest" in default_detectors(labeled=False)
    assert "knn_label" not in default_detectors(labeled=False)


def test_flipped_digits_auroc_per_label_detector(digits_flipped):
    from poisonguard.encoding import TableEncoder

    X = TableEncoder().fit_transform(digits_flipped.frame, digits_flipped.features)
    y = digits_flipped.frame["label"].to_numpy()
    for det in (KNNLabelDetector(), ConfidentLearningDetector()):
        assert roc_auc_score(digits_flipped.mask, det.fit(X, y).score_samples(X, y)) >= 0.97, det


def test_noise_aware_logistic_without_noise_is_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    from poisonguard.detectors._confident import NoiseAwareLogistic

    X, y = _blobs(n_per=40, sep=2.0)
    ours = NoiseAwareLogistic(C=0.5, noise_rate=0.0).fit(X, y).predict_proba(X)
    ref = LogisticRegression(C=0.5, max_iter=2000, tol=1e-8).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_noise_aware_logistic_is_not_bent_by_a_deep_flip():
    from poisonguard.detectors._confident import NoiseAwareLogistic

    X, y = _blobs(n_per=40, sep=2.0)
    y = y.copy()
    deep = np.flatnonzero(y == 0)[np.argsort(-X[y == 0, 0])[:4]]  # the four most class-0-like rows
    y[deep] = 1
    plain = NoiseAwareLogistic(C=1.0, noise_rate=0.0).fit(X, y).predict_proba(X)
    robust = NoiseAwareLogistic(C=1.0, noise_rate=0.1).fit(X, y).predict_proba(X)
    # the flipped rows' given label gets less probability once the channel explains them
    assert robust[deep, 1].mean() < plain[deep, 1].mean()


def test_confident_projects_wide_tables_and_keeps_its_quality():
    """Above ``max_features`` columns the fold models see a PCA projection; flips still rank first."""
    from sklearn.datasets import make_classification
    from sklearn.metrics import roc_auc_score

    from poisonguard.detectors._confident import ConfidentLearningDetector

    X, y = make_classification(n_samples=1200, n_features=300, n_informative=20, n_classes=3,
                               n_clusters_per_class=1, class_sep=2.0, random_state=0)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), size=60, replace=False)
    y_noisy = y.copy()
    y_noisy[flipped] = (y[flipped] + 1) % 3
    truth = np.zeros(len(y), dtype=bool)
    truth[flipped] = True
    wide = ConfidentLearningDetector(max_features=128).fit(X, y_noisy)
    raw = ConfidentLearningDetector(max_features=0).fit(X, y_noisy)
    assert wide.projection_ is not None and wide.projection_.components.shape == (64, 300)
    assert raw.projection_ is None
    auc_wide = roc_auc_score(truth, wide.score_samples(X, y_noisy))
    auc_raw = roc_auc_score(truth, raw.score_samples(X, y_noisy))
    assert auc_wide >= 0.95 and auc_wide >= auc_raw - 0.02
    # new rows go through the same projection
    assert wide.score_samples(X[:10] + 0.0, y_noisy[:10]).shape == (10,)
