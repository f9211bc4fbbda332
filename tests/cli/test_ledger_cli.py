"""The ledger and source commands, including bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.cli import main


def _flat(text: str) -> str:
    """Rich wraps long lines at the terminal width; compare with whitespace collapsed."""
    return " ".join(text.split())


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    from poisonguard.cli._app import console

    monkeypatch.setattr(console, "width", 250)  # wide tables: no truncated cells
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POISONGUARD_DB", raising=False)
    monkeypatch.delenv("POISONGUARD_LEDGER_KEY", raising=False)
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"id": np.arange(30), "x": rng.normal(size=30).round(4), "s": rng.choice(["a", "b"], 30)})
    df.to_csv("data.csv", index=False)
    return tmp_path, df


def _init(capsys):
    assert main(["ledger", "init"]) == 0
    assert main(["source", "add", "feed", "--kind", "vendor", "--owner", "ana"]) == 0
    assert main(["ledger", "add", "data.csv", "--name", "train", "--source", "feed", "--id", "id"]) == 0
    capsys.readouterr()


def test_full_flow(workdir, capsys):
    tmp, df = workdir
    _init(capsys)
    key = tmp / ".poisonguard" / "ledger.key"
    assert key.stat().st_mode & 0o777 == 0o600
    edited = df.copy()
    edited.loc[4, "x"] = 99.0
    edited = pd.concat([edited, pd.DataFrame({"id": [100], "x": [1.0], "s": ["z"]})], ignore_index=True)
    edited.to_parquet("v2.parquet", index=False)
    assert main(["ledger", "add", "v2.parquet", "--name", "train", "--source", "feed", "--id", "id",
                 "--parent", "train@1", "--transform", "edit a cell, add a row"]) == 0
    assert main(["ledger", "diff", "train@1", "train@2", "--out", "diff.csv"]) == 0
    diff = pd.read_csv(tmp / "diff.csv")
    assert sorted(diff["_change"]) == ["added", "changed_from", "changed_to"]
    assert diff.loc[diff["_change"] == "changed_to", "x"].item() == 99.0
    assert diff.loc[diff["_change"] == "added", "id"].item() == 100
    capsys.readouterr()
    assert main(["ledger", "log"]) == 0
    assert main(["ledger", "lineage", "train"]) == 0
    out = _flat(capsys.readouterr().out)
    assert "train@2" in out and "edit a cell, add a row" in out
    assert main(["source", "list"]) == 0
    out = _flat(capsys.readouterr().out)
    assert "feed" in out and "vendor" in out and "0.040" in out
    assert main(["ledger", "verify"]) == 0
    assert main(["ledger", "verify", "train@1"]) == 0


def test_verify_names_changed_row_and_exits_4(workdir, capsys):
    tmp, df = workdir
    _init(capsys)
    df.loc[7, "s"] = "poison"
    df.to_csv("data.csv", index=False)
    assert main(["ledger", "verify", "data.csv"]) == 4
    captured = capsys.readouterr()
    assert "row 7 changed (id=7)" in captured.out
    assert "verification failed" in captured.err


def test_unknown_version(workdir, capsys):
    _init(capsys)
    assert main(["ledger", "verify", "train@9"]) == 2
    assert "unknown dataset version 'train@9'" in _flat(capsys.readouterr().err)
    assert main(["ledger", "diff", "train@1", "nope"]) == 2


def test_missing_key(workdir, capsys):
    _init(capsys)
    assert main(["ledger", "verify", "--key", "absent.key"]) == 2
    err = _flat(capsys.readouterr().err)
    assert "signing key not found: absent.key" in err
    assert main(["source", "add", "x", "--kind", "internal", "--key", "absent.key"]) == 2


def test_corrupt_database(workdir, capsys):
    tmp, _ = workdir
    (tmp / "broken.db").write_bytes(b"\x00garbage" * 100)
    assert main(["ledger", "log", "--db", str(tmp / "broken.db")]) == 6
    assert "not an SQLite database" in _flat(capsys.readouterr().err)


def test_missing_store_and_missing_data_file(workdir, capsys):
    assert main(["ledger", "log"]) == 6
    assert "ledger init" in _flat(capsys.readouterr().err)
    _init(capsys)
    assert main(["ledger", "add", "nothere.csv", "--name", "t", "--source", "feed"]) == 2
    assert "file not found" in _flat(capsys.readouterr().err)


def test_bad_source_kind_and_unknown_source(workdir, capsys):
    _init(capsys)
    assert main(["source", "add", "web", "--kind", "darkweb"]) == 2
    assert main(["ledger", "add", "data.csv", "--name", "t", "--source", "ghost"]) == 2
    assert "unknown source 'ghost'" in _flat(capsys.readouterr().err)


def test_tampered_ledger_exits_4(workdir, capsys):
    import sqlite3

    tmp, _ = workdir
    _init(capsys)
    con = sqlite3.connect(tmp / ".poisonguard" / "poisonguard.db")
    con.execute("delete from ledger_entries where seq = 2")
    con.commit()
    con.close()
    assert main(["ledger", "verify"]) == 4
    assert "entry 2 deleted" in _flat(capsys.readouterr().out)


def test_export_mlflow(workdir, capsys, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    tmp, _ = workdir
    _init(capsys)
    uri = (tmp / "mlruns").as_uri()
    assert main(["ledger", "export", "train@1", "--mlflow", "--tracking-uri", uri, "--experiment", "cli"]) == 0
    assert "logged to MLflow run" in _flat(capsys.readouterr().out)
    assert main(["ledger", "export", "train@1"]) == 2
