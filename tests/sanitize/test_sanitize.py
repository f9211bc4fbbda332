"""sanitize: invariants, manifest, reviewer override, atomic writes; evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poisonguard.errors import InputError
from poisonguard.sanitize import evaluate, sanitize, write_outputs
from poisonguard import _io


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    df = pd.DataFrame(X, columns=list("abcd"))
    df["label"] = y
    df["id"] = [f"r{i}" for i in range(300)]
    return df


def _review(rows, decisions, **extra):
    d = {"row": rows, "decision": decisions}
    d.update(extra)
    return pd.DataFrame(d)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_kept_plus_quarantined_equals_input(table, data):
    n = len(table)
    rows = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=40))
    decs = data.draw(st.lists(st.sampled_from(["remove", "KEEP", "poison", "clean", "", None]),
                              min_size=len(rows), max_size=len(rows)))
    res = sanitize(table, label="label", id_col="id", review=_review(rows, decs))
    assert len(res.kept) + len(res.quarantined) == n
    both = pd.concat([res.kept, res.quarantined]).sort_values("id", key=lambda s: s.str[1:].astype(int))
    pd.testing.assert_frame_equal(both.reset_index(drop=True), table.reset_index(drop=True))
    keep = {r for r, d in zip(rows, decs) if d in ("KEEP", "clean")}
    assert set(res.quarantined["id"]) == {f"r{r}" for r in rows if r not in keep}
    c = res.manifest["counts"]
    assert c["kept"] + c["quarantined"] == c["input"] == n


def test_reviewer_overrides_detector(table):
    review = _review([3, 5, 7], ["keep", "remove", ""], suspicion=[0.9, 0.2, 0.7], detectors=["a", "b", "c"],
                     reason=["x", "y", "z"], note=["fine", "", ""])
    res = sanitize(table, label="label", id_col="id", review=review)
    assert sorted(res.removed_rows.tolist()) == [5, 7]
    by = {r.row: r for r in res.removed}
    assert by[5].decided_by == "reviewer" and by[7].decided_by == "detector"
    assert by[5].id == "r5" and by[7].suspicion == pytest.approx(0.7) and by[7].reason == "z"
    assert res.kept_by_reviewer == [3]
    assert res.manifest["counts"]["removed_by_reviewer"] == 1
    assert res.manifest["counts"]["kept_by_reviewer"] == 1


def test_review_by_id_and_bad_reviews(table):
    res = sanitize(table, label="label", id_col="id", review=pd.DataFrame({"id": ["r9"], "decision": ["drop"]}))
    assert res.removed_rows.tolist() == [9]
    with pytest.raises(InputError, match="unknown decision"):
        sanitize(table, label="label", review=_review([1], ["maybe"]))
    with pytest.raises(InputError, match="decision"):
        sanitize(table, label="label", review=pd.DataFrame({"row": [1]}))
    with pytest.raises(InputError, match="out of range"):
        sanitize(table, label="label", review=_review([999], ["remove"]))
    with pytest.raises(InputError, match="twice"):
        sanitize(table, label="label", review=_review([1, 1], ["remove", "keep"]))
    with pytest.raises(InputError, match="id"):
        sanitize(table, label="label", id_col="id", review=_review([1], ["remove"], id=["r2"]))


def test_from_scan_writes_outputs_and_manifest(table, tmp_path):
    src = tmp_path / "in.csv"
    table.to_csv(src, index=False)
    res = sanitize(src, label="label", id_col="id")
    out = write_outputs(res, tmp_path / "k.csv", quarantine=tmp_path / "q.csv", manifest=tmp_path / "m.json")
    kept, quar = pd.read_csv(out["kept"]), pd.read_csv(out["quarantine"])
    assert len(kept) + len(quar) == len(table)
    man = json.loads(Path(out["manifest"]).read_text())
    assert man["input"]["digest"] == _io.file_digest(src)
    assert man["mode"] == "scan" and man["counts"]["quarantined"] == len(quar)
    assert [r["row"] for r in man["removed"]] == sorted(r["row"] for r in man["removed"])
    for r in man["removed"]:
        assert r["decided_by"] == "detector" and r["id"] == f"r{r['row']}" and r["suspicion"] >= 0.5
    assert man["outputs"]["kept"]["digest"] == _io.file_digest(out["kept"])
    with pytest.raises(InputError, match="overwrite the input"):
        write_outputs(res, src)
    with pytest.raises(InputError, match="different files"):
        write_outputs(res, tmp_path / "k.csv", quarantine=tmp_path / "k.csv")


def test_atomic_write_leaves_old_file_on_crash(table, tmp_path, monkeypatch):
    target = tmp_path / "k.csv"
    target.write_text("old content\n")
    res = sanitize(table, label="label", review=_review([1], ["remove"]))

    def boom(src, dst):
        raise OSError("disk died")

    monkeypatch.setattr(_io.os, "replace", boom)
    with pytest.raises(InputError, match="cannot write .*k.csv: disk died"):
        write_outputs(res, target)
    assert target.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["k.csv"]  # no temp file left behind
    monkeypatch.undo()
    write_outputs(res, target)
    assert len(pd.read_csv(target)) == len(table) - 1


def test_evaluate_measures_asr(table):
    train = table.drop(columns="id")
    test = train.sample(100, random_state=0).reset_index(drop=True)
    test["triggered"] = False
    trig = test[test["label"] == 1].copy()
    trig["triggered"] = True
    res = evaluate(train, label="label", test=pd.concat([test, trig]), target=0, sanitized=train, clean=train)
    assert [s.name for s in res.scores] == ["poisoned", "sanitized", "clean"]
    assert res.score("poisoned").clean_accuracy > 0.8
    assert res.score("poisoned").asr < 0.2  # no backdoor: triggered rows keep their class
    assert res.n_triggered_test == len(trig) and not res.target_inferred
    with pytest.raises(InputError):
        evaluate(train, label="nope", test=test)
