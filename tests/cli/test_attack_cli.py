"""``poisonguard attack``: the Makefile demo command, outputs, and one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from poisonguard.attacks import apply_trigger, load_trigger
from poisonguard.cli import main
from poisonguard.datasets import load_dataset


def test_makefile_demo_command(tmp_path, capsys) -> None:
    out, truth = tmp_path / "demo" / "digits_poisoned.csv", tmp_path / "demo" / "digits_truth.csv"
    rc = main(["attack", "--dataset", "digits", "--kind", "flip", "--rate", "0.1", "--seed", "0",
               "--out", str(out), "--truth", str(truth)])
    assert rc == 0
    table, t = pd.read_csv(out), pd.read_csv(truth)
    clean = load_dataset("digits").frame
    assert list(table.columns) == list(clean.columns)  # no mask column leaks into the scanned table
    assert list(t.columns) == ["row", "poisoned"] and t["poisoned"].sum() == 180
    assert ((table["label"] != clean["label"]) == t["poisoned"]).all()
    meta = json.loads((tmp_path / "demo" / "digits_poisoned.attack.json").read_text())
    assert meta["kind"] == "flip" and meta["params"]["n_poisoned"] == 180
    assert "poisoned 180 of 1797 rows" in capsys.readouterr().out
    # deterministic: a second run writes the same table
    out2 = tmp_path / "again.csv"
    assert main(["attack", "--dataset", "digits", "--kind", "flip", "--rate", "0.1", "--seed", "0", "--out", str(out2)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out2), table)
    assert (tmp_path / "again.truth.csv").exists()  # default truth path


def test_file_input_parquet_mask_column(tmp_path) -> None:
    src = tmp_path / "wine.csv"
    load_dataset("wine").frame.rename(columns={"label": "cls"}).to_csv(src, index=False)
    out = tmp_path / "out.parquet"
    rc = main(["attack", str(src), "--label", "cls", "--kind", "outlier", "--rate", "0.05",
               "--out", str(out), "--mask-column", "is_poisoned"])
    assert rc == 0
    table = pd.read_parquet(out)
    assert table["is_poisoned"].sum() == 9 and len(table) == 187


def test_backdoor_with_holdout_and_trigger_file(tmp_path) -> None:
    out, holdout = tmp_path / "bd.csv", tmp_path / "test.csv"
    rc = main(["attack", "--dataset", "digits", "--kind", "backdoor", "--target", "0", "--rate", "0.05",
               "--trigger", "patch", "--position", "top-left", "--patch-size", "3",
               "--holdout", str(holdout), "--out", str(out)])
    assert rc == 0
    trig = load_trigger(tmp_path / "bd.trigger.json")
    assert (trig.row, trig.col, trig.size) == (0, 0, 3)
    ho = pd.read_csv(holdout)
    assert ho["triggered"].any() and (~ho["triggered"]).any()
    restamped = apply_trigger(ho[ho["triggered"]].drop(columns="triggered"), trig)
    pd.testing.assert_frame_equal(restamped, ho[ho["triggered"]].drop(columns="triggered"))
    assert len(pd.read_csv(out)) + (~ho["triggered"]).sum() == 1797


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "mnist", "--kind", "flip"], "unknown dataset 'mnist'"),
        (["--dataset", "wine", "--kind", "flip", "--rate", "1.5"], "rate must be in (0, 1), got 1.5"),
        (["--dataset", "wine", "--kind", "flip", "--rate", "0"], "rate must be in (0, 1)"),
        (["--dataset", "wine", "--kind", "flip", "--label", "cls"], "--label column 'cls' not found"),
        (["--dataset", "wine", "--kind", "targeted", "--source-class", "0", "--target", "7"], "target class '7' is not a class"),
        (["--dataset", "wine", "--kind", "backdoor", "--target", "9"], "target '9' is not a class"),
        (["--dataset", "wine", "--kind", "targeted", "--target", "1"], "needs --source-class"),
        (["--dataset", "wine", "--kind", "poison"], "unknown --kind 'poison'"),
        (["--kind", "flip"], "exactly one"),
        (["--dataset", "wine", "--kind", "flip", "--holdout", "x.csv"], "only apply to --kind backdoor"),
        (["--dataset", "wine", "--kind", "backdoor", "--target", "1", "--trigger", "patch"], "image_shape"),
        (["--dataset", "wine", "--kind", "pair", "--target", "1"], "--kind pair needs --source-class"),
        (["--dataset", "wine", "--kind", "boundary"], "--kind boundary needs --target"),
        (["--dataset", "wine", "--kind", "flip", "--source-class", "1"], "--source-class does not apply to --kind flip"),
        (["--dataset", "wine", "--kind", "outlier", "--placement", "near"], "--placement must be one of"),
        (["--dataset", "wine", "--kind", "outlier", "--placement", "cluster", "--spread", "0"], "--spread must be a positive"),
        (["--dataset", "wine", "--kind", "perturbed", "--n-columns", "0"], "--n-columns must be an integer >= 1, got 0"),
        (["--dataset", "wine", "--kind", "scaled", "--factor", "1"], "--factor must be a finite number other than 1"),
    ],
)
def test_bad_input_gives_one_line_error(tmp_path, capsys, args: list[str], message: str) -> None:
    rc = main(["attack", *args, "--out", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in " ".join(err.split())
    assert err.startswith("poisonguard: error:") and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--kind", "pair", "--source-class", "0", "--target", "1"], {"source_class": 0, "target_class": 1}),
        (["--kind", "boundary", "--target", "2"], {"target_class": 2}),
        (["--kind", "outlier", "--placement", "cluster_in_range", "--spread", "0.1"],
         {"placement": "cluster_in_range", "spread": 0.1}),
        (["--kind", "perturbed", "--n-columns", "2"], {"n_columns": 2}),
        (["--kind", "scaled", "--factor", "5"], {"factor": 5.0}),
        (["--kind", "duplicate_flip"], {}),
    ],
)
def test_every_attack_kind_runs_from_the_cli(tmp_path, args: list[str], expected: dict) -> None:
    """Every kind of :data:`ATTACK_KINDS` is reachable with its own options, recorded in attack.json."""
    out = tmp_path / "p.csv"
    assert main(["attack", "--dataset", "wine", *args, "--rate", "0.05", "--out", str(out)]) == 0
    meta = json.loads((tmp_path / "p.attack.json").read_text())
    truth = pd.read_csv(tmp_path / "p.truth.csv")
    assert meta["kind"] == args[1] and truth["poisoned"].sum() > 0
    assert len(pd.read_csv(out)) == len(truth)
    for key, value in expected.items():
        assert str(meta["params"][key]) == str(value), (key, meta["params"])


def test_missing_file(tmp_path, capsys) -> None:
    rc = main(["attack", str(tmp_path / "nope.csv"), "--kind", "flip", "--out", str(tmp_path / "o.csv")])
    assert rc == 2 and "file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--out", "{src}"], "--out and DATA"),
        (["--out", "{d}/p.csv", "--truth", "{src}"], "--truth and DATA"),
        (["--out", "{d}/p.csv", "--truth", "{d}/p.csv"], "--truth and --out"),
        (["--out", "{d}/w.attack.json.csv", "--truth", "{d}/t.csv"], None),  # distinct files: allowed
    ],
)
def test_outputs_never_replace_the_input(tmp_path, capsys, extra, names) -> None:
    src = tmp_path / "w.csv"
    load_dataset("wine").frame.to_csv(src, index=False)
    before = src.read_bytes()
    args = [a.format(src=src, d=tmp_path) for a in extra]
    rc = main(["attack", str(src), "--kind", "flip", "--rate", "0.1", *args])
    err = capsys.readouterr().err
    if names is None:
        assert rc == 0, err
    else:
        assert rc == 2 and f"{names} are the same file" in " ".join(err.split())
    assert src.read_bytes() == before
