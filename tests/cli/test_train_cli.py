"""CLI: train, predict, certify, privacy-sweep, and their bad inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from poisonguard.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=2, random_state=0)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    df["y"] = np.where(y == 1, "yes", "no")
    p = tmp_path_factory.mktemp("d") / "train.csv"
    df.to_csv(p, index=False)
    return p


def test_train_predict_and_tamper(tmp_path, data, capsys):
    out = tmp_path / "m"
    assert main(["train", str(data), "--label", "y", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "validation" in text and "accuracy" in text and "manifest sha256" in text
    preds = tmp_path / "p.csv"
    assert main(["predict", str(out), str(data), "--out", str(preds)]) == 0
    p = pd.read_csv(preds)
    assert len(p) == 300 and set(p["prediction"]) <= {"yes", "no"}
    # tamper with the weights: refused with exit code 4
    w = out / "linear.npz"
    b = bytearray(w.read_bytes())
    b[-10] ^= 0xFF
    w.write_bytes(bytes(b))
    assert main(["predict", str(out), str(data)]) == 4
    assert "modified after saving" in " ".join(capsys.readouterr().err.split())


def test_train_dp_reports_spent_epsilon(tmp_path, data, capsys):
    pytest.importorskip("opacus")  # DP-SGD needs torch and opacus (extras torch, dp)
    out = tmp_path / "m"
    code = main(["train", str(data), "--label", "y", "--out", str(out), "--dp", "--epsilon", "2",
                 "--delta", "1e-4", "--epochs", "2", "--batch-size", "32"])
    assert code == 0
    text = capsys.readouterr().out
    assert "epsilon spent" in text and "(target 2)" in text


def test_certified_train_and_certify(tmp_path, data, capsys):
    out = tmp_path / "m"
    assert main(["train", str(data), "--label", "y", "--out", str(out), "--certified", "--partitions", "5"]) == 0
    assert "DPA: K=5" in capsys.readouterr().out
    cdir = tmp_path / "c"
    assert main(["certify", str(out), str(data), "--out", str(cdir)]) == 0
    text = capsys.readouterr().out
    assert "certified accuracy" in text
    rows = pd.read_csv(cdir / "certificates.csv")
    assert {"prediction", "radius", "correct"} <= set(rows.columns)
    assert (cdir / "certified_accuracy.png").stat().st_size > 1000
    assert main(["predict", str(out), str(data)]) == 0
    assert "prediction,radius" in capsys.readouterr().out


def test_bagging_certificate_cli(tmp_path, data, capsys):
    out = tmp_path / "m"
    code = main(["train", str(data), "--label", "y", "--out", str(out), "--certified", "--method", "bagging",
                 "--partitions", "30", "--bag-size", "40"])
    assert code == 0
    assert "bagging (bags of 40" in capsys.readouterr().out
    assert main(["certify", str(out), str(data), "--out", str(tmp_path / "c")]) == 0
    assert "bagging: radius" in capsys.readouterr().out
    rows = pd.read_csv(tmp_path / "c" / "certificates.csv")
    assert rows["radius"].min() >= -1


def test_privacy_sweep_with_flip_attack(tmp_path, data, capsys):
    pytest.importorskip("opacus")  # DP-SGD needs torch and opacus (extras torch, dp)
    out = tmp_path / "s"
    code = main(["privacy-sweep", str(data), "--label", "y", "--epsilons", "4,none", "--epochs", "2",
                 "--batch-size", "32", "--delta", "1e-4", "--model", "logreg", "--attack", "flip",
                 "--rate", "0.2", "--out", str(out)])
    assert code == 0
    t = pd.read_csv(out / "privacy_sweep.csv")
    assert list(t.columns) == ["epsilon", "epsilon_spent", "noise_multiplier", "accuracy",
                               "poisoned_accuracy", "accuracy_lost"]
    assert len(t) == 2 and t["epsilon_spent"].iloc[0] <= 4
    assert (out / "privacy_sweep.png").exists()
    assert "no DP" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--label", "nope"], "not found"),
        (["--label", "y", "--epsilon", "1"], "need --dp"),
        (["--label", "y", "--dp", "--epsilon", "1", "--delta", "0.1"], "not below 1/n"),
        (["--label", "y", "--dp", "--epsilon", "1", "--noise-multiplier", "1"], "not both"),
        (["--label", "y", "--dp", "--epsilon", "0"], "--epsilon must be a positive"),
        (["--label", "y", "--dp", "--epsilon", "1", "--batch-size", "5000"], "larger than the"),
        (["--label", "y", "--dp", "--epsilon", "1", "--accountant", "gdp"], "--accountant"),
        (["--label", "y", "--dp", "--epsilon", "1", "--model", "gbdt"], "--dp trains torch"),
        (["--label", "y", "--model", "svm"], "--model must be one of"),
        (["--label", "y", "--partitions", "5"], "need --certified"),
        (["--label", "y", "--certified", "--partitions", "1"], "--partitions must be at least 2"),
        (["--label", "y", "--certified", "--model", "mlp"], "base models"),
        (["--label", "y", "--hidden", "a,b"], "--hidden"),
        (["--label", "y", "--method", "bagging"], "need --certified"),
        (["--label", "y", "--certified", "--method", "vote"], "--method must be dpa or bagging"),
    ],
)
def test_train_bad_inputs(tmp_path, data, capsys, extra, match):
    assert main(["train", str(data), "--out", str(tmp_path / "m"), *extra]) == 2
    assert match in " ".join(capsys.readouterr().err.split())  # rich wraps long lines


def test_other_bad_inputs(tmp_path, data, capsys):
    assert main(["predict", str(tmp_path / "none"), str(data)]) == 2
    assert main(["train", str(tmp_path / "missing.csv"), "--label", "y", "--out", str(tmp_path / "m")]) == 2
    out = tmp_path / "m"
    assert main(["train", str(data), "--label", "y", "--out", str(out)]) == 0
    assert main(["train", str(data), "--label", "y", "--out", str(out)]) == 2  # not empty
    assert main(["certify", str(out), str(data)]) == 2  # not a DPA model
    assert main(["privacy-sweep", str(data), "--label", "y", "--epsilons", "1,-2"]) == 2
    assert main(["privacy-sweep", str(data), "--label", "y", "--attack", "nuke"]) == 2
    assert main(["privacy-sweep", str(data), "--label", "y", "--model", "gbdt"]) == 2
    assert main(["privacy-sweep", str(data), "--label", "y", "--attack", "backdoor", "--image-shape", "8by8"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "not empty" in err and "--certified" in err and "positive" in err


def test_train_dp_recipe_with_explicit_overrides(tmp_path, data, capsys):
    pytest.importorskip("opacus")  # DP-SGD needs torch and opacus (extras torch, dp)
    from poisonguard.training import load_model

    out = tmp_path / "m"
    code = main(["train", str(data), "--label", "y", "--out", str(out), "--model", "mlp", "--dp", "--dp-recipe",
                 "--epsilon", "3", "--epochs", "3", "--batch-size", "64"])
    assert code == 0
    assert "clip 0.1" in capsys.readouterr().out
    s = load_model(out).metadata["settings"]
    assert (s["activation"], s["input_clip"], s["epochs"], s["batch_size"]) == ("tanh", 2.0, 3, 64)
    assert s["dp"]["epsilon"] == 3.0 and s["dp"]["max_grad_norm"] == 0.1


@pytest.mark.parametrize("args, message", [
    (["--dp-recipe"], "need --dp"),
    (["--max-grad-norm", "0.5"], "need --dp"),
    (["--dp", "--dp-recipe"], "needs a privacy target"),
    (["--no-dp-recipe"], "need --dp"),
    (["--model", "logreg", "--activation", "tanh"], "activation"),
])
def test_train_bad_dp_options(tmp_path, data, capsys, args, message):
    assert main(["train", str(data), "--label", "y", "--out", str(tmp_path / "m"), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("cell, what", [("inf", "infinite value at row 3"), ("-inf", "infinite value at row 3"),
                                        ("abc", "row 3 holds 'abc'")])
def test_predict_checks_numeric_cells_like_train(tmp_path, data, capsys, cell, what):
    """Issue 8, item 9: predict refused nothing; now inf, -inf and text in a numeric column exit 2."""
    out = tmp_path / "m"
    assert main(["train", str(data), "--label", "y", "--out", str(out)]) == 0
    df = pd.read_csv(data).astype({"x2": object})
    df.loc[3, "x2"] = cell
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    capsys.readouterr()
    assert main(["predict", str(out), str(bad)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "'x2'" in err and what in err and "Traceback" not in err


def test_failed_train_leaves_nothing_and_a_retry_needs_no_overwrite(tmp_path, data, capsys, monkeypatch):
    """Issue 8, item 12: a save that fails half-way left schema.json behind, so a retry needed --overwrite."""
    import errno

    from poisonguard.training import _io as model_io

    real = model_io.save_arrays

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "m"
    monkeypatch.setattr(model_io, "save_arrays", disk_full)  # schema.json is written before the weights
    assert main(["train", str(data), "--label", "y", "--out", str(out)]) != 0
    assert not out.exists() and list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
    monkeypatch.setattr(model_io, "save_arrays", real)
    assert main(["train", str(data), "--label", "y", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"manifest.json", "metadata.json", "schema.json", "linear.npz"}
    # a failed --overwrite keeps the old model intact
    before = (out / "manifest.json").read_bytes()
    monkeypatch.setattr(model_io, "save_arrays", disk_full)
    assert main(["train", str(data), "--label", "y", "--out", str(out), "--overwrite", "--seed", "3"]) != 0
    assert (out / "manifest.json").read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    monkeypatch.setattr(model_io, "save_arrays", real)
    assert main(["train", str(data), "--label", "y", "--out", str(out), "--overwrite", "--seed", "3"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_out_is_checked_before_training(tmp_path, data, capsys, monkeypatch):
    """A non-empty --out is refused before the (possibly long) training, not after it."""
    import poisonguard.training as training

    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")

    def never(*args, **kwargs):
        raise AssertionError("trained although --out was refused")

    monkeypatch.setattr(training, "train_model", never)
    assert main(["train", str(data), "--label", "y", "--out", str(out)]) == 2
    assert "not empty" in " ".join(capsys.readouterr().err.split())


def test_huge_epsilon_is_refused_quickly(tmp_path, data):
    """Issue 8, item 4: --epsilon 1e300 hung at 100% CPU in the noise search.

    Run as a subprocess so that a hang fails the test (timeout) instead of stalling the suite.
    """
    import subprocess
    import sys

    pytest.importorskip("opacus")
    cmd = [sys.executable, "-m", "poisonguard", "train", str(data), "--label", "y", "--out", str(tmp_path / "m"),
           "--model", "mlp", "--dp", "--epsilon", "1e300", "--epochs", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    err = " ".join(res.stderr.split())
    assert res.returncode == 2, err
    assert "no meaningful privacy" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("epsilon", ["1e9", "101"])
def test_epsilon_without_meaningful_privacy_is_refused(tmp_path, data, capsys, epsilon):
    """Issue 8, item 4: --epsilon 1e9 was accepted silently; above 100 is now refused with exit 2."""
    pytest.importorskip("opacus")
    assert main(["train", str(data), "--label", "y", "--out", str(tmp_path / "m"), "--model", "mlp", "--dp",
                 "--epsilon", epsilon, "--epochs", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--epsilon {float(epsilon):g} is above 100" in err and "no meaningful privacy" in err
    assert not (tmp_path / "m").exists()


def test_weak_epsilon_trains_with_a_warning(tmp_path, data, capsys):
    """Between EPSILON_WARN and EPSILON_MAX the model is trained, with a warning on stderr and in the metadata."""
    pytest.importorskip("opacus")
    from poisonguard.training import load_model

    out = tmp_path / "m"
    assert main(["train", str(data), "--label", "y", "--out", str(out), "--dp", "--epsilon", "50",
                 "--epochs", "1", "--batch-size", "64"]) == 0
    assert "privacy guarantee is weak" in " ".join(capsys.readouterr().err.split())
    meta = load_model(out).metadata
    assert any("target epsilon 50 is above 10" in w for w in meta["warnings"])
    assert meta["privacy"]["epsilon_spent"] <= 50


def test_dp_gets_the_recipe_by_default(tmp_path, data, capsys):
    """Issue 8, item 14: `--dp` alone trained with the plain defaults (4.8 points behind on digits at epsilon 3).

    With --dp and no recipe flag the settings are dp_recipe's (the batch shrunk to a third
    of the 240 training rows); an explicit option overrides one setting and leaves the rest.
    """
    pytest.importorskip("opacus")
    from poisonguard.training import dp_recipe, load_model

    out = tmp_path / "m"
    assert main(["train", str(data), "--label", "y", "--out", str(out), "--model", "mlp", "--dp", "--epsilon", "3",
                 "--epochs", "2"]) == 0
    got = load_model(out).metadata["settings"]
    want = dp_recipe(3.0, model="mlp", epochs=2)
    assert got["dp"] == dataclasses.asdict(want.dp)
    assert {k: got[k] for k in ("activation", "input_clip", "lr", "hidden", "shrink_batch")} == {
        "activation": want.activation, "input_clip": want.input_clip, "lr": want.lr, "hidden": list(want.hidden),
        "shrink_batch": True}
    assert got["batch_size"] == 80 and got["dp"]["max_grad_norm"] == 0.1  # 240 training rows // 3
    out2 = tmp_path / "m2"
    assert main(["train", str(data), "--label", "y", "--out", str(out2), "--model", "mlp", "--dp", "--epsilon", "3",
                 "--epochs", "2", "--activation", "relu", "--max-grad-norm", "1", "--batch-size", "32"]) == 0
    got2 = load_model(out2).metadata["settings"]
    assert (got2["activation"], got2["dp"]["max_grad_norm"], got2["batch_size"]) == ("relu", 1.0, 32)
    assert got2["input_clip"] == 2.0 and not got2["shrink_batch"]  # the rest of the recipe stays
    out3 = tmp_path / "m3"
    assert main(["train", str(data), "--label", "y", "--out", str(out3), "--model", "mlp", "--dp", "--epsilon", "3",
                 "--epochs", "2", "--batch-size", "32", "--no-dp-recipe"]) == 0
    got3 = load_model(out3).metadata["settings"]
    assert (got3["activation"], got3["input_clip"], got3["dp"]["max_grad_norm"]) == ("relu", None, 1.0)


@pytest.mark.parametrize("command", ["train", "privacy-sweep"])
def test_out_over_the_training_table_is_refused_before_any_work(tmp_path, capsys, command):
    """`train x.csv --out x.csv` (and privacy-sweep): the one output guard names both, before any work."""
    data = tmp_path / "x.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 5, "label": [0, 1] * 10}).to_csv(data, index=False)
    before = data.read_bytes()
    assert main([command, str(data), "--label", "label", "--out", str(data)]) == 2
    assert data.read_bytes() == before
    err = capsys.readouterr().err
    assert "--out" in err and "DATA" in err


def test_certify_out_inside_the_model_directory_is_refused(tmp_path, capsys):
    data = tmp_path / "x.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 5, "label": [0, 1] * 10}).to_csv(data, index=False)
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    assert main(["certify", str(model_dir), str(data), "--out", str(model_dir / "cert")]) == 2
    assert not (model_dir / "cert").exists()
    assert "MODEL_DIR" in capsys.readouterr().err
