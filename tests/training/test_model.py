"""Training, the safe model format and tamper detection."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from poisonguard.errors import DataError, InputError, IntegrityError, NotFoundError
from poisonguard.training import TrainSettings, load_model, save_model, train_model
from poisonguard.training._io import MANIFEST, sha256_file, write_manifest


def _rehash(d: Path) -> None:
    """Rewrite the manifest after an edit, as an attacker who can write the folder would."""
    files = json.loads((d / MANIFEST).read_text())["files"]
    write_manifest(d, list(files))


def test_logreg_trains_saves_and_round_trips(tmp_path, digits_small):
    path = tmp_path / "digits.csv"
    digits_small.to_csv(path, index=False)
    m = train_model(path, label="label", settings=TrainSettings(model="logreg"))
    assert m.kind == "sklearn-linear"
    meta = m.metadata
    assert meta["metrics"]["accuracy"] > 0.9 and meta["metrics"]["macro_f1"] > 0.9
    assert meta["n_train"] + meta["n_val"] == len(digits_small)
    assert meta["data"]["sha256"] == sha256_file(path)
    assert meta["settings"]["model"] == "logreg"
    save_model(m, tmp_path / "m")
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert names == {"manifest.json", "metadata.json", "schema.json", "linear.npz"}
    m2 = load_model(tmp_path / "m")
    np.testing.assert_array_equal(m2.predict(digits_small), m.predict(digits_small))
    schema = json.loads((tmp_path / "m" / "schema.json").read_text())
    assert schema["features"] == [f"px{i}" for i in range(64)]


def test_validation_split_is_stratified(digits_small):
    m = train_model(digits_small, label="label", settings=TrainSettings(val_fraction=0.3))
    assert m.metadata["n_val"] == pytest.approx(0.3 * len(digits_small), abs=1)


def test_mixed_table_with_strings_and_gaps(tmp_path, mixed):
    m = train_model(mixed, label="label", settings=TrainSettings(model="logreg"))
    assert m.metadata["metrics"]["accuracy"] > 0.6
    save_model(m, tmp_path / "m")
    m2 = load_model(tmp_path / "m")
    pred = m2.predict(mixed.drop(columns=["label"]))
    assert set(pred) <= {"a", "b", "c"}
    np.testing.assert_array_equal(pred, m.predict(mixed))


@pytest.mark.parametrize("model,kind,files", [
    ("mlp", "torch", {"weights.pt"}),
    ("gbdt", "skops", {"model.skops"}),
    ("tree", "skops", {"model.skops"}),
])
def test_other_models_round_trip(tmp_path, cancer, model, kind, files):
    if model == "mlp":
        pytest.importorskip("torch")
    s = TrainSettings(model=model, epochs=5, gbdt_iter=10, hidden=(16,))
    m = train_model(cancer, label="label", settings=s)
    assert m.kind == kind
    assert m.metadata["metrics"]["accuracy"] > 0.85
    save_model(m, tmp_path / "m")
    assert files <= {p.name for p in (tmp_path / "m").iterdir()}
    m2 = load_model(tmp_path / "m")
    np.testing.assert_array_equal(m2.predict(cancer), m.predict(cancer))
    assert set(m2.predict(cancer)) <= {"benign", "malignant"}


@pytest.fixture()
def saved(tmp_path, blobs) -> Path:
    m = train_model(blobs, label="label", settings=TrainSettings(model="logreg"))
    save_model(m, tmp_path / "m")
    return tmp_path / "m"


@pytest.mark.parametrize("name", ["linear.npz", "metadata.json", "schema.json"])
def test_tampered_file_is_refused(saved, name):
    p = saved / name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="modified after saving"):
        load_model(saved)
    assert IntegrityError.exit_code == 4


def test_missing_file_and_bad_manifest_are_refused(saved, tmp_path):
    (saved / "linear.npz").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        load_model(saved)
    with pytest.raises(NotFoundError):
        load_model(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / MANIFEST).write_text(json.dumps({"format": "poisonguard-model", "format_version": 1,
                                            "files": {"../etc/passwd": "0" * 64}}))
    with pytest.raises(IntegrityError, match="unsafe file name"):
        load_model(bad)


def test_pinned_manifest_digest(saved):
    digest = sha256_file(saved / MANIFEST)
    load_model(saved, expected_manifest_sha256=digest)
    with pytest.raises(IntegrityError, match="expected"):
        load_model(saved, expected_manifest_sha256="0" * 64)


def test_pickled_arrays_are_refused_even_with_a_valid_manifest(saved):
    buf = io.BytesIO()
    np.savez(buf, W=np.array([{"evil": 1}], dtype=object), b=np.zeros(3))
    (saved / "linear.npz").write_bytes(buf.getvalue())
    _rehash(saved)
    with pytest.raises(IntegrityError, match="refusing"):
        load_model(saved)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_torch_pickle_payload_is_refused(tmp_path, blobs):
    import pickle

    pytest.importorskip("torch")

    m = train_model(blobs, label="label", settings=TrainSettings(model="mlp", epochs=1, hidden=(8,)))
    save_model(m, tmp_path / "m")

    class Boom:
        def __reduce__(self):
            return (print, ("code ran while loading",))

    (tmp_path / "m" / "weights.pt").write_bytes(pickle.dumps({"x": Boom()}))
    _rehash(tmp_path / "m")
    with pytest.raises(IntegrityError, match="refusing to load torch weights") as exc:
        load_model(tmp_path / "m")
    # one line of our own words: never torch's advice to retry with weights_only=False
    msg = str(exc.value)
    assert "\n" not in msg and "weights_only" not in msg, msg


def test_skops_untrusted_type_is_refused(tmp_path, cancer):
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    m = train_model(cancer, label="label", settings=TrainSettings(model="tree", tree_depth=3))
    save_model(m, tmp_path / "m")
    sio.dump(make_pipeline(FunctionTransformer(print)), tmp_path / "m" / "model.skops")
    _rehash(tmp_path / "m")
    with pytest.raises(IntegrityError, match="untrusted types"):
        load_model(tmp_path / "m")


def test_predict_needs_the_feature_columns(saved, blobs):
    m = load_model(saved)
    with pytest.raises(InputError, match="lacks 1 feature column"):
        m.predict(blobs.drop(columns=["x3"]))


def test_bad_training_inputs(blobs, tmp_path):
    with pytest.raises(InputError, match="not found"):
        train_model(blobs, label="nope")
    with pytest.raises(DataError, match="single class"):
        train_model(blobs.assign(label=1), label="label")
    with pytest.raises(InputError, match="^invalid training settings: model must be one of"):
        train_model(blobs, label="label", settings=TrainSettings(model="svm"))
    m = train_model(blobs, label="label")
    save_model(m, tmp_path / "out")
    with pytest.raises(InputError, match="not empty"):
        save_model(m, tmp_path / "out")


def test_ledger_version_is_recorded_when_a_store_exists(tmp_path, monkeypatch, blobs):
    prov = pytest.importorskip("poisonguard.provenance")
    from poisonguard.provenance import SOURCE_KINDS
    from poisonguard.store import open_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POISONGUARD_DB", raising=False)
    data = tmp_path / "train.csv"
    blobs.to_csv(data, index=False)
    assert train_model(data, label="label").metadata["data"]["ledger_version"] is None  # no store yet
    store = open_store(create=True)
    key = prov.generate_key(tmp_path / ".poisonguard" / "ledger.key")
    prov.init_ledger(store, key)
    prov.add_source(store, "src", kind=sorted(SOURCE_KINDS)[0], key=key)
    v = prov.add_version(store, data, name="train", source="src", key=key)
    store.engine.dispose() if hasattr(store, "engine") else None
    m = train_model(data, label="label")
    assert m.metadata["data"]["ledger_version"] == v.version_id


@pytest.mark.parametrize("settings", [TrainSettings(model="logreg"),
                                      TrainSettings(model="logreg", certified=__import__(
                                          "poisonguard.training", fromlist=["x"]).CertifiedSettings(4))])
def test_predict_refuses_text_and_inf_in_numeric_columns(blobs, settings):
    """Issue 8, item 9: the library's predict checks the cells too (plain and certified models)."""
    m = train_model(blobs, label="label", settings=settings)
    rows = blobs.drop(columns=["label"]).iloc[:10].astype({"x5": object})
    rows.loc[6, "x5"] = np.inf
    with pytest.raises(DataError, match="column 'x5' has an infinite value at row 6"):
        m.predict(rows)
    rows.loc[6, "x5"] = "12,5"
    with pytest.raises(DataError, match="column 'x5' was numeric in training but row 6 holds '12,5'"):
        m.predict(rows)
    rows.loc[6, "x5"] = " 1.5 "  # surrounding spaces and empty cells are fine
    rows.loc[7, "x5"] = ""
    assert m.predict(rows).shape == (10,)
