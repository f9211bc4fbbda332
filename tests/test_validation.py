"""Validation at the edges: load_table / prepare_table messages, and loader properties."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poisonguard.errors import DataError, InputError, NotFittedError
from poisonguard.validation import (
    as_frame,
    check_fraction,
    check_is_fitted,
    check_X,
    check_y,
    load_table,
    parse_columns,
    prepare_table,
    save_table,
)


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# ----------------------------------------------------------------- load_table
def test_load_csv_tsv_parquet_and_sniffed(tmp_path):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    for name in ("t.csv", "t.parquet", "t.pq"):
        pd.testing.assert_frame_equal(load_table(save_table(df, tmp_path / name)), df)
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    pd.testing.assert_frame_equal(load_table(tmp_path / "t.tsv"), df)
    df.to_parquet(tmp_path / "noext", index=False)  # sniffed by magic bytes
    pd.testing.assert_frame_equal(load_table(tmp_path / "noext"), df)
    _write(tmp_path / "t.data", "a,b\n1,x\n")
    assert load_table(tmp_path / "t.data").shape == (1, 2)
    _write(tmp_path / "bom.csv", "\ufeffa,b\n1,2\n")  # a UTF-8 BOM is not part of the first name
    assert list(load_table(tmp_path / "bom.csv").columns) == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (b"", DataError, "is empty (0 bytes)"),
        (b"a,b,label\n", DataError, "has a header but no rows"),
        (b"\n\n", DataError, "has no columns"),
        (b"a,b\n1,2\n\xff\xfe,3\n", InputError, "is not valid UTF-8: byte 0xff at offset 8 (line 3)"),
        (b'a,b\n1,"2\n', InputError, "cannot parse"),
    ],
)
def test_load_table_errors(tmp_path, content, error, message):
    p = _write(tmp_path / "t.csv", content)
    with pytest.raises(error) as info:
        load_table(p)
    assert message in str(info.value) and str(p) in str(info.value)
    assert "\n" not in str(info.value)


def test_load_table_missing_directory_and_bad_parquet(tmp_path):
    with pytest.raises(InputError, match="file not found: .*nope.csv"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="expected a file but got a directory"):
        load_table(tmp_path)
    with pytest.raises(InputError, match="cannot read .*bad.parquet as Parquet"):
        load_table(_write(tmp_path / "bad.parquet", b"PAR1 not really"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_load_table_unreadable(tmp_path):  # pragma: no cover - tests usually run as root here
    p = _write(tmp_path / "t.csv", "a\n1\n")
    p.chmod(0)
    with pytest.raises(InputError, match="cannot read"):
        load_table(p)


def test_load_table_refuses_duplicate_csv_headers(tmp_path):
    p = _write(tmp_path / "dup.csv", "a,a,label\n1,2,0\n3,4,1\n5,6,0\n")
    with pytest.raises(InputError, match="duplicate column names: 'a'"):
        load_table(p)


def test_duplicate_columns_in_memory_are_refused():
    df = pd.DataFrame([[1, 2, 0], [3, 4, 1]], columns=["a", "a", "label"])
    with pytest.raises(InputError, match="data: duplicate column names: 'a'"):
        as_frame(df)


# ----------------------------------------------------------------- prepare_table
@pytest.fixture
def table():
    return pd.DataFrame({
        "id": [10, 11, 12, 13],
        "x": [0.1, 0.2, 0.3, 0.4],
        "c": ["u", "v", "u", "v"],
        "src": ["a", "a", "b", None],
        "y": ["cat", "dog", "cat", "dog"],
    })


def test_prepare_table_roles_and_label_codes(table):
    t = prepare_table(table, label="y", id_col="id", source_col="src")
    assert t.features == ["x", "c"] and t.label == "y" and t.n_rows == 4
    np.testing.assert_array_equal(t.y, [0, 1, 0, 1])
    np.testing.assert_array_equal(t.classes[t.y], table["y"])
    np.testing.assert_array_equal(t.ids, [10, 11, 12, 13])
    assert list(t.sources) == ["a", "a", "b", "<missing>"]
    assert t.warnings == [] and t.frame is table
    t2 = prepare_table(table, label="y", features="x, c")
    assert t2.features == ["x", "c"]
    assert prepare_table(table).y is None and prepare_table(table).features == list(table.columns)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"label": "nope"}, InputError, "data: label column 'nope' not found; columns are: id, x, c, src, y"),
        ({"id_col": "nope"}, InputError, "id_col column 'nope' not found"),
        ({"source_col": "nope"}, InputError, "source_col column 'nope' not found"),
        ({"label": "y", "id_col": "y"}, InputError, "the same column was given two roles: ['y', 'y']"),
        ({"label": "y", "features": "x,zz"}, InputError, "unknown feature column(s) ['zz']"),
        ({"label": "y", "features": "x,x"}, InputError, "a feature column is listed twice in features"),
        ({"label": "y", "features": "x,y"}, InputError, "column 'y' is both a feature and the label/id/source column"),
        ({"label": "y", "features": ","}, InputError, "an empty column list was given"),
        ({"require_label": True}, InputError, "this command needs a label column: pass label COL"),
    ],
)
def test_prepare_table_role_errors(table, kwargs, error, message):
    with pytest.raises(error) as info:
        prepare_table(table, **kwargs)
    assert message in str(info.value)


def test_prepare_table_no_feature_left():
    df = pd.DataFrame({"y": [0, 1, 0], "id": [1, 2, 3]})
    with pytest.raises(InputError, match="no feature columns left"):
        prepare_table(df, label="y", id_col="id")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["a", "a", "a", "a"], "label column 'y' has a single class ('a'); at least 2 are needed"),
        ([0, np.nan, 1, np.nan], "label column 'y' is empty or NaN in 2 row(s): 1, 3"),
        (["a", "", "b", "a"], "is empty or NaN in 1 row(s): 1"),
        (["a", "  ", "b", None], "is empty or NaN in 2 row(s): 1, 3"),
    ],
)
def test_prepare_table_label_errors(labels, message):
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": labels})
    with pytest.raises(DataError) as info:
        prepare_table(df, label="y")
    assert message in str(info.value)


def test_single_numeric_class_message_shows_the_plain_value():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 0, 0]})
    with pytest.raises(DataError) as info:
        prepare_table(df, label="y")
    assert "label column 'y' has a single class (0); at least 2 are needed" in str(info.value)


def test_prepare_table_many_nan_labels_are_elided():
    df = pd.DataFrame({"x": np.arange(30.0), "y": [np.nan] * 15 + [0, 1] * 7 + [0]})
    with pytest.raises(DataError, match=r"in 15 row\(s\): 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 \.\.\."):
        prepare_table(df, label="y")


def test_prepare_table_inf_and_too_few_rows():
    df = pd.DataFrame({"x": [1.0, 2.0, np.inf, -np.inf], "z": [1, 2, 3, 4], "y": [0, 1, 0, 1]})
    with pytest.raises(DataError, match="column 'x' has an infinite value at row 2 \\(2 inf value\\(s\\) in all\\)"):
        prepare_table(df, label="y")
    with pytest.raises(DataError, match="has 2 row\\(s\\); at least 3 are needed"):
        prepare_table(df.iloc[:2], label="y")
    # NaN features are fine (they are imputed), only inf is refused
    assert prepare_table(df.replace([np.inf, -np.inf], np.nan), label="y").n_rows == 4


def test_prepare_table_more_columns_than_rows_warns():
    df = pd.DataFrame(np.ones((4, 6)), columns=list("abcdef")).assign(y=[0, 1, 0, 1])
    t = prepare_table(df, label="y")
    assert t.warnings == ["data has more feature columns (6) than rows (4); scores rest on few examples per dimension"]


def test_non_string_column_names_are_stringified():
    df = pd.DataFrame(np.arange(12.0).reshape(4, 3)).assign(y=[0, 1, 0, 1])
    assert prepare_table(df, label="y").features == ["0", "1", "2"]


def test_as_frame_inputs():
    assert list(as_frame(np.zeros((2, 3))).columns) == ["x0", "x1", "x2"]
    assert as_frame({"a": [1, 2]}).shape == (2, 1)
    with pytest.raises(InputError, match="must be 2-D, got an array of shape \\(3,\\)"):
        as_frame(np.zeros(3))
    with pytest.raises(DataError, match="has no rows"):
        as_frame(pd.DataFrame({"a": []}))
    with pytest.raises(DataError, match="has no columns"):
        as_frame(pd.DataFrame(index=range(3)))


# ----------------------------------------------------------------- array checks
def test_check_x_y_fraction_fitted():
    with pytest.raises(InputError, match="X must be 2-D"):
        check_X(np.zeros(3))
    with pytest.raises(DataError, match="non-finite value at row 1, column 0"):
        check_X(np.array([[1.0], [np.nan]]))
    with pytest.raises(InputError, match="X has 2 columns but the detector was fitted on 3"):
        check_X(np.zeros((2, 2)), n_features=3)
    with pytest.raises(InputError, match="X has 3 rows and y has 2"):
        check_y([0, 1], 3)
    with pytest.raises(InputError, match="integer class codes"):
        check_y([0.5, 1.0], 2)
    with pytest.raises(InputError, match="negative class code"):
        check_y([0, -1], 2)
    np.testing.assert_array_equal(check_y(np.array([0.0, 2.0]), 2), [0, 2])
    assert check_fraction(0.1, "r") == 0.1 and check_fraction(0, "r", inclusive_zero=True) == 0.0
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(InputError, match="r must be in \\(0, 1\\)"):
            check_fraction(bad, "r")
    with pytest.raises(NotFittedError, match="object is not fitted yet"):
        check_is_fitted(object(), "x_")
    assert parse_columns(None) is None and parse_columns(["a", 1]) == ["a", "1"]


# ----------------------------------------------------------------- properties
_cell = st.one_of(
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=6),
)


@st.composite
def frames(draw):
    n_cols = draw(st.integers(1, 5))
    n_rows = draw(st.integers(1, 12))
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), min_size=n_cols,
                          max_size=n_cols, unique=True))
    cols = {}
    for name in names:
        kind = draw(st.sampled_from(["int", "float", "text", "mixed"]))
        if kind == "int":
            cols[name] = draw(st.lists(st.integers(-1000, 1000), min_size=n_rows, max_size=n_rows))
        elif kind == "float":
            cols[name] = draw(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))),
                                       min_size=n_rows, max_size=n_rows))
        elif kind == "text":
            cols[name] = draw(st.lists(st.text(alphabet="abcxyzé ,\"'", min_size=1, max_size=5),
                                       min_size=n_rows, max_size=n_rows))
        else:
            cols[name] = [str(v) for v in draw(st.lists(_cell, min_size=n_rows, max_size=n_rows))]
    return pd.DataFrame(cols)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_loaders_round_trip_shape(df):
    with tempfile.TemporaryDirectory() as d:
        pq = save_table(df, Path(d) / "t.parquet")
        back = load_table(pq)
        assert back.shape == df.shape and list(back.columns) == list(df.columns)
        csv = save_table(df, Path(d) / "t.csv")
        try:
            back = load_table(csv)
        except DataError:
            # a single text column of empty-looking rows can read back as no data; only a typed error is allowed
            return
        assert back.shape == df.shape, (back, df)
        assert list(back.columns) == list(df.columns)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["t.csv", "t.parquet", "t.bin", "t.tsv"]))
def test_garbage_bytes_give_typed_errors_only(data, name):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        try:
            df = load_table(p)
        except (InputError, DataError) as exc:
            assert str(exc) and "\n" not in str(exc).strip() or "cannot parse" in str(exc)
        else:
            assert isinstance(df, pd.DataFrame) and df.shape[0] >= 1 and df.shape[1] >= 1


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_garbage_after_parquet_magic_is_an_input_error(data):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.parquet"
        p.write_bytes(b"PAR1" + data)
        with pytest.raises(InputError, match="as Parquet"):
            load_table(p)


def test_encoder_round_trips_through_plain_data():
    import json

    import numpy as np
    import pandas as pd

    from poisonguard.encoding import TableEncoder

    frame = pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "b": ["x", "y", None, "x"], "c": [True, False, True, True]})
    enc = TableEncoder().fit(frame, ["a", "b", "c"])
    back = TableEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    np.testing.assert_allclose(back.transform(frame), enc.transform(frame))
    assert [c.name for c in back.columns_] == [c.name for c in enc.columns_]
    bad = enc.to_dict()
    bad["plan"][0][1] = "pickle"
    with pytest.raises(ValueError, match="unknown encoding kind"):
        TableEncoder.from_dict(bad)


def test_csv_blank_rows_are_kept_not_dropped(tmp_path):
    """A row whose cells are all empty is a blank line in CSV; it must not vanish."""
    from poisonguard.validation import load_table

    p = tmp_path / "blank.csv"
    p.write_text("a,b\n1,x\n,\n3,z\n\n", encoding="utf-8")
    df = load_table(p)
    assert df.shape == (3, 2)  # the trailing newline adds no row, the empty row stays
    p.write_text("a\nx\n\ny\n", encoding="utf-8")
    assert load_table(p).shape == (3, 1)


# ------------------------------------------------- issue 8, item 13: tables as users have them
@pytest.mark.parametrize("sep", [";", "\t", "|", ","])
def test_delimiter_is_sniffed(tmp_path, sep):
    text = sep.join(["a", "b", "label"]) + "\n" + "\n".join(sep.join([f"{i},5" if sep == ";" else str(i), "2", "x"])
                                                          for i in range(5)) + "\n"
    df = load_table(_write(tmp_path / "t.csv", text))
    assert list(df.columns) == ["a", "b", "label"] and df.shape == (5, 3)


def test_a_one_column_csv_stays_one_column(tmp_path):
    df = load_table(_write(tmp_path / "t.csv", "value\n1\n2\n3\n"))
    assert list(df.columns) == ["value"]


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".tsv.gz"])
def test_compressed_csv_is_read_by_suffix(tmp_path, suffix):
    from poisonguard._io import compress_for

    sep = "\t" if suffix.startswith(".tsv") else ","
    text = f"a{sep}b{sep}label\n1{sep}2{sep}x\n3{sep}4{sep}y\n5{sep}6{sep}x\n".encode()
    p = _write(tmp_path / f"t{suffix}", compress_for(text, tmp_path / f"t{suffix}"))
    df = load_table(p)
    assert list(df.columns) == ["a", "b", "label"] and df.shape == (3, 3)


def test_corrupt_compressed_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"cannot decompress .*t.csv.gz as gzip"):
        load_table(_write(tmp_path / "t.csv.gz", b"\x1f\x8bnot gzip at all"))


def test_label_that_is_continuous_or_unique_is_refused():
    rng = np.random.default_rng(0)
    price = pd.DataFrame({"x": rng.normal(size=5000), "price": rng.gamma(2.0, 50.0, 5000).round(2)})
    with pytest.raises(DataError) as info:
        prepare_table(price, label="price")
    msg = str(info.value)
    assert "label column 'price' has" in msg and "in 5,000 rows" in msg and "not a class label" in msg
    ids = pd.DataFrame({"x": np.arange(50.0), "uid": [f"u{i}" for i in range(50)]})
    with pytest.raises(DataError, match=r"'uid' has 50 distinct values in 50 rows \(fewer than 2 rows per class\)"):
        prepare_table(ids, label="uid")
    # fractional values with few classes, or many integer classes, are still class labels
    few = pd.DataFrame({"x": np.arange(60.0), "y": np.tile([0.5, 1.5, 2.5], 20)})
    assert prepare_table(few, label="y").classes.size == 3
    many = pd.DataFrame({"x": np.arange(300.0), "y": np.repeat(np.arange(100), 3)})
    assert prepare_table(many, label="y").classes.size == 100


def test_label_given_as_an_array_is_a_clear_input_error():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(InputError, match=r"^label must name a column of the table, got a ndarray of values"):
        prepare_table(X, label=np.arange(20) % 2)
    with pytest.raises(InputError, match=r"^id_col must be a column name \(str\), got int 3"):
        prepare_table(X, id_col=3)


def test_reserved_output_columns_are_refused_by_name():
    from poisonguard.validation import SCAN_OUTPUT_COLUMNS, check_output_columns

    assert SCAN_OUTPUT_COLUMNS == ("row", "suspicion", "detectors", "reason")
    check_output_columns(["a", "label", "rows", "id"])
    with pytest.raises(InputError, match=r"column\(s\) 'row', 'reason' clash with the output columns"):
        check_output_columns(["row", "a", "reason"])


@pytest.mark.parametrize("bad", [2.5, 0, -1, float("nan"), float("inf"), True, "3", None])
def test_check_count_refuses_non_integers_and_small_values(bad):
    from poisonguard.validation import check_count

    with pytest.raises(InputError, match="--top must be"):
        check_count(bad, "--top")


def test_check_count_accepts_whole_numbers():
    from poisonguard.validation import check_count

    assert check_count(3, "top") == 3 and check_count(3.0, "top") == 3 and check_count(np.int64(7), "top") == 7
