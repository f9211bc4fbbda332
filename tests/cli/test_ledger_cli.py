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


@pytest.mark.parametrize("alg", ["ed25519", "hmac"])
def test_add_with_another_key_is_refused_before_writing(workdir, capsys, alg):
    """Issue 8, item 5: `ledger add --key OTHER` succeeded, after which verify with the real key failed forever."""
    import sqlite3

    from poisonguard.provenance import generate_key, load_key

    tmp, _ = workdir
    _init(capsys)
    db = tmp / ".poisonguard" / "poisonguard.db"
    n_before = sqlite3.connect(db).execute("select count(*) from ledger_entries").fetchone()[0]
    other = generate_key(tmp / "other.key", alg=alg)
    real = load_key(tmp / ".poisonguard" / "ledger.key")
    for args in (["ledger", "add", "data.csv", "--name", "train", "--source", "feed"],
                 ["source", "add", "web", "--kind", "public-web"],
                 ["ledger", "init"]):
        assert main([*args, "--key", "other.key"]) == 4, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
        assert other.key_id in err and real.key_id in err, err
    n_after = sqlite3.connect(db).execute("select count(*) from ledger_entries").fetchone()[0]
    assert n_after == n_before  # nothing was written
    assert main(["ledger", "verify"]) == 0  # the real key still verifies everything


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_init_writes_one_genesis_and_one_key(tmp_path, round_):
    """Issue 8, item 11: 4 processes running `ledger init` at once gave two init entries or FileExistsError.

    Now exactly one writes the key and the genesis entry; the others report "already
    initialized" and exit 0. Forked workers (cheap to start) released together; several
    rounds, because a race does not show every time.
    """
    import multiprocessing as mp

    from poisonguard.provenance import load_key, read_entries, verify_ledger
    from poisonguard.store import open_store

    ctx = mp.get_context("fork")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_init_worker, args=(str(tmp_path), start, results)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert not any(p.is_alive() for p in procs)
    outcomes = sorted((results.get(timeout=5) for _ in procs), key=str)
    assert [code for code, _ in outcomes] == [0, 0, 0, 0], outcomes
    said = sorted(text for _, text in outcomes)
    assert said == ["ledger already initialized"] * 3 + ["ledger initialized"], said
    key = load_key(tmp_path / ".poisonguard" / "ledger.key")
    assert load_key(tmp_path / ".poisonguard" / "ledger.key.pub").key_id == key.key_id
    assert [f.name for f in (tmp_path / ".poisonguard").iterdir() if f.name.endswith(".tmp")] == []
    with open_store(tmp_path / ".poisonguard" / "poisonguard.db") as st:
        entries = read_entries(st)
        assert [e.kind for e in entries] == ["init"] and entries[0].body["key_id"] == key.key_id
        assert verify_ledger(st, key).ok


def _init_worker(cwd: str, start, results) -> None:  # runs in a child process
    import contextlib
    import io
    import os

    from poisonguard.cli import main as cli_main
    from poisonguard.cli._app import console

    os.chdir(cwd)
    for var in ("POISONGUARD_DB", "POISONGUARD_LEDGER_KEY"):
        os.environ.pop(var, None)
    buf = io.StringIO()
    console.file = buf
    start.wait(60)
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            code = cli_main(["ledger", "init"])
        except BaseException as exc:  # report the crash instead of hanging the parent
            code = repr(exc)
    last = [line for line in buf.getvalue().splitlines() if line.startswith("ledger")]
    results.put((code, last[-1] if last else buf.getvalue()))


def test_verify_exits_4_when_a_source_kind_is_edited(workdir, capsys):
    """Issue 8, item 6: `UPDATE sources SET kind=...` changed the trust prior and still passed verify."""
    import sqlite3

    tmp, _ = workdir
    _init(capsys)
    con = sqlite3.connect(tmp / ".poisonguard" / "poisonguard.db")
    con.execute("update sources set kind = 'internal' where name = 'feed'")
    con.commit()
    con.close()
    assert main(["ledger", "verify"]) == 4
    out = _flat(capsys.readouterr().out)
    assert "source feed was altered in the sources table" in out and "kind is 'internal', signed 'vendor'" in out
