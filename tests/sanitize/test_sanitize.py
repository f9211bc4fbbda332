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
    with pytest.raises(InputError, match="out and data are the same file"):
        write_outputs(res, src)
    with pytest.raises(InputError, match="quarantine and out are the same file"):
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


# ------------------------------------------------- issue 8, item 7: rows copied, not re-serialised
RAW_CSV = (
    'code,amount,note,label\r\n'
    '00700,1.10,NA,a\r\n'
    '00701,1e3,"two\nlines, with a comma",b\r\n'
    '00702,,plain,a\r\n'
    '00703,2.50,"say ""hi""",b\r\n'
    '00704,3,NA,a\r\n'
    '00705,4.0,x,b\r\n'
)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_kept_and_quarantined_rows_are_the_input_lines_byte_for_byte(tmp_path, suffix):
    from poisonguard._io import compress_for

    src = tmp_path / f"in{suffix}"
    src.write_bytes(compress_for(("\ufeff" + RAW_CSV).encode(), src))
    res = sanitize(src, label="label", review=_review([1, 3], ["remove", "remove"]))
    written = write_outputs(res, tmp_path / "k.csv", quarantine=tmp_path / "q.csv")
    lines = RAW_CSV.replace('"two\nlines', '"two\x00lines').split("\r\n")
    lines = [ln.replace("\x00", "\n") + "\r\n" for ln in lines if ln]
    header, rows = lines[0], lines[1:]
    assert written["kept"].read_bytes() == ("\ufeff" + header + rows[0] + rows[2] + rows[4] + rows[5]).encode()
    assert written["quarantine"].read_bytes() == ("\ufeff" + header + rows[1] + rows[3]).encode()


def test_a_file_without_final_newline_and_blank_rows_keep_their_text(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a,b,label\n1,2,x\n\n3,4,y\n5,6,x\n7,8,y")
    res = sanitize(src, label="label", review=_review([0], ["remove"]))  # the blank line is row 1
    written = write_outputs(res, tmp_path / "k.csv", quarantine=tmp_path / "q.csv")
    assert written["kept"].read_text() == "a,b,label\n\n3,4,y\n5,6,x\n7,8,y\n"
    assert written["quarantine"].read_text() == "a,b,label\n1,2,x\n"


def test_parquet_rows_keep_the_input_schema(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("code", pa.string()), ("amount", pa.decimal128(6, 2)), ("n", pa.int16()), ("label", pa.string())])
    t = pa.table({"code": ["007", "008", "009", "010"], "amount": [None] * 4, "n": [1, 2, 3, 4],
                  "label": ["a", "b", "a", "b"]}, schema=schema)
    src = tmp_path / "in.parquet"
    pq.write_table(t, src)
    res = sanitize(src, label="label", review=_review([2], ["remove"]))
    written = write_outputs(res, tmp_path / "k.parquet", quarantine=tmp_path / "q.parquet")
    kept = pq.read_table(written["kept"])
    assert kept.schema.equals(t.schema) and kept.column("code").to_pylist() == ["007", "008", "010"]
    assert pq.read_table(written["quarantine"]).column("n").to_pylist() == [3]


def test_input_changed_after_sanitize_is_refused(tmp_path):
    from poisonguard.errors import IntegrityError

    src = tmp_path / "in.csv"
    src.write_text(RAW_CSV)
    res = sanitize(src, label="label", review=_review([1], ["remove"]))
    src.write_text(RAW_CSV.replace("00700", "00799"))
    with pytest.raises(IntegrityError, match="changed since it was sanitized"):
        write_outputs(res, tmp_path / "k.csv")


# ------------------------------------------------- issue 8, item 13: reviews of reordered copies
def test_review_made_on_a_reordered_copy_is_applied_to_the_same_rows(table, tmp_path):
    data = table.drop(columns="id")
    copy = data.sample(frac=1.0, random_state=1).reset_index(drop=True)
    bad_in_copy = list(range(0, 26, 2))  # 13 rows, numbered as in the reordered copy
    review = copy.iloc[bad_in_copy].assign(row=bad_in_copy, decision="remove")
    res = sanitize(data, label="label", review=review)
    expected = sorted(data.index[(data.merge(copy.iloc[bad_in_copy], how="left", indicator=True)["_merge"] == "both")])
    assert sorted(res.removed_rows.tolist()) == expected and len(expected) == 13
    assert res.manifest["matched_by"] == "content"


def test_review_of_another_file_is_refused(table):
    data = table.drop(columns="id")
    other = data.assign(a=data["a"] + 1.0)
    review = other.iloc[[3, 4]].assign(row=[3, 4], decision="remove")
    with pytest.raises(InputError, match=r"reviewed row 0 \(its row 3\) matches no row of the data"):
        sanitize(data, label="label", review=review)
    partial = other[["a", "label"]].iloc[[3]].assign(row=[3], decision="remove")  # too few columns to match by cells
    with pytest.raises(InputError, match=r"reviewed row 0 does not match data row 3: column 'a'"):
        sanitize(data, label="label", review=partial)


def test_review_whose_rows_match_by_number_is_applied_by_number(table):
    data = table.drop(columns="id")
    review = data.iloc[[5, 9]].assign(row=[5, 9], decision=["remove", "keep"])
    res = sanitize(data, label="label", review=review)
    assert res.removed_rows.tolist() == [5] and res.manifest["matched_by"] == "row"
