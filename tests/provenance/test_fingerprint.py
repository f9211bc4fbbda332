"""Canonical row hashes and content digests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonguard.provenance import fingerprint_frame
from poisonguard.validation import load_table


def test_csv_and_parquet_of_same_table_match(tmp_path, table):
    table = table.assign(f=np.where(np.arange(len(table)) % 7 == 0, np.nan, table["x"]),
                         f32=table["x"].astype("float32"), b=table["k"] > 2)
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet", index=False)
    a = fingerprint_frame(load_table(tmp_path / "t.csv"))
    b = fingerprint_frame(load_table(tmp_path / "t.parquet"))
    assert a.digest == b.digest
    assert np.array_equal(a.row_hashes, b.row_hashes)


def test_numeric_null_and_unicode_normalization():
    a = pd.DataFrame({"n": [1, 2, 3], "s": ["caf\u00e9", "", "x"], "z": [None, 1.5, -0.0]})
    b = pd.DataFrame({"n": [1.0, 2.0, 3.0], "s": ["cafe\u0301", None, "x"], "z": [np.nan, 1.5, 0]})
    assert fingerprint_frame(a).digest == fingerprint_frame(b).digest


def test_column_order_does_not_matter_but_names_do():
    a = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert fingerprint_frame(a).digest == fingerprint_frame(a[["b", "a"]]).digest
    assert fingerprint_frame(a).digest != fingerprint_frame(a.rename(columns={"a": "c"})).digest


def test_types_are_distinguished():
    num = pd.DataFrame({"a": [1, 2]})
    txt = pd.DataFrame({"a": ["1", "2"]})
    assert not np.array_equal(fingerprint_frame(num).row_hashes, fingerprint_frame(txt).row_hashes)


def test_separator_cannot_be_forged():
    a = pd.DataFrame({"a": ["x\x1fy"], "b": ["z"]})
    b = pd.DataFrame({"a": ["x"], "b": ["y\x1fz"]})
    c = pd.DataFrame({"a": ["x\\"], "b": ["\x1fz"]})
    digests = {fingerprint_frame(d).digest for d in (a, b, c)}
    assert len(digests) == 3


def test_order_independent_by_default_and_ordered_on_request(table):
    shuffled = table.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert fingerprint_frame(table).digest == fingerprint_frame(shuffled).digest
    assert fingerprint_frame(table, ordered=True).digest != fingerprint_frame(shuffled, ordered=True).digest
    assert fingerprint_frame(table).ordered_digest != fingerprint_frame(shuffled).ordered_digest


def test_single_cell_change_changes_exactly_one_row_hash(table):
    edited = table.copy()
    edited.loc[17, "x"] = edited.loc[17, "x"] + 0.001
    a, b = fingerprint_frame(table), fingerprint_frame(edited)
    assert a.digest != b.digest
    assert np.flatnonzero((a.row_hashes != b.row_hashes).any(axis=1)).tolist() == [17]


def test_duplicates_count(table):
    doubled = pd.concat([table, table.iloc[:1]], ignore_index=True)
    assert fingerprint_frame(table).digest != fingerprint_frame(doubled).digest


def test_big_integral_floats_match_ints():
    a = pd.DataFrame({"v": [10**13, 2**53, -(10**15)]})
    b = pd.DataFrame({"v": [1e13, float(2**53), -1e15]})
    assert fingerprint_frame(a).digest == fingerprint_frame(b).digest


def test_mixed_object_column_is_handled():
    a = pd.DataFrame({"m": pd.Series([1, "1", None, 2.5, True], dtype=object)})
    fp = fingerprint_frame(a)
    assert fp.n_rows == 5 and len(set(map(bytes, fp.row_hashes))) == 5


cells = st.one_of(st.none(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=64),
                  st.text(max_size=5))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-1000, 1000), st.text(max_size=4)), min_size=1, max_size=20),
       st.randoms(use_true_random=False))
def test_permutation_invariance_property(rows, rnd):
    df = pd.DataFrame(rows, columns=["a", "b"])
    perm = list(range(len(df)))
    rnd.shuffle(perm)
    assert fingerprint_frame(df).digest == fingerprint_frame(df.iloc[perm].reset_index(drop=True)).digest


def test_space_around_a_number_in_text_is_canonical():
    """Issue 8, item 13: a leading vs a trailing space in a numeric cell fingerprinted differently."""
    from poisonguard.provenance._fingerprint import row_hashes as hashes_of

    def h(cells):
        return hashes_of(pd.DataFrame({"x": pd.Series(cells, dtype=object), "y": ["a"] * len(cells)}))[1]

    lead, trail, plain = h(["foo", " 2.5"]), h(["foo", "2.5 "]), h(["foo", "2.5"])
    assert (lead == trail).all() and (lead == plain).all()
    assert (h([" -1e3", "x"]) == h(["-1e3\t", "x"])).all()
    assert not (h(["foo", " a"]) == h(["foo", "a "])).all()  # other text keeps its whitespace
    assert not (h(["foo", "2.50"]) == h(["foo", "2.5"])).all()  # text is not re-formatted as a number
    mixed = lambda v: hashes_of(pd.DataFrame({"x": pd.Series([1, v], dtype=object)}))[1]  # noqa: E731
    assert (mixed(" 7") == mixed("7 ")).all()


def test_csv_with_padded_numbers_in_a_text_column_has_one_digest(tmp_path):
    from poisonguard.validation import load_table

    digests = set()
    for i, cell in enumerate([" 2.5", "2.5 ", "2.5"]):
        p = tmp_path / f"t{i}.csv"
        p.write_text(f"x,y\nfoo,a\n{cell},b\n")
        digests.add(fingerprint_frame(load_table(p)).digest)
    assert len(digests) == 1


def test_versions_recorded_with_canon_1_still_verify(tmp_path, monkeypatch):
    """Ledgers written before canon 2 are re-hashed with canon 1: no false alarms after the upgrade."""
    import functools

    from poisonguard.provenance import _api, add_source, add_version, generate_key, init_ledger, verify_ledger
    from poisonguard.store import open_store

    key = generate_key(tmp_path / "k", alg="hmac")
    data = tmp_path / "t.csv"
    data.write_text("x,y\nfoo,a\n 2.5,b\n")
    with open_store(tmp_path / "db", create=True) as st:
        init_ledger(st, key)
        add_source(st, "s", kind="internal", key=key)
        with monkeypatch.context() as m:  # what an older poisonguard recorded
            m.setattr(_api, "fingerprint_frame", functools.partial(_api.fingerprint_frame, canon=1))
            m.setattr(_api, "CANON_VERSION", 1)
            old = add_version(st, data, name="t", source="s", key=key)
        new = add_version(st, data, name="t", source="s", key=key)
        assert old.payload["canon"] == 1 and new.payload["canon"] == 2 and old.digest != new.digest
        for v in (old, new):
            assert verify_ledger(st, key, version=v.version_id).ok
