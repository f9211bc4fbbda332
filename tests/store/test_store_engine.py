"""The store: creation, refusal of missing/corrupt/newer/unknown schemas, migrations, locking."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text

from poisonguard.errors import StoreError
from poisonguard.store import SchemaVersion, open_store, register_component, resolve_db_url
from poisonguard.store import _base


def test_create_then_open(tmp_path):
    db = tmp_path / "sub" / "pg.db"
    with open_store(db, create=True) as st:
        assert st.dialect == "sqlite"
        with st.session() as s:
            versions = {r.component: r.version for r in s.query(SchemaVersion)}
    assert versions["core"] == 1 and versions["provenance"] == 1
    with open_store(f"sqlite:///{db}") as st:  # reopen without create
        assert st.path == db


def test_missing_store_is_refused(tmp_path):
    with pytest.raises(StoreError, match="no store at"):
        open_store(tmp_path / "absent.db")


def test_corrupt_file_is_refused(tmp_path):
    bad = tmp_path / "pg.db"
    bad.write_bytes(b"this is not a database at all, just text\n" * 10)
    with pytest.raises(StoreError, match="not an SQLite database"):
        open_store(bad)


def test_sqlite_without_our_schema_is_refused(tmp_path):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x int)").connection.commit()
    with pytest.raises(StoreError, match="not a poisonguard store"):
        open_store(other)


def test_newer_schema_is_refused(tmp_path):
    db = tmp_path / "pg.db"
    open_store(db, create=True).dispose()
    con = sqlite3.connect(db)
    con.execute("update schema_versions set version = 99 where component = 'provenance'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="version 99, newer"):
        open_store(db)


def test_unknown_component_is_refused(tmp_path):
    db = tmp_path / "pg.db"
    open_store(db, create=True).dispose()
    con = sqlite3.connect(db)
    con.execute("insert into schema_versions values ('hologram', 1)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="hologram"):
        open_store(db)


def test_older_schema_is_migrated(tmp_path, monkeypatch):
    calls = []
    comp = _base.Component("provenance", 2, {1: lambda conn: calls.append(conn.execute(text("select 1")).scalar())})
    monkeypatch.setitem(_base._COMPONENTS, "provenance", comp)
    db = tmp_path / "pg.db"
    con = None
    with open_store(db, create=True) as st:  # created at version 2 directly
        with st.write() as s:
            s.execute(text("update schema_versions set version = 1 where component = 'provenance'"))
    with open_store(db) as st, st.session() as s:
        assert s.get(SchemaVersion, "provenance").version == 2
    assert calls == [1]
    assert con is None


def test_missing_migration_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(_base._COMPONENTS, "provenance", _base.Component("provenance", 3))
    db = tmp_path / "pg.db"
    with open_store(db, create=True) as st, st.write() as s:
        s.execute(text("update schema_versions set version = 1 where component = 'provenance'"))
    with pytest.raises(StoreError, match="no migration"):
        open_store(db)


def test_register_twice_with_other_version_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_component("provenance", 42)


def test_url_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("POISONGUARD_DB", raising=False)
    assert resolve_db_url(None) == "sqlite:///.poisonguard/poisonguard.db"
    monkeypatch.setenv("POISONGUARD_DB", "postgresql://u@h/db")
    assert resolve_db_url(None) == "postgresql://u@h/db"
    assert resolve_db_url(tmp_path / "x.db") == f"sqlite:///{tmp_path / 'x.db'}"


def test_invalid_url_is_a_store_error():
    with pytest.raises(StoreError):
        open_store("notadialect://whatever", create=True)


def test_write_transaction_rolls_back_on_error(tmp_path):
    with open_store(tmp_path / "pg.db", create=True) as st:
        with pytest.raises(RuntimeError), st.write() as s:
            s.execute(text("insert into schema_versions values ('tmp', 1)"))
            raise RuntimeError("boom")
        with st.session() as s:
            assert s.get(SchemaVersion, "tmp") is None
