"""``ledger add`` / ``ledger verify`` on the Dask engine (issue 12, item 3).

One in-process ``LocalCluster`` (2 thread workers) serves the whole module; the CLI is
pointed at it with ``--scheduler``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

from poisonguard.cli._app import main  # noqa: E402
from poisonguard.distributed import _ledger  # noqa: E402
from poisonguard.distributed._ledger import PartitionFailedError, fingerprint_partitions  # noqa: E402
from poisonguard.provenance import fingerprint_frame, list_versions  # noqa: E402
from poisonguard.store import open_store  # noqa: E402
from poisonguard.validation import load_table  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        yield c, client


def _table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n),
        "x": rng.normal(size=n).round(3),
        "k": rng.integers(0, 5, n),
        "s": rng.choice(["a", "b", "café", None], n),
        "flag": pd.array([None] * (n // 2) + list(rng.random(n - n // 2) < 0.5), dtype="object"),
    })


@pytest.fixture
def data(tmp_path):
    df = _table()
    one = tmp_path / "one.parquet"
    df.to_parquet(one, index=False)
    ds = tmp_path / "ds"
    ds.mkdir()
    for k, (a, b) in enumerate([(0, 70), (70, 150), (150, 151), (151, 300)]):
        df.iloc[a:b].to_parquet(ds / f"part-{k}.parquet", index=False)
    return df, one, ds


def test_dask_digest_equals_local_and_one_file(cluster, data):
    _, client = cluster
    _, one, ds = data
    whole = fingerprint_frame(load_table(one))
    local = fingerprint_partitions(ds, batch_rows=32)
    on_dask = fingerprint_partitions(ds, engine="dask", scheduler=client, batch_rows=32)
    assert on_dask.fingerprint.digest == local.fingerprint.digest == whole.digest
    assert np.array_equal(on_dask.fingerprint.row_hashes, whole.row_hashes)
    assert [p.to_json() for p in on_dask.partitions] == [p.to_json() for p in local.partitions]


def test_dask_written_dataset_matches_one_file(cluster, tmp_path):
    """Dask writes its index as a column the pandas metadata marks as the index, and _metadata files.

    (Without ``flag``: Dask itself converts an object column of booleans to strings.)"""
    _, client = cluster
    df = _table(seed=1).drop(columns=["flag"])
    df.to_parquet(tmp_path / "one.parquet", index=False)
    dd.from_pandas(df, npartitions=3).to_parquet(tmp_path / "dk", write_metadata_file=True)
    whole = fingerprint_frame(load_table(tmp_path / "one.parquet"))
    assert fingerprint_partitions(tmp_path / "dk", engine="dask", scheduler=client).fingerprint.digest == whole.digest


@pytest.fixture
def ledger_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["ledger", "init"]) == 0
    assert main(["source", "add", "acme", "--kind", "vendor"]) == 0
    return tmp_path


def test_cli_dask_add_verify_and_edited_partition(cluster, data, ledger_env, capsys):
    c, _ = cluster
    _, one, ds = data
    addr = c.scheduler_address
    assert main(["ledger", "add", str(ds), "--name", "t", "--source", "acme", "--engine", "dask",
                 "--scheduler", addr]) == 0
    assert main(["ledger", "add", str(one), "--name", "one", "--source", "acme"]) == 0
    with open_store(ledger_env / ".poisonguard" / "poisonguard.db") as st:
        t1, one1 = list_versions(st)
    assert t1.digest == one1.digest
    assert main(["ledger", "verify", "t@1", "--engine", "dask", "--scheduler", addr]) == 0
    part = ds / "part-3.parquet"
    edited = pd.read_parquet(part)
    edited.loc[edited.index[2], "s"] = "poisoned"
    edited.to_parquet(part, index=False)
    capsys.readouterr()
    assert main(["ledger", "verify", "t@1", "--engine", "dask", "--scheduler", addr]) == 4
    out = " ".join(capsys.readouterr().out.split())
    assert "MISMATCH partition part-3.parquet changed" in out and "[part-3.parquet row 2]" in out
    # the one-file version, checked against the edited partitions, finds the same row
    assert main(["ledger", "verify", str(ds), "--version", "one@1", "--engine", "dask", "--scheduler", addr]) == 4
    assert "row 153 changed" in " ".join(capsys.readouterr().out.split())


def test_failing_worker_fails_the_command_and_writes_nothing(cluster, data, ledger_env, monkeypatch, capsys):
    c, client = cluster
    _, _, ds = data
    real = _ledger.hash_partition

    def crash_on_part_1(task):  # noqa: ANN001, ANN202
        if task.path.endswith("part-1.parquet"):
            raise MemoryError("worker out of memory (simulated)")
        return real(task)

    monkeypatch.setattr(_ledger, "hash_partition", crash_on_part_1)
    with pytest.raises(PartitionFailedError, match="part-1.parquet"):
        fingerprint_partitions(ds, engine="dask", scheduler=client)
    code = main(["ledger", "add", str(ds), "--name", "t", "--source", "acme", "--engine", "dask",
                 "--scheduler", c.scheduler_address])
    assert code not in (0, 2, 4)
    assert "part-1.parquet failed on the Dask cluster" in " ".join(capsys.readouterr().err.split())
    with open_store(ledger_env / ".poisonguard" / "poisonguard.db") as st:
        assert list_versions(st) == []


def test_bad_input_on_dask_exits_2(cluster, tmp_path, ledger_env, capsys):
    c, _ = cluster
    df = _table()
    ds = tmp_path / "bad"
    ds.mkdir()
    df.iloc[:100].to_parquet(ds / "a.parquet", index=False)
    df.iloc[100:].assign(k=lambda d: d["k"].astype("float64")).to_parquet(ds / "b.parquet", index=False)
    assert main(["ledger", "add", str(ds), "--name", "t", "--source", "acme", "--engine", "dask",
                 "--scheduler", c.scheduler_address]) == 2
    err = capsys.readouterr().err
    assert "a.parquet" in err and "b.parquet" in err
    assert main(["ledger", "add", str(ds), "--name", "t", "--source", "acme", "--engine", "dask",
                 "--scheduler", "tcp://127.0.0.1:9", "--workers", "2"]) == 2
    with open_store(ledger_env / ".poisonguard" / "poisonguard.db") as st:
        assert list_versions(st) == []
