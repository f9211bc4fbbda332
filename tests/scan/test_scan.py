"""``poisonguard.scan``: inputs, result shape, outputs, flag rules, fail-closed, quality floors."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import poisonguard
from poisonguard.attacks import flip_labels
from poisonguard.datasets import load_dataset
from poisonguard.detectors import BaseDetector, available_detectors, default_detectors, register
from poisonguard.detectors import _base
from poisonguard.errors import ConfigError, DetectorFailedError, InputError
from poisonguard.scan import AUTO_THRESHOLD, ScanResult, scan


@pytest.fixture(scope="module")
def flipped_result(digits_flipped) -> ScanResult:
    frame = digits_flipped.frame.copy()
    frame.insert(0, "uid", [f"r{i:04d}" for i in range(len(frame))])
    return scan(frame, label="label", id_col="uid")


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return load_dataset("wine").frame


# ----------------------------------------------------------------- inputs
def test_dataframe_numpy_csv_and_parquet_give_the_same_scores(tmp_path, wine):
    pt = flip_labels(wine, "label", 0.1, seed=1)
    frame = pt.frame
    dets = "knn_label,duplicates"  # fast ones: this test is about reading the inputs
    ref = scan(frame, label="label", detectors=dets)
    csv, pq = tmp_path / "w.csv", tmp_path / "w.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(pq, index=False)
    for src in (csv, str(csv), pq):
        r = scan(src, label="label", detectors=dets)
        np.testing.assert_allclose(r.suspicion, ref.suspicion, atol=1e-9)
        np.testing.assert_array_equal(r.flagged, ref.flagged)
    arr = frame.to_numpy(dtype=float)
    r = scan(arr, label=f"x{arr.shape[1] - 1}", detectors=["knn_label", "duplicates"])
    assert r.table.features == [f"x{i}" for i in range(arr.shape[1] - 1)]
    np.testing.assert_allclose(r.suspicion, ref.suspicion, atol=1e-9)


def test_input_frame_is_not_mutated(wine):
    before = wine.copy()
    scan(wine, label="label", detectors="knn_label")
    pd.testing.assert_frame_equal(wine, before)


def test_bad_inputs_raise_typed_errors(wine):
    with pytest.raises(InputError, match="data: label column 'nope' not found"):
        scan(wine, label="nope")
    with pytest.raises(InputError, match="must be a path, DataFrame or 2-D array, got list"):
        scan([[1, 2], [3, 4]])
    with pytest.raises(InputError, match="give either top or contamination, not both"):
        scan(wine, label="label", top=5, contamination=0.1)
    with pytest.raises(InputError, match="^contamination must be 'auto' or a fraction in \\(0, 1\\), got 'lots'"):
        scan(wine, label="label", contamination="lots")
    with pytest.raises(InputError, match="^contamination must be in \\(0, 1\\), got 1.5"):
        scan(wine, label="label", contamination=1.5)
    with pytest.raises(InputError, match="^top must be >= 1, got 0"):
        scan(wine, label="label", top=0)
    with pytest.raises(ConfigError, match="unknown detector 'nope'"):
        scan(wine, label="label", detectors="knn_label,nope")
    with pytest.raises(ConfigError, match="settings were given for detector\\(s\\) \\['confident'\\]"):
        scan(wine, label="label", detectors="knn_label", settings={"confident": {"C": 1.0}})
    with pytest.raises(ConfigError, match="has no setting\\(s\\) \\['k'\\]"):
        scan(wine, label="label", detectors="knn_label", settings={"knn_label": {"k": 3}})
    with pytest.raises(InputError, match="candidates has shape \\(3,\\), expected \\(178,\\)"):
        scan(wine, label="label", detectors="knn_label", candidates=[True, False, True])


# ----------------------------------------------------------------- result
def test_result_fields_and_shapes(flipped_result, digits_flipped):
    r = flipped_result
    n = len(digits_flipped.frame)
    assert r.status == "ok" and r.failures == {} and r.n_rows == n
    assert r.detectors == default_detectors(labeled=True)
    assert r.suspicion.shape == (n,) and r.suspicion.dtype == np.float64
    assert np.all((r.suspicion >= 0) & (r.suspicion <= 1))
    assert r.flagged.shape == (n,) and r.flagged.dtype == bool
    assert len(r.reasons) == n and len(r.row_detectors) == n
    assert list(r.detector_scores.columns) == r.detectors and list(r.strengths.columns) == r.detectors
    assert r.detector_scores.shape == (n, len(r.detectors)) and np.isfinite(r.detector_scores.to_numpy()).all()
    assert ((r.strengths >= 0) & (r.strengths <= 1)).all().all()
    assert r.flag_rule.startswith("auto") and r.threshold == pytest.approx(r.suspicion[r.flagged].min())
    assert {"encode", "explain", "total", *r.detectors} <= set(r.timings)
    assert r.table.features == digits_flipped.features  # the id column is not a feature
    # every flagged row and the top rows carry a reason and the detectors behind it
    top = np.argsort(-r.suspicion, kind="stable")[:10]
    for i in np.union1d(np.flatnonzero(r.flagged), top):
        assert r.reasons[i] and r.row_detectors[i]
        assert all(name in r.detectors for name in r.row_detectors[i].split(","))
        assert "{label:" not in r.reasons[i] and "{feature:" not in r.reasons[i]
    assert r.raise_for_status() is r


def test_to_csv_writes_flagged_rows_most_suspicious_first(tmp_path, flipped_result, digits_flipped):
    r = flipped_result
    out = r.to_csv(tmp_path / "sub" / "suspicious_samples.csv")
    assert out == tmp_path / "sub" / "suspicious_samples.csv"
    df = pd.read_csv(out)
    assert list(df.columns) == ["row", "uid", *digits_flipped.features, "label", "suspicion", "detectors", "reason"]
    assert len(df) == r.n_flagged > 0
    assert df["suspicion"].is_monotonic_decreasing
    assert set(df["row"]) == set(np.flatnonzero(r.flagged))
    rows = df["row"].to_numpy()
    assert (df["uid"] == [f"r{i:04d}" for i in rows]).all()
    np.testing.assert_array_equal(df["label"], digits_flipped.frame["label"].to_numpy()[rows])
    np.testing.assert_array_equal(df[digits_flipped.features], digits_flipped.frame[digits_flipped.features].to_numpy()[rows])
    assert df["reason"].str.len().gt(0).all() and df["detectors"].str.len().gt(0).all()
    assert not list(tmp_path.glob("sub/.*tmp*"))  # atomic write leaves no temporary file
    pq = r.to_csv(tmp_path / "s.parquet")
    assert len(pd.read_parquet(pq)) == r.n_flagged


def test_write_scores_every_row_in_input_order(tmp_path, flipped_result):
    r = flipped_result
    df = pd.read_csv(r.write_scores(tmp_path / "scores.csv"))
    assert list(df.columns) == ["row", "id", "suspicion", "flagged", *r.detectors]
    assert len(df) == r.n_rows and (df["row"] == np.arange(r.n_rows)).all()
    assert (df["id"] == [f"r{i:04d}" for i in range(r.n_rows)]).all()
    np.testing.assert_allclose(df["suspicion"], r.suspicion)
    np.testing.assert_array_equal(df["flagged"], r.flagged)
    np.testing.assert_allclose(df[r.detectors].to_numpy(), r.detector_scores.to_numpy())


def test_write_scores_without_id(tmp_path, wine):
    r = scan(wine, label="label", detectors="knn_label")
    assert list(pd.read_csv(r.write_scores(tmp_path / "s.csv")).columns) == [
        "row", "suspicion", "flagged", "knn_label"]


def test_summary_is_json_serializable(flipped_result):
    s = flipped_result.summary()
    text = json.dumps(s)  # no default=: every value must be plain JSON
    back = json.loads(text)
    assert back["status"] == "ok" and back["rows"] == flipped_result.n_rows
    assert back["flagged"] == flipped_result.n_flagged and back["detectors"] == flipped_result.detectors
    assert len(back["top"]) == 10 and back["top"][0]["suspicion"] >= back["top"][-1]["suspicion"]
    assert {"row", "id", "label", "suspicion", "flagged", "detectors", "reason"} <= set(back["top"][0])
    assert isinstance(back["top"][0]["label"], int) and back["top"][0]["id"].startswith("r")
    assert "backdoor_trigger" in back["detector_info"]
    assert set(back["flagged_by_detector"]) == set(flipped_result.detectors)


# ----------------------------------------------------------------- rules
def test_contamination_and_top(digits_flipped):
    frame = digits_flipped.frame
    det = "knn_label,confident"
    r = scan(frame, label="label", detectors=det, contamination=0.1)
    assert r.n_flagged == int(np.ceil(0.1 * len(frame))) and r.flag_rule == "contamination=0.1"
    assert r.suspicion[r.flagged].min() >= r.suspicion[~r.flagged].max()
    r2 = scan(frame, label="label", detectors=det, contamination="0.05")
    assert r2.n_flagged == 30
    t = scan(frame, label="label", detectors=det, top=7)
    assert t.n_flagged == 7 and t.flag_rule == "top=7"
    np.testing.assert_array_equal(np.sort(np.flatnonzero(t.flagged)), np.sort(np.argsort(-t.suspicion, kind="stable")[:7]))
    assert scan(frame, label="label", detectors=det, top=10_000).n_flagged == len(frame)


def test_candidates_are_the_only_rows_flagged(digits_flipped):
    frame, mask = digits_flipped.frame, digits_flipped.mask
    cand = np.zeros(len(frame), dtype=bool)
    cand[:300] = True
    for kw in ({}, {"contamination": 0.2}, {"top": 50}):
        r = scan(frame, label="label", detectors="knn_label,confident", candidates=cand, **kw)
        assert not (r.flagged & ~cand).any(), kw
        # auto flags only in classes the presence test judges poisoned: on 600 rows with two
        # label detectors that is 4 of the 10 classes, so its recall is lower than a fixed cut's
        assert r.flagged[cand & mask].mean() > (0.3 if not kw else 0.5), kw
        np.testing.assert_array_equal(r.candidates, cand)
    assert scan(frame, label="label", detectors="knn_label", candidates=cand, contamination=0.1).n_flagged == 30
    assert scan(frame, label="label", detectors="knn_label", candidates=cand, top=400).n_flagged == 300


def test_without_label_only_label_free_detectors_run(digits_small):
    features = digits_small.drop(columns="label")
    r = scan(features)
    assert r.detectors == default_detectors(labeled=False) and "iforest" in r.detectors
    assert not any(available_detectors()[n].needs_label for n in r.detectors)
    assert r.table.y is None and r.status == "ok"
    assert "label" not in r.summary()["top"][0]
    with pytest.raises(ConfigError, match="detector 'knn_label' needs labels; pass --label COL"):
        scan(features, detectors="knn_label")


def test_unlabeled_scan_finds_injected_far_rows(digits_small):
    features = digits_small.drop(columns="label").astype(float)
    far = features.iloc[:5].copy() + 200.0
    r = scan(pd.concat([features, far], ignore_index=True))
    assert r.flagged[-5:].all() and r.flagged[:-5].mean() <= 0.02
    assert all("iforest" in r.reasons[i] for i in range(len(features), len(features) + 5))


def test_settings_and_seed_reach_the_detectors(wine):
    a = scan(wine, label="label", detectors="knn_label", settings={"knn_label": {"n_neighbors": 3, "noise_rate": 0,
                                                                                    "rank_weighted": False}})
    b = scan(wine, label="label", detectors="knn_label")
    assert not np.array_equal(a.detector_scores["knn_label"], b.detector_scores["knn_label"])
    assert set(np.round(a.detector_scores["knn_label"] * 3, 9)) <= {0.0, 1.0, 2.0, 3.0}
    def forest(seed, **extra):
        params = {"n_estimators": 20, **extra}
        return scan(wine, label="label", detectors="iforest", random_state=seed, settings={"iforest": params})

    s1, s1b, s2 = forest(1).suspicion, forest(1).suspicion, forest(2).suspicion
    np.testing.assert_array_equal(s1, s1b)
    assert not np.array_equal(s1, s2)
    # an explicit setting wins over random_state
    np.testing.assert_array_equal(forest(1, random_state=2).suspicion, s2)


def test_per_source_flag_rates(digits_small):
    frame = digits_small.copy()
    n = len(frame)
    frame["vendor"] = np.where(np.arange(n) < 100, "shady", "trusted")
    rng = np.random.default_rng(0)
    bad = rng.choice(100, size=30, replace=False)
    frame.loc[bad, "label"] = (frame.loc[bad, "label"] + 3) % 10
    r = scan(frame, label="label", source_col="vendor", detectors="knn_label,confident")
    ps = r.per_source()
    assert list(ps.columns) == ["source", "rows", "flagged", "flag_rate"]
    assert list(ps["source"]) == ["shady", "trusted"] and list(ps["rows"]) == [100, n - 100]
    # 3 flips per 60-row class: the per-class presence test judges few classes poisoned on so
    # small a table (the label group flags only there), but the shady source still stands out
    assert ps.loc[0, "flag_rate"] >= 5 * ps.loc[1, "flag_rate"] and ps.loc[1, "flag_rate"] <= 0.01
    assert ps["flagged"].sum() == r.n_flagged
    assert "vendor" not in r.table.features
    assert [e["source"] for e in r.summary()["per_source"]] == ["shady", "trusted"]
    assert r.scores_frame()["source"].tolist() == frame["vendor"].tolist()
    empty = scan(digits_small, label="label", detectors="knn_label").per_source()
    assert empty.empty and list(empty.columns) == ["source", "rows", "flagged", "flag_rate"]


def test_progress_callback(wine):
    calls = []
    scan(wine, label="label", detectors="knn_label,duplicates", progress=lambda *a: calls.append(a))
    stages = [c[0] for c in calls]
    assert stages == ["knn_label", "duplicates", "combine", "explain", "done"]
    assert calls[-1][1] == calls[-1][2] == 4


# ----------------------------------------------------------------- fail closed
@pytest.fixture
def crashing_detector():
    """A registered detector that crashes in fit; removed from the registry afterwards."""
    name = f"crash_{uuid.uuid4().hex[:8]}"

    class Crashing(BaseDetector):
        family = "outlier"
        summary = "always crashes (test only)"

        def __init__(self, *, random_state: int = 0) -> None:
            self.random_state = random_state

        def _fit(self, X, y):
            raise RuntimeError("boom in fit")

        def _score(self, X, y, is_fit_data):  # pragma: no cover
            return np.zeros(X.shape[0])

        def _explain(self, X, y, rows, scores, is_fit_data):  # pragma: no cover
            return [("", {}) for _ in rows]

    Crashing.name = name
    register(Crashing)
    yield name
    _base._REGISTRY.pop(name)


@pytest.fixture
def nan_detector():
    """A registered detector that returns NaN scores (a silent crash); removed afterwards."""
    name = f"nan_{uuid.uuid4().hex[:8]}"

    class NaNScores(BaseDetector):
        family = "outlier"
        summary = "returns NaN (test only)"

        def _fit(self, X, y):
            self.ok_ = True

        def _score(self, X, y, is_fit_data):
            return np.full(X.shape[0], np.nan)

        def _explain(self, X, y, rows, scores, is_fit_data):  # pragma: no cover
            return [("", {}) for _ in rows]

    NaNScores.name = name
    register(NaNScores)
    yield name
    _base._REGISTRY.pop(name)


def test_crashing_detector_fails_the_scan(tmp_path, wine, crashing_detector):
    dets = f"knn_label,{crashing_detector}"
    with pytest.raises(DetectorFailedError, match=f"{crashing_detector}: RuntimeError: boom in fit"):
        scan(wine, label="label", detectors=dets)
    r = scan(wine, label="label", detectors=dets, strict=False)
    assert r.status == "failed" and set(r.failures) == {crashing_detector}
    assert "boom in fit" in r.failures[crashing_detector]
    assert list(r.detector_scores.columns) == ["knn_label"]  # the others still ran
    assert r.summary()["status"] == "failed" and json.dumps(r.summary())
    with pytest.raises(DetectorFailedError):
        r.raise_for_status()
    with pytest.raises(DetectorFailedError):
        r.to_csv(tmp_path / "s.csv")  # a failed scan never writes a "clean" review file
    with pytest.raises(DetectorFailedError):
        r.write_scores(tmp_path / "scores.csv")
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "scores.csv").exists()


def test_only_detector_crashing_fails_closed(wine, crashing_detector):
    r = scan(wine, label="label", detectors=crashing_detector, strict=False)
    assert r.status == "failed" and r.n_flagged == 0 and r.suspicion.shape == (len(wine),)


def test_nan_scores_count_as_a_crash(wine, nan_detector):
    r = scan(wine, label="label", detectors=f"knn_label,{nan_detector}", strict=False)
    assert r.status == "failed" and "non-finite" in r.failures[nan_detector]


def test_registry_is_restored_after_the_crash_tests():
    assert all(not n.startswith(("crash_", "nan_")) for n in _base._REGISTRY)


# ----------------------------------------------------------------- tables
def test_reasons_use_the_original_label_values():
    rng = np.random.default_rng(0)
    n = 120
    cls = np.where(np.arange(n) < 60, "cat", "dog")
    X = rng.normal(size=(n, 3)) + np.where(cls == "cat", 0.0, 6.0)[:, None]
    frame = pd.DataFrame(X, columns=["w", "h", "d"]).assign(animal=cls)
    frame.loc[[3, 70], "animal"] = ["dog", "cat"]  # two flips
    r = scan(frame, label="animal", detectors="knn_label,confident")
    assert r.flagged[[3, 70]].all()
    assert "label dog" in r.reasons[3] and "labelled otherwise (most common: cat" in r.reasons[3]
    assert "label cat" in r.reasons[70]
    for i in np.flatnonzero(r.flagged):
        assert "{label" not in r.reasons[i] and "label 0" not in r.reasons[i] and "label 1" not in r.reasons[i]
    assert r.summary()["top"][0]["label"] in {"cat", "dog"}
    np.testing.assert_array_equal(r.table.classes, ["cat", "dog"])


def test_mixed_types_numeric_categorical_bool_and_missing():
    rng = np.random.default_rng(1)
    n = 240
    y = rng.integers(0, 2, n)
    frame = pd.DataFrame({
        "num": rng.normal(size=n) + 4 * y,
        "count": rng.integers(0, 5, n),
        "colour": np.where(y == 1, "red", "blue").astype(object),
        "city": rng.choice([f"c{i}" for i in range(40)], n),  # high-cardinality categorical
        "flag": (y == 1) ^ (rng.random(n) < 0.05),
        "target": np.where(y == 1, "yes", "no"),
    })
    frame.loc[rng.choice(n, 20, replace=False), "num"] = np.nan
    frame.loc[rng.choice(n, 15, replace=False), "colour"] = None
    flips = np.array([10, 50, 90, 130, 170])
    frame.loc[flips, "target"] = np.where(frame.loc[flips, "target"] == "yes", "no", "yes")
    r = scan(frame, label="target")
    assert r.status == "ok" and np.isfinite(r.suspicion).all()
    mask = np.zeros(n, dtype=bool)
    mask[flips] = True
    assert roc_auc_score(mask, r.suspicion) >= 0.9
    assert r.flagged[flips].sum() >= 3
    top = np.argsort(-r.suspicion)[:10]
    assert all("{feature:" not in r.reasons[i] and "{label:" not in r.reasons[i] for i in top)


def test_more_columns_than_rows_warns_but_works():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(8, 12)), columns=[f"f{i}" for i in range(12)]).assign(y=[0, 1] * 4)
    r = scan(frame, label="y")
    assert r.status == "ok" and r.n_rows == 8
    assert any("more feature columns (12) than rows (8)" in w for w in r.warnings)
    assert r.summary()["warnings"] == r.warnings


# ----------------------------------------------------------------- quality floors
def test_quality_digits_flips(flipped_result, digits_flipped):
    mask = digits_flipped.mask
    r = flipped_result
    assert roc_auc_score(mask, r.suspicion) >= 0.95
    # recall of the default rule: on 600 rows (60 per class) only the classes whose upper
    # quartile the label detectors recognise (P >= PREDICTABLE_Q75) are judged, 4 of 10 here
    assert r.flagged[mask].mean() >= 0.35
    # precision: on 600 rows (60 per class) the label probabilities are rough, so this is looser than LABEL_FDR
    assert (r.flagged & ~mask).sum() <= 0.2 * r.n_flagged
    assert all("knn_label" in r.row_detectors[i] or "confident" in r.row_detectors[i]
               for i in np.flatnonzero(r.flagged & mask))


@pytest.mark.parametrize("name", ["digits", "wine"])
def test_default_rule_flags_little_on_clean_tables(name):
    frame = load_dataset(name).frame
    r = scan(frame, label="label")
    assert r.n_flagged / r.n_rows <= 0.02, r.n_flagged
    assert AUTO_THRESHOLD == 0.5


def test_package_exports_scan():
    assert poisonguard.scan is scan and poisonguard.ScanResult is ScanResult



def test_library_scan_refuses_output_column_names_and_fractional_top():
    """The library checks what the CLI checks, before any detector runs."""
    frame = load_dataset("wine").frame
    with pytest.raises(InputError, match="'row'"):
        poisonguard.scan(frame.assign(row=1), label="label")
    with pytest.raises(InputError, match="2.5"):
        poisonguard.scan(frame, label="label", top=2.5)


# ----------------------------------------------------------------- large tables
def test_approximate_neighbours_flag_as_the_exact_search_does(monkeypatch):
    """Above EXACT_MAX_ROWS the neighbour detectors use the inverted-file index; the flags
    and the ranking stay those of the exact search within a small tolerance."""
    from poisonguard.detectors import _neighbors

    pt = flip_labels(load_dataset("synthetic", n_rows=30_000, seed=3).frame, "label", 0.05, seed=3)
    dets = "knn_label,duplicates"
    approx = scan(pt.frame, label="label", detectors=dets)
    monkeypatch.setattr(_neighbors, "_memo", type(_neighbors._memo)(2))  # not the memoised graph
    monkeypatch.setattr(_neighbors, "EXACT_MAX_ROWS", 10**9)
    exact = scan(pt.frame, label="label", detectors=dets)
    # measured: this index 0.87% of rows flagged differently, the previous one (fixed 16 probes) 0.92%
    assert approx.n_flagged > 0.5 * pt.mask.sum()
    assert (approx.flagged != exact.flagged).mean() <= 0.015
    assert abs(approx.n_flagged - exact.n_flagged) <= 0.1 * exact.n_flagged
    auc_a, auc_e = roc_auc_score(pt.mask, approx.suspicion), roc_auc_score(pt.mask, exact.suspicion)
    assert auc_a >= auc_e - 0.003


def test_the_scan_matrix_is_float32_and_frozen():
    from poisonguard.scan._scan import _prepare

    frame = load_dataset("wine").frame
    prep = _prepare(frame, label="label", id_col=None, source_col=None, features=None, detectors="knn_label",
                    settings=None, contamination="auto", top=None, random_state=0, candidates=None)
    assert prep.X.dtype == np.float32 and not prep.X.flags.writeable


# ----------------------------------------------------------------- fit sample (large tables)
def _poisoned_synthetic(n: int, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import make_classification

    from poisonguard.attacks import poison

    # the benchmark's generated table with its classes farther apart (class_sep 1.5 -> 2.5): at
    # 6,000 rows the overlapping one sits at the edge of the label presence test (its noise
    # estimate is at the cap, 0.1), and these tests measure the fit sample, not that edge
    X, y = make_classification(n_samples=n, n_features=32, n_informative=16, n_redundant=4, n_classes=4,
                               n_clusters_per_class=2, class_sep=2.5, flip_y=0.0, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(label=y)
    flipped = poison("flip", frame, label="label", rate=0.05, seed=0)
    out = poison("outlier", flipped.frame, label="label", rate=0.01, seed=1)
    mask = np.zeros(len(out.frame), dtype=bool)
    mask[: len(flipped.frame)] = flipped.mask
    return out.frame, mask | out.mask


def test_sample_selection_from_candidates_equals_selection_from_every_row():
    from poisonguard.scan._scan import sample_allocation, sample_cutoffs, sample_keys, select_sample

    rng = np.random.default_rng(0)
    codes = rng.choice(4, size=50_000, p=[0.6, 0.3, 0.0999, 0.0001])
    counts = np.bincount(codes, minlength=4)
    take = sample_allocation(counts, 2_000)
    assert take.sum() == pytest.approx(2_000, abs=4) and take[3] == min(counts[3], 2)
    keys = sample_keys(np.arange(codes.size), seed=7)
    assert 0.0 <= keys.min() and keys.max() < 1.0 and abs(keys.mean() - 0.5) < 0.01
    whole = select_sample(keys, codes, take)
    # what a partitioned engine does: keep the rows under their class's cut-off, choose among them
    cand = np.flatnonzero(keys < sample_cutoffs(counts, take)[codes])
    assert cand.size < 3_000
    np.testing.assert_array_equal(cand[select_sample(keys[cand], codes[cand], take)], whole)
    np.testing.assert_array_equal(np.bincount(codes[whole], minlength=4), take)
    assert not np.array_equal(whole, select_sample(sample_keys(np.arange(codes.size), seed=8), codes, take))


def test_a_large_table_is_fitted_on_a_sample_with_the_quality_of_a_full_fit():
    frame, mask = _poisoned_synthetic(6_000)
    full = scan(frame, label="label", fit_rows=None)
    sampled = scan(frame, label="label", fit_rows=3_000)
    again = scan(frame, label="label", fit_rows=3_000)
    np.testing.assert_array_equal(sampled.suspicion, again.suspicion)  # the sample is a function of the seed
    auc_full, auc_sampled = roc_auc_score(mask, full.suspicion), roc_auc_score(mask, sampled.suspicion)
    assert auc_sampled >= auc_full - 0.01, (auc_sampled, auc_full)
    # half the rows as the neighbour reference makes the votes noisier on a table this small
    # (measured on the overlapping table: 279 flagged vs 359; here 361 vs 364, precision 0.98 both); at
    # 200k sample rows it is dense
    assert sampled.n_flagged >= 0.7 * full.n_flagged and mask[sampled.flagged].mean() >= 0.85
    # a table of at most fit_rows rows is fitted whole, as before
    small = scan(frame.iloc[:2_000], label="label", detectors="knn_label,iforest")
    whole = scan(frame.iloc[:2_000], label="label", detectors="knn_label,iforest", fit_rows=None)
    np.testing.assert_array_equal(small.suspicion, whole.suspicion)


def test_sampled_scan_explains_rows_on_the_path_they_were_scored_on():
    frame, mask = _poisoned_synthetic(6_000)
    # a fixed channel rate, so the score can be recomputed from the reason's count below
    res = scan(frame, label="label", detectors="knn_label", fit_rows=3_000, settings={"knn_label": {"noise_rate": 0.1}})
    from poisonguard.scan._scan import _fit_sample

    sample = _fit_sample(res.table.y, res.n_rows, 3_000, 0)
    flagged = np.flatnonzero(res.flagged)
    in_sample = np.isin(flagged, sample)
    assert in_sample.any() and (~in_sample).any()
    for r in flagged:
        reason = res.reasons[r]
        # "k of its 20 nearest neighbours are labelled otherwise": the count behind the row's score
        n_dis = int(reason.split("but ")[1].split(" of its")[0])
        q = 1.0 - n_dis / 20
        r_, k = 0.1, len(res.table.classes)
        p = np.clip((q - r_ / (k - 1)) / (1 - r_ - r_ / (k - 1)), 0, 1)
        # the rank tie-break lowers the plain share by at most TIE_BREAK / 20 (knn_label's docstring)
        tol = 0.01 / 20 / (1 - r_ - r_ / (k - 1)) + 1e-9
        assert res.detector_scores["knn_label"][r] == pytest.approx(1 - p, abs=tol), (r, reason)

