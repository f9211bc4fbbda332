"""CLI: sanitize and evaluate, bad inputs, and a digits patch backdoor removed end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from poisonguard.attacks import backdoor
from poisonguard.cli import main
from poisonguard.datasets import load_dataset


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    d = load_dataset("digits")
    pt = backdoor(d.frame, "label", 0.06, seed=0, target=0, image_shape=d.image_shape, holdout_fraction=0.3)
    tmp = tmp_path_factory.mktemp("bd")
    pt.frame.to_csv(tmp / "train.csv", index=False)
    pt.holdout.to_csv(tmp / "test.csv", index=False)
    return tmp, pt


def test_patch_backdoor_removed_end_to_end(poisoned):
    tmp, pt = poisoned
    rc = main(["sanitize", str(tmp / "train.csv"), "--label", "label", "--out", str(tmp / "kept.csv"),
               "--quarantine", str(tmp / "q.csv"), "--manifest", str(tmp / "m.json")])
    assert rc == 0
    kept, quar = pd.read_csv(tmp / "kept.csv"), pd.read_csv(tmp / "q.csv")
    assert len(kept) + len(quar) == len(pt.frame)
    man = json.loads((tmp / "m.json").read_text())
    removed = np.array([r["row"] for r in man["removed"]])
    assert pt.mask[removed].sum() >= 0.9 * pt.mask.sum()
    assert any(p["poisoned"] for p in man["presence"]["backdoor_trigger"])
    rc = main(["evaluate", str(tmp / "train.csv"), "--label", "label", "--test", str(tmp / "test.csv"),
               "--sanitized", str(tmp / "kept.csv"), "--target", "0", "--json", str(tmp / "ev.json")])
    assert rc == 0
    ev = json.loads((tmp / "ev.json").read_text())
    scores = {s["name"]: s for s in ev["scores"]}
    assert scores["poisoned"]["asr"] >= 0.5  # the backdoor works before...
    assert scores["sanitized"]["asr"] <= 0.10  # ...and not after sanitizing
    assert scores["sanitized"]["clean_accuracy"] >= scores["poisoned"]["clean_accuracy"] - 0.02


def test_review_overrides_via_cli(poisoned, tmp_path):
    tmp, pt = poisoned
    review = pd.DataFrame({"row": [0, 1, 2], "decision": ["remove", "keep", "poison"]})
    review.to_csv(tmp_path / "rev.csv", index=False)
    rc = main(["sanitize", str(tmp / "train.csv"), "--label", "label", "--out", str(tmp_path / "k.csv"),
               "--review", str(tmp_path / "rev.csv")])
    assert rc == 0
    man = json.loads((tmp_path / "k.manifest.json").read_text())
    assert [r["row"] for r in man["removed"]] == [0, 2]
    assert all(r["decided_by"] == "reviewer" for r in man["removed"])
    assert len(pd.read_csv(tmp_path / "k.csv")) == len(pt.frame) - 2


@pytest.mark.parametrize(
    "args",
    [
        ["sanitize", "{d}/missing.csv", "--label", "label", "--out", "{o}/k.csv"],
        ["sanitize", "{d}/train.csv", "--label", "nope", "--out", "{o}/k.csv", "--review", "{o}/rev.csv"],
        ["sanitize", "{d}/train.csv", "--label", "label", "--out", "{o}/k.csv", "--review", "{o}/bad.csv"],
        ["sanitize", "{d}/train.csv", "--label", "label", "--out", "{d}/train.csv", "--review", "{o}/rev.csv"],
        ["evaluate", "{d}/train.csv", "--label", "label", "--test", "{o}/missing.csv"],
        ["evaluate", "{d}/train.csv", "--label", "label", "--test", "{d}/test.csv", "--target", "zz"],
        ["evaluate", "{d}/train.csv", "--label", "label", "--test", "{d}/test.csv", "--model", "svm"],
    ],
)
def test_bad_inputs_exit_2(poisoned, tmp_path, args):
    tmp, _ = poisoned
    pd.DataFrame({"row": [0], "decision": ["remove"]}).to_csv(tmp_path / "rev.csv", index=False)
    pd.DataFrame({"row": [0], "decision": ["perhaps"]}).to_csv(tmp_path / "bad.csv", index=False)
    before = (tmp / "train.csv").read_bytes()
    assert main([a.format(d=tmp, o=tmp_path) for a in args]) == 2
    assert (tmp / "train.csv").read_bytes() == before
    assert not (tmp_path / "k.csv").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "{o}/k.csv", "--quarantine", "{d}"], "--quarantine and DATA are the same file"),
        (["--out", "{o}/rev.csv"], "--out and --review are the same file"),
        (["--out", "{o}/k.csv", "--manifest", "{o}/k.csv"], "--manifest and --out are the same file"),
    ],
)
def test_outputs_never_replace_inputs_before_any_work(tmp_path, capsys, extra, message):
    src = tmp_path / "in.csv"
    src.write_text("code,x,label\n00700,1.10,a\n00701,NA,b\n00702,1e3,a\n")
    (tmp_path / "rev.csv").write_text("row,decision\n1,remove\n")
    before = src.read_bytes(), (tmp_path / "rev.csv").read_bytes()
    args = [a.format(d=src, o=tmp_path) for a in extra]
    rc = main(["sanitize", str(src), "--label", "label", "--review", str(tmp_path / "rev.csv"), *args])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and message in err and "Traceback" not in err
    assert (src.read_bytes(), (tmp_path / "rev.csv").read_bytes()) == before


def test_sanitized_rows_keep_their_text(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("code,x,label\n00700,1.10,a\n00701,NA,b\n00702,1e3,a\n")
    (tmp_path / "rev.csv").write_text("row,decision\n1,remove\n")
    rc = main(["sanitize", str(src), "--label", "label", "--review", str(tmp_path / "rev.csv"),
               "--out", str(tmp_path / "k.csv"), "--quarantine", str(tmp_path / "q.csv")])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "k.csv").read_text() == "code,x,label\n00700,1.10,a\n00702,1e3,a\n"
    assert (tmp_path / "q.csv").read_text() == "code,x,label\n00701,NA,b\n"
