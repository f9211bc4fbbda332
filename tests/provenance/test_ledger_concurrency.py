"""Two writer processes append at once: nothing is lost and the chain stays valid."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from poisonguard.provenance import add_source, read_entries, record_scan, verify_ledger, add_version
from poisonguard.provenance import list_sources
from poisonguard.store import open_store

N_PER_WORKER = 15


def _writer(db: str, key: str, tag: str, start, errors) -> None:  # runs in a child process
    try:
        start.wait(30)
        with open_store(db) as st:
            for i in range(N_PER_WORKER):
                if i % 3 == 0:
                    add_source(st, f"{tag}-{i}", kind="user-generated", key=key)
                else:
                    record_scan(st, "train", {"n_flagged": 1, "n_rows": 10, "writer": tag, "i": i},
                                {"feed": (1, 10)}, key=key)
    except BaseException as exc:  # report to the parent
        errors.put(f"{tag}: {exc!r}")
        raise


def test_two_processes_append_concurrently(store, key, tmp_path, table):
    table.to_csv(tmp_path / "t.csv", index=False)
    add_version(store, tmp_path / "t.csv", name="train", source="feed", key=key)
    n0 = len(read_entries(store))
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(store.path), key.path, tag, start, errors)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert not any(p.is_alive() for p in procs)
    errs = []
    while not errors.empty():
        errs.append(errors.get())
    assert errs == [] and all(p.exitcode == 0 for p in procs)
    entries = read_entries(store)
    assert len(entries) == n0 + 2 * N_PER_WORKER
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    scans = [e for e in entries if e.kind == "scan"]
    assert sorted((e.payload["summary"]["writer"], e.payload["summary"]["i"]) for e in scans) == sorted(
        (t, i) for t in "ab" for i in range(N_PER_WORKER) if i % 3)
    feed = next(s for s in list_sources(store) if s.name == "feed")
    assert (feed.score.flagged, feed.score.total) == (len(scans), 10 * len(scans))
    report = verify_ledger(store, key)
    assert report.ok, report.lines()


def _init_worker(db: str, key: str, start, results) -> None:  # runs in a forked child
    from poisonguard.provenance import init_ledger

    try:
        with open_store(db, create=True) as st:
            start.wait(30)
            results.put("created" if init_ledger(st, key) is not None else "existed")
    except BaseException as exc:  # report to the parent
        results.put(repr(exc))


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_init_ledger_writes_one_genesis(tmp_path, key, round_):
    """Issue 8, item 11: the genesis check ran outside the write lock, so two inits could both write."""
    ctx = mp.get_context("fork")
    start = ctx.Event()
    results = ctx.Queue()
    db = str(tmp_path / "fresh.db")
    procs = [ctx.Process(target=_init_worker, args=(db, key.path, start, results)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["created", "existed", "existed", "existed"], outcomes
    with open_store(db) as st:
        assert [e.kind for e in read_entries(st)] == ["init"]
        assert verify_ledger(st, key).ok


def test_init_with_another_key_is_refused(store, key, tmp_path):
    """Issue 8, item 5: an initialised ledger does not quietly accept `init` with a different key."""
    from poisonguard.errors import IntegrityError
    from poisonguard.provenance import generate_key, init_ledger

    assert init_ledger(store, key) is None  # same key: already initialised, nothing written
    other = generate_key(tmp_path / "other.key", alg="hmac")
    with pytest.raises(IntegrityError, match=f"key id {key.key_id}.*key id {other.key_id}"):
        init_ledger(store, other)
