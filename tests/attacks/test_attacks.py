"""Attack simulator: exact rates, correct masks, determinism, no mutation, triggers, holdout."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonguard.attacks import (
    BlendTrigger,
    PatchTrigger,
    TabularTrigger,
    apply_trigger,
    backdoor,
    boundary_flip,
    flip_labels,
    inject_outliers,
    load_trigger,
    make_trigger,
    poison,
    save_trigger,
    targeted_flip,
    trigger_from_dict,
)
from poisonguard.datasets import load_dataset
from poisonguard.errors import ConfigError, DataError, InputError


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    return load_dataset("digits").frame


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return load_dataset("wine").frame


def _features(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != "label"]


# ---------------------------------------------------------------- label flips
def test_flip_exact_rate_mask_and_only_labels_change(digits: pd.DataFrame) -> None:
    before = digits.copy()
    res = flip_labels(digits, "label", 0.1, seed=0)
    assert res.kind == "flip"
    assert res.mask.dtype == bool and res.mask.shape == (len(digits),)
    assert res.n_poisoned == round(0.1 * len(digits)) == 180
    changed = res.frame["label"].to_numpy() != digits["label"].to_numpy()
    np.testing.assert_array_equal(changed, res.mask)  # every flipped row really changed, no other did
    pd.testing.assert_frame_equal(res.frame[_features(digits)], digits[_features(digits)])
    assert res.frame["label"].dtype == digits["label"].dtype
    pd.testing.assert_frame_equal(digits, before)  # input not mutated
    assert res.params["n_poisoned"] == 180 and res.params["seed"] == 0


def test_flip_is_deterministic_by_seed(wine: pd.DataFrame) -> None:
    a, b = flip_labels(wine, "label", 0.2, seed=3), flip_labels(wine, "label", 0.2, seed=3)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.mask, b.mask)
    c = flip_labels(wine, "label", 0.2, seed=4)
    assert not np.array_equal(a.mask, c.mask)


def test_flip_keeps_string_labels() -> None:
    df = pd.DataFrame({"x": np.arange(20.0), "y": ["cat", "dog"] * 10})
    res = flip_labels(df, "y", 0.25, seed=1)
    assert set(res.frame["y"]) <= {"cat", "dog"}
    assert (res.frame["y"] != df["y"]).sum() == 5 == res.n_poisoned


@settings(max_examples=25, deadline=None)
@given(n=st.integers(10, 300), rate=st.floats(0.05, 0.9), n_classes=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_flip_count_property(n: int, rate: float, n_classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, size=n - n_classes)])
    df = pd.DataFrame({"a": rng.normal(size=n), "label": y})
    res = flip_labels(df, "label", rate, seed=seed)
    assert res.n_poisoned == int(np.floor(rate * n + 0.5))
    np.testing.assert_array_equal(res.frame["label"].to_numpy() != y, res.mask)


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5])
def test_flip_rejects_rates_outside_open_unit_interval(wine: pd.DataFrame, rate: float) -> None:
    with pytest.raises(InputError, match="rate"):
        flip_labels(wine, "label", rate)


def test_flip_rejects_rate_that_poisons_nothing(wine: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="poisons no row"):
        flip_labels(wine, "label", 0.001)


def test_flip_unknown_label_and_single_class() -> None:
    df = pd.DataFrame({"x": np.arange(10.0), "y": [1] * 10})
    with pytest.raises(InputError, match="'nope' not found"):
        flip_labels(df, "nope", 0.1)
    with pytest.raises(DataError, match="single class"):
        flip_labels(df, "y", 0.1)


# ------------------------------------------------------------- targeted flip
def test_targeted_flip_moves_source_rows_nearest_boundary(wine: pd.DataFrame) -> None:
    res = targeted_flip(wine, "label", 0, 1, rate=0.05, seed=0)
    k = round(0.05 * len(wine))
    assert res.n_poisoned == k and res.target == 1 and res.kind == "targeted"
    assert (wine["label"].to_numpy()[res.mask] == 0).all()
    assert (res.frame["label"].to_numpy()[res.mask] == 1).all()
    np.testing.assert_array_equal(res.frame["label"].to_numpy() != wine["label"].to_numpy(), res.mask)
    # the chosen rows sit closer to the 0/1 boundary than the source rows left alone
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    pair = wine["label"].isin([0, 1]).to_numpy()
    X = StandardScaler().fit_transform(wine.loc[pair, _features(wine)])
    yb = (wine.loc[pair, "label"] == 1).astype(int)
    margin = np.abs(LogisticRegression(max_iter=2000).fit(X, yb).decision_function(X))
    src_margin = pd.Series(margin, index=np.flatnonzero(pair))[wine.index[pair & (wine["label"] == 0).to_numpy()]]
    chosen = src_margin[res.mask[src_margin.index]]
    left = src_margin[~res.mask[src_margin.index]]
    assert chosen.max() <= left.min() + 1e-9


def test_targeted_flip_text_classes_cap_and_errors(wine: pd.DataFrame) -> None:
    res = targeted_flip(wine, "label", "2", "0", rate=0.05, seed=0)  # text, as from the CLI
    assert res.target == 0
    with pytest.warns(UserWarning, match="only 48"):
        capped = targeted_flip(wine, "label", 2, 0, rate=0.5, seed=0)
    assert capped.n_poisoned == 48
    with pytest.raises(InputError, match="not a class"):
        targeted_flip(wine, "label", 0, 7, rate=0.05)
    with pytest.raises(InputError, match="both"):
        targeted_flip(wine, "label", 1, 1, rate=0.05)


# ------------------------------------------------------------------ outliers
def test_outliers_appended_far_away_with_exact_rate(wine: pd.DataFrame) -> None:
    before = wine.copy()
    res = inject_outliers(wine, "label", 0.05, seed=0)
    n, k = len(wine), round(0.05 * len(wine) / 0.95)
    assert res.n_poisoned == k and len(res.frame) == n + k
    assert not res.mask[:n].any() and res.mask[n:].all()
    pd.testing.assert_frame_equal(res.frame.iloc[:n], wine)
    pd.testing.assert_frame_equal(wine, before)
    feats = _features(wine)
    z = (res.frame.iloc[n:][feats] - wine[feats].mean()) / wine[feats].std(ddof=0)
    assert (z.abs().to_numpy() >= 4 - 1e-9).all() and (z.abs().to_numpy() <= 8 + 1e-9).all()
    assert set(res.frame["label"].iloc[n:]) <= set(wine["label"])
    assert list(res.frame.dtypes) == list(wine.dtypes)


def test_outliers_keep_integer_dtype_and_are_deterministic(digits: pd.DataFrame) -> None:
    a = inject_outliers(digits, "label", 0.1, seed=5, scale=(5, 6))
    b = inject_outliers(digits, "label", 0.1, seed=5, scale=(5, 6))
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert (a.frame.dtypes == np.int64).all()
    with pytest.raises(InputError, match="scale"):
        inject_outliers(digits, "label", 0.1, scale=(0, 2))


def test_in_range_outliers_stay_inside_every_column_but_are_jointly_odd(wine: pd.DataFrame) -> None:
    res = inject_outliers(wine, "label", 0.1, seed=3, placement="in_range")
    n, feats = len(wine), _features(wine)
    added = res.frame.iloc[n:][feats]
    assert res.mask[n:].all() and res.params["placement"] == "in_range"
    assert (added >= wine[feats].min()).all().all() and (added <= wine[feats].max()).all().all()
    # uniform within the range: a real row's features sit near the middle of the range far more often
    span = (wine[feats].max() - wine[feats].min())
    edge = ((added - wine[feats].min()) / span).sub(0.5).abs().mean().mean()
    real = ((wine[feats] - wine[feats].min()) / span).sub(0.5).abs().mean().mean()
    assert edge > real + 0.02  # uniform: 0.25 on average
    with pytest.raises(InputError, match="placement"):
        inject_outliers(wine, "label", 0.1, placement="inside")


def test_boundary_flip_relabels_the_rows_most_like_the_target(wine: pd.DataFrame) -> None:
    res = boundary_flip(wine, "label", 1, 0.1, seed=0)
    k = round(0.1 * len(wine))
    assert res.n_poisoned == k and res.kind == "boundary" and res.target == 1
    assert (res.frame["label"][res.mask] == 1).all() and (wine["label"][res.mask] != 1).all()
    assert (res.frame["label"][~res.mask] == wine["label"][~res.mask]).all()
    # the flipped rows look more like class 1 than the other rows of their classes do
    from sklearn.linear_model import LogisticRegression

    feats = _features(wine)
    X = (wine[feats] - wine[feats].mean()) / wine[feats].std()
    p1 = LogisticRegression(max_iter=2000).fit(X, wine["label"]).predict_proba(X)[:, 1]
    rest = (wine["label"] != 1).to_numpy() & ~res.mask
    assert p1[res.mask].mean() > p1[rest].mean() + 0.1
    assert poison("boundary", wine, label="label", rate=0.1, target_class=1).mask.tolist() == res.mask.tolist()


# ------------------------------------------------------------------ backdoor
def test_patch_backdoor_dirty_label(digits: pd.DataFrame) -> None:
    before = digits.copy()
    res = backdoor(digits, "label", 0.05, seed=0, target=0, image_shape=(8, 8))
    t = res.trigger
    assert isinstance(t, PatchTrigger) and (t.row, t.col, t.size, t.value) == (6, 6, 2, 16.0)
    assert t.pixel_columns() == ["px54", "px55", "px62", "px63"]
    assert res.n_poisoned == round(0.05 * len(digits))
    p = res.frame[res.mask]
    assert (p[t.pixel_columns()] == 16).all().all()
    assert (p["label"] == 0).all()
    assert (digits["label"][res.mask] != 0).all()  # drawn from non-target classes
    pd.testing.assert_frame_equal(res.frame[~res.mask], digits[~res.mask])  # the rest untouched
    other = [c for c in _features(digits) if c not in t.pixel_columns()]
    pd.testing.assert_frame_equal(p[other], digits[res.mask][other])
    pd.testing.assert_frame_equal(digits, before)
    assert res.params["trigger"] == t.to_dict()


@pytest.mark.parametrize(
    ("position", "row_col"),
    [("top-left", (0, 0)), ("top-right", (0, 5)), ("bottom-left", (5, 0)), ("centre", (2, 2))],
)
def test_patch_positions(digits: pd.DataFrame, position: str, row_col: tuple[int, int]) -> None:
    t = make_trigger("patch", digits, features=_features(digits), image_shape=(8, 8), size=3, position=position)
    assert (t.row, t.col) == row_col
    r1 = make_trigger("patch", digits, features=_features(digits), image_shape=(8, 8), position="random", seed=1)
    r2 = make_trigger("patch", digits, features=_features(digits), image_shape=(8, 8), position="random", seed=1)
    assert r1 == r2


def test_clean_label_backdoor_keeps_labels(digits: pd.DataFrame) -> None:
    res = backdoor(digits, "label", 0.03, seed=1, target=3, image_shape=(8, 8), clean_label=True)
    np.testing.assert_array_equal(res.frame["label"], digits["label"])
    assert (digits["label"][res.mask] == 3).all()
    assert (res.frame[res.mask][res.trigger.pixel_columns()] == 16).all().all()


def test_blend_backdoor_values(digits: pd.DataFrame) -> None:
    res = backdoor(digits, "label", 0.05, seed=2, target=1, image_shape=(8, 8), trigger="blend",
                   trigger_options={"alpha": 0.3})
    t = res.trigger
    assert isinstance(t, BlendTrigger) and t.alpha == 0.3 and len(t.pattern) == 64
    pattern = np.asarray(t.pattern)
    assert pattern.min() >= 0 and pattern.max() <= 16
    orig = digits[_features(digits)].to_numpy(dtype=float)[res.mask]
    expected = np.round(0.7 * orig + 0.3 * pattern)
    np.testing.assert_array_equal(res.frame[_features(digits)].to_numpy()[res.mask], expected)


def test_tabular_backdoor(wine: pd.DataFrame) -> None:
    res = backdoor(wine, "label", 0.1, seed=0, target=2)
    t = res.trigger
    assert isinstance(t, TabularTrigger) and len(t.values) == 2
    for col, value in t.values:
        assert value == pytest.approx(np.percentile(wine[col], 99.9))
        assert (res.frame.loc[res.mask, col] == value).all()
    out = backdoor(wine, "label", 0.1, seed=0, target=2,
                   trigger_options={"trigger_features": ["ash"], "trigger_values": "outside"})
    assert out.trigger.values[0][1] > wine["ash"].max()


def test_backdoor_holdout_is_disjoint_and_triggered(digits: pd.DataFrame) -> None:
    df = digits.assign(rid=np.arange(len(digits)))
    feats = _features(digits)
    res = backdoor(df, "label", 0.05, seed=0, target=0, image_shape=(8, 8), features=feats, holdout_fraction=0.2)
    ho = res.holdout
    assert ho is not None and ho["triggered"].dtype == bool
    clean, trig = ho[~ho["triggered"]], ho[ho["triggered"]]
    assert len(clean) == round(0.2 * len(df))
    assert set(clean["rid"]).isdisjoint(res.frame["rid"])
    assert set(clean["rid"]) | set(res.frame["rid"]) == set(df["rid"])
    assert len(res.frame) == len(df) - len(clean) == res.mask.size
    assert res.n_poisoned == round(0.05 * len(res.frame))
    # triggered copies: the non-target test rows, true labels kept, trigger stamped
    assert sorted(trig["rid"]) == sorted(clean.loc[clean["label"] != 0, "rid"])
    assert (trig["label"] != 0).all()
    assert (trig[res.trigger.pixel_columns()] == 16).all().all()
    assert res.params["n_holdout"] == len(clean)


def test_backdoor_errors(digits: pd.DataFrame, wine: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="not a class"):
        backdoor(digits, "label", 0.05, target=11, image_shape=(8, 8))
    with pytest.raises(InputError, match="image_shape"):
        backdoor(wine, "label", 0.05, target=0, trigger="patch")
    with pytest.raises(InputError, match="needs 16 pixel"):
        backdoor(digits, "label", 0.05, target=0, image_shape=(4, 4))
    with pytest.raises(InputError, match="position"):
        backdoor(digits, "label", 0.05, target=0, image_shape=(8, 8), trigger_options={"position": "middle"})


# ------------------------------------------------------------------ triggers
def test_trigger_round_trip_and_apply(tmp_path, digits: pd.DataFrame) -> None:
    feats = _features(digits)
    for kind in ("patch", "blend"):
        t = make_trigger(kind, digits, features=feats, image_shape=(8, 8), seed=4)
        spec = json.loads(json.dumps(t.to_dict()))
        assert trigger_from_dict(spec) == t
        assert load_trigger(save_trigger(t, tmp_path / f"{kind}.json")) == t
        rows = digits.head(5)
        stamped_obj, stamped_dict = apply_trigger(rows, t), apply_trigger(rows, spec)
        pd.testing.assert_frame_equal(stamped_obj, stamped_dict)
        pd.testing.assert_frame_equal(rows, digits.head(5))  # not mutated
    tab = TabularTrigger(values=(("px0", 9.0),))
    assert trigger_from_dict(tab.to_dict()) == tab
    assert (apply_trigger(digits.head(3), tab)["px0"] == 9).all()


def test_trigger_errors(digits: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="unknown trigger kind"):
        trigger_from_dict({"kind": "sticker"})
    with pytest.raises(ConfigError, match="malformed"):
        trigger_from_dict({"kind": "patch", "columns": ["a"]})
    with pytest.raises(InputError, match="missing"):
        apply_trigger(digits[["px0", "label"]], TabularTrigger(values=(("nope", 1.0),)))


def test_poison_dispatch(wine: pd.DataFrame) -> None:
    res = poison("targeted", wine, label="label", rate=0.05, seed=0, source_class=0, target_class=1)
    assert res.kind == "targeted"
    with pytest.raises(InputError, match="unknown attack kind"):
        poison("erase", wine, label="label", rate=0.1)
    with pytest.raises(InputError, match="unexpected keyword"):
        poison("flip", wine, label="label", rate=0.1, target=1)


def test_truth_frame(wine: pd.DataFrame) -> None:
    res = flip_labels(wine, "label", 0.1, seed=0)
    truth = res.truth()
    assert list(truth.columns) == ["row", "poisoned"]
    np.testing.assert_array_equal(truth["poisoned"], res.mask)


def test_backdoor_positional_signature_and_missing_target(wine: pd.DataFrame) -> None:
    res = backdoor(wine, "label", 0.1, 0, 2, "tabular")
    assert res.target == 2 and isinstance(res.trigger, TabularTrigger)
    with pytest.raises(InputError, match="needs a target"):
        backdoor(wine, "label", 0.1)
