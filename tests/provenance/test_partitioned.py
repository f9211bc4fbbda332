"""The ledger on a partitioned Parquet dataset, local engine (issue 12, item 3).

The promise: the digest of a directory (or glob) of Parquet files is the digest of one
file holding the same rows in dataset order, so versions verify across both forms, and
``verify`` names the partition that changed. The Dask engine is in tests/distributed.
"""

from __future__ import annotations

import decimal
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poisonguard.cli._app import main
from poisonguard.distributed._ledger import SchemaMismatchError, fingerprint_partitions
from poisonguard.provenance import (
    add_version, diff_versions, fingerprint_frame, list_versions, load_version_frame, verify_data,
)
from poisonguard.validation import load_table


def _tricky(n: int = 240, seed: int = 0) -> pa.Table:
    """A table whose one-file digest depends on the whole table, not only on each row.

    * ``flag`` (bool) and ``price`` (decimal) are null in the first half: partitions there
      cannot infer those columns' kinds;
    * ``big`` (int64 beyond 2**53) has one null, in the last rows: one file reads the
      column as float64 (rounded), partitions without the null would read int64.
    """
    rng = np.random.default_rng(seed)
    big = (2**60 + rng.integers(0, 1000, n)).tolist()
    big[n - 3] = None
    half = n // 2
    return pa.table({
        "id": pa.array(np.arange(n)),
        "x": pa.array(rng.normal(size=n).round(4)),
        "s": pa.array(rng.choice(["a", " 2.5", "café", ""], n).tolist()),
        "when": pa.array(pd.date_range("2024-01-01", periods=n, freq="h")),
        "flag": pa.array([None] * half + (rng.random(n - half) < 0.5).tolist(), pa.bool_()),
        "price": pa.array([None] * half + [decimal.Decimal("1.25")] * (n - half), pa.decimal128(6, 2)),
        "big": pa.array(big, pa.int64()),
    })


def _write_parts(table: pa.Table, folder: Path, cuts: list[int], *, stem: str = "part-") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [0, *cuts, table.num_rows]
    out = []
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        p = folder / f"{stem}{k}.parquet"
        pq.write_table(table.slice(a, b - a), p)
        out.append(p)
    return out


@pytest.fixture
def tricky(tmp_path):
    t = _tricky()
    one = tmp_path / "one.parquet"
    pq.write_table(t, one)
    # uneven partitions, one of them empty; 10 (not 2) after 9 checks the natural order
    _write_parts(t, tmp_path / "ds", [50, 50, 110, 130, 150, 170, 190, 200, 210, 220])
    return t, one, tmp_path / "ds"


def test_partitioned_digest_equals_one_file(tricky):
    _, one, ds = tricky
    whole = fingerprint_frame(load_table(one))
    for batch_rows in (1000, 7):  # one batch per partition; many, some all-null in flag/price
        pf = fingerprint_partitions(ds, batch_rows=batch_rows)
        assert pf.fingerprint.digest == whole.digest
        assert pf.fingerprint.ordered_digest == whole.ordered_digest
        assert np.array_equal(pf.fingerprint.row_hashes, whole.row_hashes)
    assert [p.rows for p in pf.partitions] == [50, 0, 60, 20, 20, 20, 20, 10, 10, 10, 20]
    assert [p.name for p in pf.partitions][:3] == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    assert pf.partitions[-1].name == "part-10.parquet"


def test_the_tricky_table_needs_the_reduce(tricky):
    """Hashing each partition file on its own (no shared kinds, no shared float64) gives other hashes:
    the test above would fail without the reduce step."""
    _, one, ds = tricky
    whole = fingerprint_frame(load_table(one))
    naive = [fingerprint_frame(load_table(p)).row_hashes for p in ds.glob("*.parquet")
             if pq.ParquetFile(p).metadata.num_rows]
    multiset = lambda h: sorted(map(bytes, h))  # noqa: E731  (glob order is not dataset order)
    assert multiset(np.concatenate(naive)) != multiset(whole.row_hashes)


def test_glob_and_pandas_written_partitions_match(tmp_path):
    """pandas writes each slice with its RangeIndex in the metadata; a glob picks a subset."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.integers(0, 9, 300), "b": rng.choice(["x", "y", None], 300),
                       "c": rng.normal(size=300), "o": [None] * 100 + ["v"] * 200})
    (tmp_path / "ds").mkdir()
    for k in range(3):  # o is all None in part 0: Arrow type null there, string elsewhere
        df.iloc[k * 100:(k + 1) * 100].to_parquet(tmp_path / "ds" / f"day={k}.parquet")
    (tmp_path / "ds" / "_SUCCESS").write_text("")
    df.to_parquet(tmp_path / "one.parquet", index=False)
    whole = fingerprint_frame(load_table(tmp_path / "one.parquet"))
    assert fingerprint_partitions(tmp_path / "ds").fingerprint.digest == whole.digest
    first_two = fingerprint_frame(load_table(tmp_path / "one.parquet").iloc[:200])
    assert fingerprint_partitions(str(tmp_path / "ds" / "day=[01].parquet")).fingerprint.digest == first_two.digest


@pytest.mark.parametrize("name", ["cars", "seattle-weather", "la-riots", "anes96"])
def test_real_tables_partitioned_match_one_file(tmp_path, name):
    """Held-out real tables (nulls, dates, text, floats), cut at random places."""
    if name == "anes96":
        sm = pytest.importorskip("statsmodels.api")
        df = sm.datasets.anes96.load_pandas().data
    else:
        vega = pytest.importorskip("vega_datasets")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = getattr(vega.local_data, name.replace("-", "_"))()
    df.to_parquet(tmp_path / "one.parquet", index=False)
    cuts = sorted(np.random.default_rng(7).choice(len(df), 5, replace=False).tolist())
    _write_parts(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "ds", cuts)
    whole = fingerprint_frame(load_table(tmp_path / "one.parquet"))
    pf = fingerprint_partitions(tmp_path / "ds", batch_rows=64)
    assert pf.fingerprint.digest == whole.digest
    assert np.array_equal(pf.fingerprint.row_hashes, whole.row_hashes)


def test_local_engine_reads_batches_not_the_whole_table(tricky, monkeypatch):
    from poisonguard.distributed import _ledger

    sizes: list[int] = []
    real = _ledger.hash_frame

    def spy(df, **kw):  # noqa: ANN001, ANN003, ANN202
        sizes.append(len(df))
        return real(df, **kw)

    monkeypatch.setattr(_ledger, "hash_frame", spy)
    fingerprint_partitions(tricky[2], batch_rows=16)
    assert max(sizes) <= 16 and sum(sizes) >= 240


# --------------------------------------------------------------------------- library: versions

def test_version_records_partitions_and_verifies_both_ways(store, key, tricky):
    _, one, ds = tricky
    v = add_version(store, ds, name="t", source="feed", key=key)
    w = add_version(store, one, name="one", source="feed", key=key)
    assert v.digest == w.digest
    parts = v.payload["partitions"]
    assert len(parts) == 11 and sum(p["rows"] for p in parts) == 240
    assert v.payload["file"]["format"] == "parquet-partitioned" and v.payload["file"]["n_partitions"] == 11
    assert verify_data(store, v).ok and verify_data(store, w, path=ds).ok and verify_data(store, v, path=one).ok
    frame = load_version_frame(v)
    assert len(frame) == 240 and fingerprint_frame(frame).digest == v.digest
    _, _, d = diff_versions(store, v.version_id, w.version_id)
    assert d.identical


def test_verify_names_the_edited_partition(store, key, tricky):
    t, _, ds = tricky
    v = add_version(store, ds, name="t", source="feed", key=key)
    part = ds / "part-3.parquet"
    edited = pq.read_table(part).to_pandas()
    edited.loc[4, "x"] = 1e6
    pq.write_table(pa.Table.from_pandas(edited, schema=pq.read_schema(part), preserve_index=False), part)
    check = verify_data(store, v)
    assert not check.ok
    assert check.partitions.changed == ["part-3.parquet"]
    assert not (check.partitions.missing or check.partitions.added or check.partitions.renamed)
    lines = check.describe()
    assert lines[0].startswith("partition part-3.parquet changed (rows 110-129")
    assert "row 114 changed [part-3.parquet row 4]" in lines


def test_renamed_and_reordered_partitions(store, key, tmp_path):
    """Unordered (default): same rows under other names/order still verify, with notes.
    --ordered: the row order is part of the digest, so a reorder is a mismatch."""
    t = _tricky()
    ds = tmp_path / "ds"
    _write_parts(t, ds, [80, 160])
    v = add_version(store, ds, name="u", source="feed", key=key)
    o = add_version(store, ds, name="o", source="feed", key=key, ordered=True)
    (ds / "part-0.parquet").rename(ds / "part-9.parquet")  # now last: renamed and reordered
    check = verify_data(store, v)
    assert check.ok
    assert check.partitions.renamed == [("part-0.parquet", "part-9.parquet")] and check.partitions.reordered
    assert any("renamed to part-9.parquet" in line for line in check.notes())
    ordered = verify_data(store, o)
    assert not ordered.ok and ordered.partitions.reordered


def test_missing_and_added_partitions(store, key, tmp_path):
    t = _tricky()
    ds = tmp_path / "ds"
    _write_parts(t, ds, [80, 160])
    v = add_version(store, ds, name="t", source="feed", key=key)
    (ds / "part-1.parquet").unlink()
    pq.write_table(t.slice(0, 5), ds / "part-3.parquet")
    check = verify_data(store, v)
    assert not check.ok
    assert check.partitions.missing == ["part-1.parquet"] and check.partitions.added == ["part-3.parquet"]
    assert check.diff.removed.size == 80 and check.diff.added.size == 5


def test_source_counts_and_ids_match_one_file(store, key, tricky):
    _, one, ds = tricky
    v = add_version(store, ds, name="t", source="feed", key=key, id_col="id", source_col="s")
    w = add_version(store, one, name="one", source="feed", key=key, id_col="id", source_col="s")
    assert v.payload["source_counts"] == w.payload["source_counts"]
    assert v.payload["ids_sha256"] == w.payload["ids_sha256"]


# --------------------------------------------------------------------------- CLI

@pytest.fixture
def ledger_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["ledger", "init"]) == 0
    assert main(["source", "add", "acme", "--kind", "vendor"]) == 0
    return tmp_path


def test_cli_add_and_verify_partitioned(ledger_env, capsys):
    ds = ledger_env / "ds"
    _write_parts(_tricky(), ds, [100, 200])
    assert main(["ledger", "add", str(ds), "--name", "t", "--source", "acme"]) == 0
    assert "240 rows in 3 partitions" in " ".join(capsys.readouterr().out.split())
    assert main(["ledger", "verify", "t@1"]) == 0
    assert main(["ledger", "verify", str(ledger_env / "ds" / "part-*.parquet"), "--version", "t@1"]) == 0
    part = ds / "part-2.parquet"
    pq.write_table(pq.read_table(part).slice(1), part)  # drop a row
    capsys.readouterr()
    assert main(["ledger", "verify", str(ds)]) == 4
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "MISMATCH partition part-2.parquet changed" in out and "40 rows recorded, 39 now" in out


def test_cli_bad_input_exits_2_and_writes_nothing(ledger_env, capsys):
    t = _tricky()
    ds = ledger_env / "ds"
    _write_parts(t, ds, [100])
    pq.write_table(t.set_column(1, "x", pc_cast(t.column("x"), pa.float32())), ds / "part-1.parquet")
    assert main(["ledger", "add", str(ds), "--name", "t", "--source", "acme"]) == 2
    err = capsys.readouterr().err
    assert "part-0.parquet" in err and "part-1.parquet" in err and "'x'" in err
    other = ledger_env / "other"
    _write_parts(t.drop_columns(["s"]), other, [])
    pq.write_table(t.slice(0, 10), other / "part-1.parquet")
    assert main(["ledger", "add", str(other), "--name", "t", "--source", "acme"]) == 2
    assert "different columns" in capsys.readouterr().err
    (ledger_env / "junk").mkdir()
    (ledger_env / "junk" / "a.parquet").write_bytes(b"not parquet at all")
    assert main(["ledger", "add", str(ledger_env / "junk"), "--name", "t", "--source", "acme"]) == 2
    assert main(["ledger", "add", str(ledger_env / "nothing-*.parquet"), "--name", "t", "--source", "acme"]) == 2
    _write_parts(t, ledger_env / "ok", [100])
    assert main(["ledger", "add", str(ledger_env / "ok"), "--name", "t", "--source", "acme",
                 "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert main(["ledger", "add", str(ledger_env / "ok"), "--name", "t", "--source", "acme", "--engine", "spark"]) == 2
    pq.write_table(t, ledger_env / "one.parquet")
    assert main(["ledger", "add", str(ledger_env / "one.parquet"), "--name", "t", "--source", "acme",
                 "--engine", "dask"]) == 2
    assert "--engine" in capsys.readouterr().err
    from poisonguard.store import open_store

    with open_store(ledger_env / ".poisonguard" / "poisonguard.db") as st:
        assert list_versions(st) == []


def pc_cast(col, typ):  # noqa: ANN001, ANN201
    import pyarrow.compute as pc

    return pc.cast(col, typ)


def test_verify_reports_a_partition_schema_change_as_mismatch(store, key, tmp_path):
    t = _tricky()
    ds = tmp_path / "ds"
    _write_parts(t, ds, [100])
    v = add_version(store, ds, name="t", source="feed", key=key)
    pq.write_table(t.slice(100).set_column(1, "x", pc_cast(t.slice(100).column("x"), pa.float32())),
                   ds / "part-1.parquet")
    check = verify_data(store, v)
    assert not check.ok and check.partitions.schema_problem
    assert "part-1.parquet" in check.describe()[0]
    with pytest.raises(SchemaMismatchError):
        fingerprint_partitions(ds)


def test_local_engine_does_not_import_dask(tmp_path):
    ds = tmp_path / "ds"
    _write_parts(_tricky(), ds, [100])
    code = f"""
import sys, os
os.chdir({str(tmp_path)!r})
from poisonguard.cli._app import main
assert main(["ledger", "init"]) == 0
assert main(["source", "add", "acme", "--kind", "vendor"]) == 0
assert main(["ledger", "add", "ds", "--name", "t", "--source", "acme"]) == 0
assert main(["ledger", "verify", "t"]) == 0
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
print("DASK_MODULES=" + ",".join(bad))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DASK_MODULES=\n" in out.stdout, out.stdout[-500:]


def test_payload_is_json_and_partition_list_signed(store, key, tricky):
    v = add_version(store, tricky[2], name="t", source="feed", key=key)
    json.dumps(v.payload)
    names = [p["name"] for p in v.payload["partitions"]]
    assert names == sorted(names, key=lambda s: int(s.split("-")[1].split(".")[0]))


def test_ids_name_changed_rows_and_a_dropped_id_column_is_a_mismatch(store, key, tmp_path):
    t = _tricky()
    ds = tmp_path / "ds"
    _write_parts(t, ds, [120])
    v = add_version(store, ds, name="t", source="feed", key=key, id_col="id")
    edited = pq.read_table(ds / "part-1.parquet").to_pandas()
    edited.loc[7, "s"] = "zzz"
    pq.write_table(pa.Table.from_pandas(edited, schema=pq.read_schema(ds / "part-1.parquet"), preserve_index=False),
                   ds / "part-1.parquet")
    lines = verify_data(store, v).describe()
    assert "row 127 changed [part-1.parquet row 7] (id=127)" in lines
    for p in ds.glob("*.parquet"):
        pq.write_table(pq.read_table(p).drop_columns(["id"]), p)
    check = verify_data(store, v)
    assert not check.ok and not check.schema_ok
