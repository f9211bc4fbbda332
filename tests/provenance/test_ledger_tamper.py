"""Tamper evidence: every edit of data or ledger is detected and named."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from poisonguard.errors import IntegrityError, KeyMissingError
from poisonguard.provenance import (
    add_version, generate_key, get_source, load_key, read_entries, verify_ledger,
)


def _record(store, key, tmp_path, table, name="train.csv", **kw):
    path = tmp_path / name
    table.to_csv(path, index=False) if name.endswith(".csv") else table.to_parquet(path, index=False)
    return add_version(store, path, name="train", source="feed", key=key, **kw), path


def _sql(store, statement, *params):
    con = sqlite3.connect(store.path)
    con.execute(statement, params)
    con.commit()
    con.close()


def test_clean_ledger_verifies(store, key, tmp_path, table):
    v, _ = _record(store, key, tmp_path, table)
    report = verify_ledger(store, key, version=v.version_id)
    assert report.ok, report.lines()
    assert report.n_entries == 3


def test_edited_cell_is_named_by_row(store, key, tmp_path, table):
    v, path = _record(store, key, tmp_path, table)
    edited = table.copy()
    edited.loc[41, "x"] = 123.0
    edited.to_csv(path, index=False)
    report = verify_ledger(store, key, version=v.version_id)
    assert not report.ok
    d = report.data.diff
    assert d.changed_new.tolist() == [41] and d.added.size == 0 and d.removed.size == 0
    assert any(line.startswith("row 41 changed") for line in report.lines())
    with pytest.raises(IntegrityError, match="row 41 changed"):
        report.raise_for_problems()


def test_edited_cell_named_by_id_when_id_column_known(store, key, tmp_path, table):
    v, path = _record(store, key, tmp_path, table, id_col="id")
    edited = table.iloc[::-1].reset_index(drop=True)  # reorder too: positions move
    edited.loc[edited["id"] == 1005, "s"] = "poison"
    edited.to_csv(path, index=False)
    report = verify_ledger(store, key, version=v.version_id)
    assert report.data.diff.changed_ids.tolist() == ["1005"]
    assert "id=1005" in " ".join(report.lines())


def test_added_and_removed_rows(store, key, tmp_path, table):
    v, path = _record(store, key, tmp_path, table)
    extra = pd.DataFrame({"id": [1], "x": [0.5], "k": [1], "s": ["new"]})
    pd.concat([table.drop(index=[7]), extra], ignore_index=True).to_csv(path, index=False)
    report = verify_ledger(store, key, path=path)
    d = report.data.diff
    assert d.removed.tolist() == [7]
    assert d.added.tolist() == [len(table) - 1]
    assert "row 7 removed" in " ".join(report.lines())


def test_reordered_rows_pass_unless_ordered(store, key, tmp_path, table):
    v, path = _record(store, key, tmp_path, table)
    table.iloc[::-1].to_csv(path, index=False)
    rep = verify_ledger(store, key, version=v.version_id)
    assert rep.ok and rep.data.diff.reordered
    v2, path2 = _record(store, key, tmp_path, table, name="ordered.csv", ordered=True)
    table.iloc[::-1].to_csv(path2, index=False)
    assert not verify_ledger(store, key, version=v2.version_id).ok


def test_edited_entry_is_named(store, key, tmp_path, table):
    v, _ = _record(store, key, tmp_path, table)
    body = read_entries(store)[2].body
    forged = str(body).replace("'", '"')  # any different text
    _sql(store, "update ledger_entries set body = ? where seq = 3", forged)
    report = verify_ledger(store, key)
    assert [(p.kind, p.seq) for p in report.problems if p.kind == "edited"][0] == ("edited", 3)


def test_rehashed_entry_fails_signature(store, key, tmp_path, table):
    import hashlib, json

    _record(store, key, tmp_path, table)
    e = read_entries(store)[1]
    body = dict(e.body, payload=dict(e.payload, kind="internal"))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    _sql(store, "update ledger_entries set body = ?, entry_hash = ? where seq = 2", text,
         hashlib.sha256(text.encode()).hexdigest())
    kinds = {(p.kind, p.seq) for p in verify_ledger(store, key).problems}
    assert ("bad-signature", 2) in kinds
    assert ("edited", 3) in kinds  # entry 3 no longer links to entry 2


def test_deleted_entry_is_named(store, key, tmp_path, table):
    _record(store, key, tmp_path, table)
    _record(store, key, tmp_path, table.iloc[:10], name="b.csv")
    _sql(store, "delete from ledger_entries where seq = 3")
    problems = verify_ledger(store, key).problems
    assert any(p.kind == "deleted" and p.seq == 3 for p in problems), problems


def test_deleted_last_entry_is_detected(store, key, tmp_path, table):
    _record(store, key, tmp_path, table)
    _sql(store, "delete from ledger_entries where seq = 3")
    problems = verify_ledger(store, key).problems
    assert any(p.kind == "deleted" and "entries 3-3" in p.message for p in problems), problems


def test_reordered_entries_are_named(store, key, tmp_path, table):
    _record(store, key, tmp_path, table)
    _record(store, key, tmp_path, table.iloc[:10], name="b.csv")
    _sql(store, "update ledger_entries set seq = -1 where seq = 3")
    _sql(store, "update ledger_entries set seq = 3 where seq = 4")
    _sql(store, "update ledger_entries set seq = 4 where seq = -1")
    problems = verify_ledger(store, key).problems
    assert {p.seq for p in problems if p.kind == "reordered"} == {3, 4}


def test_wrong_key_is_named(store, key, tmp_path, table):
    _record(store, key, tmp_path, table)
    other = generate_key(tmp_path / "other.key", alg="hmac")
    problems = verify_ledger(store, other).problems
    assert [p.kind for p in problems] == ["wrong-key"]
    assert key.key_id in problems[0].message and other.key_id in problems[0].message


def test_index_tampering_is_detected(store, key, tmp_path, table):
    v, _ = _record(store, key, tmp_path, table)
    _sql(store, "update row_hashes set hashes = zeroblob(16) where version_id = ?", v.version_id)
    _sql(store, "update sources set flagged = 0, total = 1000 where name = 'feed'")
    msgs = " ".join(p.message for p in verify_ledger(store, key).problems)
    assert "row hashes of train@1 was altered" in msgs and "source feed was altered" in msgs
    assert "total is 1000, signed 0" in msgs


def test_failed_verification_counts_against_the_source(store, key, tmp_path, table):
    v, path = _record(store, key, tmp_path, table)
    before = get_source(store, "feed").score.risk
    table.iloc[1:].to_csv(path, index=False)
    verify_ledger(store, key, version=v.version_id)
    after = get_source(store, "feed")
    assert after.score.failed_verifications == 1 and after.score.risk > before
    assert verify_ledger(store, key).ok  # the evidence is itself a valid signed entry


def test_missing_key_never_writes(store, tmp_path, table):
    n = len(read_entries(store))
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(KeyMissingError, match="signing key not found"):
        add_version(store, tmp_path / "t.csv", name="t", source="feed", key=tmp_path / "nope.key")
    assert len(read_entries(store)) == n


def test_public_key_verifies_but_cannot_sign(store, key, tmp_path, table):
    _record(store, key, tmp_path, table)
    pub = load_key(str(key.path) + ".pub")
    assert pub.key_id == key.key_id and not pub.can_sign
    assert verify_ledger(store, pub).ok
    with pytest.raises(KeyMissingError):
        add_version(store, tmp_path / "train.csv", name="t", source="feed", key=pub)


def test_hmac_ledger_round_trip(tmp_path, table):
    from poisonguard.provenance import add_source, init_ledger
    from poisonguard.store import open_store

    k = generate_key(tmp_path / "h.key", alg="hmac")
    assert (tmp_path / "h.key").stat().st_mode & 0o777 == 0o600
    with open_store(tmp_path / "h.db", create=True) as st:
        init_ledger(st, k)
        add_source(st, "web", kind="public-web", key=k)
        table.to_parquet(tmp_path / "t.parquet")
        add_version(st, tmp_path / "t.parquet", name="t", source="web", key=k)
        assert verify_ledger(st, k, version="t").ok
        _sql(st, "update ledger_entries set signature = ? where seq = 2", "00" * 32)
        assert [(p.kind, p.seq) for p in verify_ledger(st, k).problems] == [("bad-signature", 2)]


@pytest.mark.parametrize("statement, named", [
    ("update sources set kind = 'internal' where name = 'feed'", "source feed was altered in the sources table"),
    ("update sources set owner = 'mallory' where name = 'feed'", "owner is 'mallory', signed None"),
    ("update dataset_versions set file_path = '/tmp/other.csv'", "file_path is '/tmp/other.csv'"),
    ("update dataset_versions set parent = 'train@1'", "version train@1 was altered"),
    ("update dataset_versions set number = 7", "number is 7, signed 1"),
    ("update dataset_versions set recorded_at = '2020-01-01T00:00:00Z'", "recorded_at"),
    ("update row_hashes set ids = NULL", "row hashes of train@1 was altered"),
    ("update scans set flag_rate = 0.0", "flag_rate is 0.0"),
    ("update scans set summary = '{\"n_flagged\": 0}'", "summary is"),
    ("update scans set version_id = 'other@1'", "scan of entry 4 was altered"),
    ("delete from scans", "scan of entry 4 (entry 4) is missing"),
    ("insert into scans (entry_seq, version_id, recorded_at, flag_rate, summary) "
     "values (99, 'train@1', 'x', 0.5, '{}')", "scan of entry 99 in the scans table has no ledger entry"),
])
def test_every_index_column_is_covered_by_the_chain(store, key, tmp_path, table, statement, named):
    """Issue 8, item 6: edits of the source kind (the trust prior), of dataset_versions and of scans passed verify."""
    from poisonguard.provenance import record_scan

    _record(store, key, tmp_path, table, id_col="id")
    record_scan(store, "train@1", {"n_flagged": 3, "n_rows": 60}, key=key)
    assert verify_ledger(store, key).ok
    con = sqlite3.connect(store.path)
    con.execute("PRAGMA foreign_keys = OFF")  # an attacker's session need not honour them
    con.execute(statement)
    con.commit()
    con.close()
    report = verify_ledger(store, key)
    assert not report.ok
    msgs = " | ".join(report.lines())
    assert named in msgs, msgs
    assert all(p.kind == "index" for p in report.problems), msgs
