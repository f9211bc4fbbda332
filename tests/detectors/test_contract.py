"""The one detector contract, checked over EVERY registered detector.

Nothing is exempt: a new detector registered under a new ``family`` fails
``test_quality_floor`` until a poisoned table and a floor for that family are added
to ``FAMILY_TABLES`` below.
"""

from __future__ import annotations

import copy
import inspect
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from poisonguard.attacks import backdoor, inject_outliers
from poisonguard.detectors import BaseDetector, Explanation, available_detectors, get_detector, register
from poisonguard.detectors import _base
from poisonguard.encoding import TableEncoder
from poisonguard.errors import ConfigError, NotFittedError

NAMES = sorted(available_detectors())


def _encode(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    feats = [c for c in frame.columns if c != "label"]
    X = TableEncoder().fit_transform(frame, feats)
    return X, frame["label"].to_numpy().astype(np.int64)


def _y_for(cls: type[BaseDetector], y: np.ndarray) -> np.ndarray | None:
    """Label-free detectors are exercised without labels, as an unlabeled scan runs them."""
    return y if cls.needs_label else None


def _equal(a: Any, b: Any) -> bool:
    """Deep, numpy-aware equality of detector state (``vars()`` snapshots)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
            and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, z) for x, z in zip(a, b))
    if isinstance(a, (int, float, str, bool, bytes, type(None), np.generic)):
        return bool(a == b) or (a != a and b != b)  # NaN == NaN here
    if hasattr(a, "__dict__"):
        return _equal(vars(a), vars(b))
    state_a, state_b = getattr(a, "__getstate__", lambda: None)(), getattr(b, "__getstate__", lambda: None)()
    if isinstance(state_a, dict):  # e.g. sklearn's Cython trees
        return _equal(state_a, state_b)
    return pickle.dumps(a) == pickle.dumps(b)


# ----------------------------------------------------------------- data
@pytest.fixture(scope="module")
def flipped_xy(digits_flipped):
    X, y = _encode(digits_flipped.frame)
    return X, y, digits_flipped.mask


@pytest.fixture(scope="module")
def family_tables(digits_small):
    """Poisoned table per family: (X, y, mask of poisoned rows)."""
    return {
        "outlier": lambda: _outlier_table(digits_small),
        "backdoor": lambda: _backdoor_table(digits_small),
        "duplicate": lambda: _duplicate_table(digits_small),
        "cluster": lambda: _cluster_table(digits_small),
        "clean": lambda: digits_small,
    }


def _outlier_table(frame):
    pt = inject_outliers(frame, "label", 0.05, seed=0)
    X, y = _encode(pt.frame)
    return X, y, pt.mask


def _backdoor_table(frame):
    # a 2x2 max-value patch in the bottom-right corner on 6% of rows, relabelled 0
    pt = backdoor(frame, "label", 0.06, seed=0, target=0, image_shape=(8, 8))
    X, y = _encode(pt.frame)
    return X, y, pt.mask


def _cluster_table(frame):
    # one tight blob of 4% of the rows, its centre drawn inside every column's range
    pt = inject_outliers(frame, "label", 0.04, seed=0, placement="cluster_in_range")
    X, y = _encode(pt.frame)
    return X, y, pt.mask


def _duplicate_table(frame):
    """The first 15 rows with no natural exact twin, copied with a different label."""
    base = frame.iloc[:400].reset_index(drop=True)
    feats = [c for c in base.columns if c != "label"]
    unique = np.flatnonzero(~base.duplicated(subset=feats, keep=False).to_numpy())[:15]
    twins = base.iloc[unique].copy()
    twins["label"] = (twins["label"] + 1) % 10
    out = pd.concat([base, twins], ignore_index=True)
    mask = np.zeros(len(out), dtype=bool)
    mask[unique] = True
    mask[len(base):] = True
    X, y = _encode(out)
    return X, y, mask


@pytest.fixture(scope="module")
def fitted(flipped_xy):
    """``fitted(name)``: one default instance fitted on the flipped table and its scores, cached per module.

    Tests that use it must not change the detector (they check that nothing does).
    """
    X, y, _ = flipped_xy
    cache: dict[str, tuple[BaseDetector, np.ndarray]] = {}

    def get(name: str) -> tuple[BaseDetector, np.ndarray]:
        if name not in cache:
            cls = available_detectors()[name]
            det = cls()
            assert det.fit(X, _y_for(cls, y)) is det
            cache[name] = (det, det.score_samples(X, _y_for(cls, y)))
        return cache[name]

    return get


# ------------------------------------------------------------ contract
@pytest.mark.parametrize("name", NAMES)
class TestContract:
    def test_declares_itself(self, name):
        cls = available_detectors()[name]
        assert cls.name == name
        assert cls.family in {"label", "outlier", "backdoor", "duplicate", "shift", "cluster"}
        assert cls.score_kind in {"probability", "anomaly"}
        assert isinstance(cls.summary, str) and cls.summary

    def test_keyword_only_settings_without_mutable_defaults(self, name):
        cls = available_detectors()[name]
        params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
        assert all(p.kind is p.KEYWORD_ONLY for p in params), [p.name for p in params]
        for p in params:
            assert p.default is not p.empty, f"{name}.{p.name} has no default"
            assert isinstance(p.default, (int, float, str, bool, tuple, type(None))), f"{name}.{p.name}"
        if params:
            with pytest.raises(TypeError):
                cls(params[0].default)

    def test_get_params_round_trip(self, name):
        cls = available_detectors()[name]
        det = cls()
        params = det.get_params()
        assert set(params) == set(cls._param_names())
        clone = cls(**params)
        assert clone.get_params() == params
        assert det.set_params(**params) is det and det.get_params() == params
        assert get_detector(name, **params).get_params() == params
        assert repr(det).startswith(type(det).__name__ + "(")

    def test_fit_returns_self_and_scores_are_finite_floats(self, name, flipped_xy, fitted):
        X, y, _ = flipped_xy
        cls = available_detectors()[name]
        det, s = fitted(name)  # the fixture asserts fit(...) is self
        assert det.n_features_in_ == X.shape[1]
        assert isinstance(s, np.ndarray) and s.shape == (X.shape[0],) and s.dtype == np.float64
        assert np.isfinite(s).all()
        # learned state has a trailing underscore; settings are stored unchanged
        assert det.get_params() == cls().get_params()
        # new rows (not the fit matrix) are scored too
        s_new = det.score_samples(X[:7] + 0.01, _y_for(cls, y[:7]))
        assert s_new.shape == (7,) and np.isfinite(s_new).all()

    def test_use_before_fit_raises_not_fitted(self, name, flipped_xy):
        X, y, _ = flipped_xy
        cls = available_detectors()[name]
        det = cls()
        for call in (lambda: det.score_samples(X, y), lambda: det.explain(X, y, 0), lambda: det.explain_rows(X, y, [0])):
            with pytest.raises(NotFittedError, match="not fitted"):
                call()
        # catchable the scikit-learn ways too
        with pytest.raises(ValueError):
            det.score_samples(X, y)
        with pytest.raises(AttributeError):
            det.score_samples(X, y)

    def test_wrong_column_count_raises_value_error(self, name, flipped_xy, fitted):
        X, y, _ = flipped_xy
        cls = available_detectors()[name]
        det, _ = fitted(name)
        with pytest.raises(ValueError, match=f"{X.shape[1] - 1} columns but the detector was fitted on {X.shape[1]}"):
            det.score_samples(X[:, :-1], _y_for(cls, y))
        with pytest.raises(ValueError):
            det.explain_rows(np.hstack([X, X[:, :1]]), _y_for(cls, y), [0])

    def test_same_seed_same_scores(self, name, flipped_xy, fitted, monkeypatch):
        X, y, _ = flipped_xy
        cls = available_detectors()[name]
        _, a = fitted(name)
        # empty memos for the refit: the neighbour graph and token search are recomputed, so
        # the scores repeat because the detector is deterministic, not because a cache answered
        _fresh_memos(monkeypatch)
        b = cls().fit(X.copy(), None if y is None else _y_for(cls, y.copy())).score_samples(X, _y_for(cls, y))
        np.testing.assert_array_equal(a, b)

    def test_scoring_twice_same_answer_and_no_mutation(self, name, flipped_xy, fitted):
        X, y, _ = flipped_xy
        cls = available_detectors()[name]
        det, first = fitted(name)
        before = copy.deepcopy(vars(det))
        X_before = X.copy()
        second = det.score_samples(X, _y_for(cls, y))
        np.testing.assert_array_equal(first, second)
        det.score_samples(X[:11] * 1.5, _y_for(cls, y[:11]))  # scoring other rows does not mutate either
        det.explain_rows(X, _y_for(cls, y), [0, 1])
        after = vars(det)
        assert before.keys() == after.keys()
        changed = [k for k in before if not _equal(before[k], after[k])]
        assert not changed, f"{name} mutated {changed} while scoring/explaining"
        np.testing.assert_array_equal(X, X_before)

    def test_explains_top_row_with_evidence(self, name, flipped_xy, fitted):
        X, y, _ = flipped_xy
        cls = available_detectors()[name]
        det, s = fitted(name)
        top = int(np.argmax(s))
        e = det.explain(X, _y_for(cls, y), top)
        assert isinstance(e, Explanation)
        assert (e.detector, e.row) == (name, top) and e.score == pytest.approx(s[top])
        assert isinstance(e.reason, str) and e.reason.strip()
        assert isinstance(e.evidence, dict)
        rows = list(np.argsort(-s, kind="stable")[:3])
        exps = det.explain_rows(X, _y_for(cls, y), rows, scores=s)
        assert [x.row for x in exps] == [int(r) for r in rows]
        assert all(isinstance(x, Explanation) and x.reason.strip() for x in exps)
        assert det.explain_rows(X, _y_for(cls, y), []) == []
        with pytest.raises(ValueError, match="out of range"):
            det.explain(X, _y_for(cls, y), X.shape[0])

    def test_registry_refuses_duplicate_name_unless_forced(self, name):
        original = available_detectors()[name]
        assert register(original) is original  # re-registering the same class is a no-op
        impostor = type("Impostor", (original,), {})
        with pytest.raises(ConfigError, match=f"a detector named {name!r} is already registered"):
            register(impostor)
        assert available_detectors()[name] is original
        try:
            assert register(impostor, force=True) is impostor
            assert available_detectors()[name] is impostor
        finally:
            _base._REGISTRY[name] = original
        assert available_detectors()[name] is original

    def test_unknown_setting_raises_config_error(self, name):
        cls = available_detectors()[name]
        with pytest.raises(ConfigError, match="no_such_setting"):
            get_detector(name, no_such_setting=1)
        with pytest.raises(ConfigError, match="no_such_setting"):
            cls().set_params(no_such_setting=1)
        with pytest.raises(TypeError):
            cls(no_such_setting=1)

    def test_quality_floor(self, name, flipped_xy, family_tables, fitted):
        """A floor on a small poisoned table chosen by the detector's family."""
        cls = available_detectors()[name]
        if cls.family == "label":  # 10% random flips on 600 digits
            X, y, mask = flipped_xy
            _, s = fitted(name)
            assert roc_auc_score(mask, s) >= 0.9
        elif cls.family in ("outlier", "backdoor"):
            X, y, mask = family_tables[cls.family]()
            s = cls().fit(X, _y_for(cls, y)).score_samples(X, _y_for(cls, y))
            assert roc_auc_score(mask, s) >= 0.9
        elif cls.family == "duplicate":
            X, y, mask = family_tables["duplicate"]()
            s = cls().fit(X, y).score_samples(X, y)
            assert (s[mask] >= 0.5).all(), s[mask]
            assert (s[~mask] >= 0.5).mean() <= 0.01
        elif cls.family == "cluster":
            X, y, mask = family_tables["cluster"]()
            s = cls().fit(X, y).score_samples(X, y)
            assert roc_auc_score(mask, s) >= 0.95
            assert (s[mask] >= 0.5).mean() >= 0.9
            assert (s[~mask] >= 0.5).mean() <= 0.01
            X0, y0 = _encode(family_tables["clean"]())
            clean = cls().fit(X0, y0).score_samples(X0, y0)
            assert (clean >= 0.5).sum() == 0, f"{(clean >= 0.5).sum()} clean rows flagged"
        else:  # pragma: no cover - a new family must bring its own floor
            pytest.fail(f"no quality floor for family {cls.family!r} of {name!r}: add a poisoned table for it")


def test_registry_lists_every_built_in_detector():
    assert {"knn_label", "confident", "duplicates", "iforest", "class_outlier", "backdoor_trigger"} <= set(NAMES)
    # a copy: mutating it does not touch the registry
    reg = available_detectors()
    reg.pop("iforest")
    assert "iforest" in available_detectors()


def test_register_rejects_non_detectors_and_nameless():
    with pytest.raises(ConfigError, match="not a BaseDetector subclass"):
        register(int)  # type: ignore[arg-type]
    nameless = type("Nameless", (available_detectors()["iforest"],), {"name": ""})
    with pytest.raises(ConfigError, match="declares no name"):
        register(nameless)


def test_unknown_detector_name_lists_available():
    with pytest.raises(ConfigError, match="unknown detector 'nope'; available: .*knn_label"):
        get_detector("nope")


def _fresh_memos(monkeypatch) -> None:
    """Replace every module-level memo of the detectors with an empty one (restored after the test)."""
    import importlib
    import pkgutil

    import poisonguard.detectors as pkg
    from poisonguard.detectors._memo import BoundedMemo

    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        for attr, value in list(vars(module).items()):
            if isinstance(value, BoundedMemo):
                monkeypatch.setattr(module, attr, BoundedMemo(2))
