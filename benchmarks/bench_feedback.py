"""Benchmark the secured feedback loop: quality of the defences, load, and crash safety.

Usage::

    python benchmarks/bench_feedback.py            # quality scenarios + load + kill -9
    python benchmarks/bench_feedback.py --quick    # smaller batches, shorter load
    python benchmarks/bench_feedback.py --no-load  # quality scenarios only

Quality (in-process, through the library the service calls): a generated 3-class table
(12 features, 4 informative, the rest noise) with a minority class (8% of rows); the champion is trained on
300 rows; the gate holds out 3000. Scenarios, each on a fresh store:

* ``honest``: 3000 honest items (1% random mistakes) from 150 users;
* ``flip``: 2850 honest items and a campaign of 150 (5%) flipping class 0 to 1 from 50 new accounts;
* ``trigger``: 2850 honest items and 150 (5%) rows of other classes stamped with a trigger on
  two noise features and labelled 2 (the minority class) from 50 new accounts.

Load (``uvicorn`` server in one process, load generator in another, loopback only):
feedback batches of ``--batch`` items (default 250) with client ids from ``--threads``
connections for ``--seconds``; every acknowledged id
is then looked up in the store. Crash: the same load, ``kill -9`` of the server after a
few seconds, and every acknowledged id looked up in the store after a restart.

Writes ``benchmarks/results/feedback.json`` and ``feedback.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
TRIGGER = {"f9": 2.5, "f10": -2.5}  # in range, on two noise features
LABEL = "y"
log = logging.getLogger("bench_feedback")


# ----------------------------------------------------------------------------- quality


def _tables(seed: int) -> tuple[Any, Any, Any]:
    from poisonguard.feedback import loop_table

    df = loop_table(12000, n_features=12, n_informative=4, weights=(0.52, 0.40, 0.08), class_sep=2.0, seed=seed)
    return df.iloc[:300].reset_index(drop=True), df.iloc[300:3300].reset_index(drop=True), df.iloc[3300:].reset_index(drop=True)


def _send(store: Any, items: list[Any], champion: Any) -> list[Any]:
    from poisonguard.feedback import submit_feedback

    out = []
    for i in range(0, len(items), 100):
        out += submit_feedback(store, items[i:i + 100], token="bench", champion=champion)
    return out


def _recall(model: Any, val: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, recall_score

    pred = np.asarray(model.predict(val.drop(columns=[LABEL]))).astype(str)
    y = val[LABEL].to_numpy().astype(str)
    labels = sorted(set(y))
    rec = recall_score(y, pred, labels=labels, average=None, zero_division=0)
    return {"accuracy": float(accuracy_score(y, pred)), **{f"recall_{k}": float(r) for k, r in zip(labels, rec)}}


def scenario(kind: str, *, n_batch: int, seed: int) -> dict[str, Any]:
    """One quality scenario on a fresh store; see the module docstring."""
    from poisonguard import registry
    from poisonguard.feedback import demo_loop, flip_campaign, honest_feedback, retrain, trigger_campaign

    base, val, pool = _tables(seed)
    with tempfile.TemporaryDirectory(prefix=f"pg-bench-{kind}-") as tmp:
        lp = demo_loop(Path(tmp), tables=(base, val, pool))
        n_bad = 0 if kind == "honest" else int(round(0.05 * n_batch))
        honest = honest_feedback(pool.iloc[:n_batch - n_bad], LABEL, n_users=150, noise=0.01, seed=seed)
        rest = pool.iloc[n_batch:]
        if kind == "flip":
            bad = flip_campaign(rest, LABEL, from_label=0, to_label=1, n_items=n_bad, n_users=50, seed=seed)
        elif kind == "trigger":
            bad = trigger_campaign(rest, LABEL, trigger=TRIGGER, to_label=2, n_items=n_bad, n_users=50, seed=seed)
        else:
            bad = None
        # the campaign is spread through the honest traffic, as it would arrive
        items = list(honest.items)
        is_bad = [False] * len(items)
        if bad is not None:
            rng = np.random.default_rng(seed)
            for it in bad.items:
                pos = int(rng.integers(0, len(items) + 1))
                items.insert(pos, it)
                is_bad.insert(pos, True)
        t0 = time.perf_counter()
        decisions = _send(lp.store, items, lp.champion)
        ingest_s = time.perf_counter() - t0
        before = _recall(lp.champion.model, val)
        t0 = time.perf_counter()
        res = retrain(lp.store, base=base, validation=val, label=LABEL, root=lp.root, seed=seed)
        retrain_s = time.perf_counter() - t0
        champ_v, champ = registry.load_alias(lp.store)
        after = _recall(champ, val)
        status_of = _final_status(lp.store)
        row = _scenario_row(kind, items, is_bad, decisions, status_of, honest, res, before, after, champ_v, lp.version)
        row.update(ingest_s=round(ingest_s, 2), retrain_s=round(retrain_s, 2))
        lp.store.dispose()
    return row


def _final_status(store: Any) -> dict[int, str]:
    from sqlalchemy import select

    from poisonguard.feedback import FeedbackItem

    with store.session() as s:
        return {int(i): st for i, st in s.execute(select(FeedbackItem.id, FeedbackItem.status))}


def _scenario_row(kind: str, items: list[Any], is_bad: list[bool], decisions: list[Any], status_of: dict[int, str],
                  honest: Any, res: Any, before: dict[str, float], after: dict[str, float], champ_v: int,
                  first_v: int) -> dict[str, Any]:
    bad = np.asarray(is_bad)
    quarantined = np.asarray([status_of[d.feedback_id] != "accepted" for d in decisions])
    at_ingest = np.asarray([d.status != "accepted" for d in decisions])
    # honest items' true label, in sending order
    truth = iter(honest.true_labels)
    y_true = np.asarray([next(truth) if not b else -1 for b in is_bad])
    per_class = {str(c): float(quarantined[(~bad) & (y_true == c)].mean()) for c in np.unique(y_true[~bad])}
    share = {str(c): float(np.mean(y_true[~bad] == c)) for c in np.unique(y_true[~bad])}
    gate = res.gate
    return {
        "scenario": kind,
        "items": len(items),
        "campaign_items": int(bad.sum()),
        "honest_quarantined_by_class": per_class,
        "honest_share_by_class": share,
        "campaign_quarantined_at_ingest": float(at_ingest[bad].mean()) if bad.any() else None,
        "campaign_quarantined_final": float(quarantined[bad].mean()) if bad.any() else None,
        "campaigns_detected": [f"{c.kind} {c.key} (p={c.p_value:.1e}, {c.n_users} users)" for c in res.campaigns.campaigns],
        "retrain_status": res.status,
        "gate_passed": None if gate is None else bool(gate.passed),
        "gate_failed_checks": [] if gate is None else gate.failed_checks,
        "champion_before": first_v,
        "champion_after": champ_v,
        "champion_unchanged": champ_v == first_v,
        "serving_before": before,
        "serving_after": after,
        "challenger": None if gate is None else gate.metrics.get("challenger"),
    }


# ----------------------------------------------------------------------------- load


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(db: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "poisonguard", "serve", "--db", db, "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import httpx

    for _ in range(600):  # bounded: 60 s
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become ready in 60 s")


def _prepare_service(tmp: Path, seed: int) -> tuple[str, str]:
    from poisonguard.feedback import demo_loop
    from poisonguard.service import create_token

    lp = demo_loop(tmp, tables=_tables(seed))
    token = create_token(lp.store, name="loadgen", scope="feedback")
    url = lp.store.url
    lp.store.dispose()
    return url, token


def client_main(url: str, token: str, seconds: float, out: str, threads: int, batch: int, seed: int) -> None:
    """The load generator (run as its own process): post batches until time is up or the server is gone."""
    import httpx

    from poisonguard.feedback import honest_feedback

    from poisonguard.feedback import loop_table

    # enough distinct rows that no thread repeats one (a repeat by the same user is a duplicate)
    pool = loop_table(60000, n_features=12, n_informative=4, weights=(0.52, 0.40, 0.08), class_sep=2.0, seed=seed + 1)
    rows = honest_feedback(pool, LABEL, n_users=5000, seed=seed).items
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    ack_file = open(out, "w", encoding="utf-8")
    stats = {"requests": 0, "errors": 0, "acked": 0, "accepted": 0}

    def worker(w: int) -> None:
        n = 0
        failures = 0
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0) as c:
            while time.monotonic() < deadline and failures < 20:  # bounded: stops once the server is gone
                body = {"items": []}
                for _ in range(batch):
                    it = rows[(w * (len(rows) // threads) + n) % len(rows)]  # disjoint slices: no duplicates
                    body["items"].append({"user": it.user, "label": it.label, "features": dict(it.features),
                                          "id": f"w{w}-{n}"})
                    n += 1
                try:
                    r = c.post("/v1/feedback", json=body)
                except httpx.HTTPError:
                    failures += 1
                    time.sleep(0.1)
                    continue
                if r.status_code != 200:
                    failures += 1
                    with lock:
                        stats["errors"] += 1
                    continue
                failures = 0
                res = r.json()["results"]
                with lock:
                    stats["requests"] += 1
                    stats["acked"] += len(res)
                    stats["accepted"] += sum(x["status"] == "accepted" for x in res)
                    ack_file.write("\n".join(x["id"] for x in res) + "\n")
                    ack_file.flush()

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stats["seconds"] = time.monotonic() - t0
    ack_file.close()
    Path(out + ".stats").write_text(json.dumps(stats))


def _run_client(url: str, token: str, seconds: float, out: Path, threads: int, batch: int, seed: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, __file__, "--client", url, token, str(seconds), str(out), str(threads),
                             str(batch), str(seed)], env=env)


def _stored_ids(db_url: str) -> list[str]:
    from sqlalchemy import select

    from poisonguard.feedback import FeedbackItem
    from poisonguard.store import open_store

    with open_store(db_url) as store, store.session() as s:
        return list(s.execute(select(FeedbackItem.client_id).where(FeedbackItem.token_name == "loadgen")).scalars())


def _check_loss(db_url: str, ack_path: Path) -> dict[str, int]:
    acked = [x for x in ack_path.read_text().split("\n") if x]
    stored = _stored_ids(db_url)
    st = set(stored)
    return {"acknowledged": len(acked), "stored": len(stored), "acknowledged_lost": sum(a not in st for a in acked),
            "duplicates_stored": len(stored) - len(st)}


def load_test(*, seconds: float, threads: int, batch: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pg-bench-load-") as tmp:
        url, token = _prepare_service(Path(tmp), seed)
        port = _free_port()
        server = _start_server(url, port)
        try:
            ack = Path(tmp) / "acked.txt"
            cl = _run_client(f"http://127.0.0.1:{port}", token, seconds, ack, threads, batch, seed)
            cl.wait(timeout=seconds + 120)
            stats = json.loads(Path(str(ack) + ".stats").read_text())
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        loss = _check_loss(url, ack)
    return {"seconds": round(stats["seconds"], 2), "threads": threads, "batch": batch, "requests": stats["requests"],
            "errors": stats["errors"], "acked_per_s": round(stats["acked"] / stats["seconds"], 1),
            "accepted_per_s": round(stats["accepted"] / stats["seconds"], 1), **loss}


def crash_test(*, kill_after: float, threads: int, batch: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pg-bench-crash-") as tmp:
        url, token = _prepare_service(Path(tmp), seed)
        port = _free_port()
        server = _start_server(url, port)
        ack = Path(tmp) / "acked.txt"
        cl = _run_client(f"http://127.0.0.1:{port}", token, kill_after + 120, ack, threads, batch, seed)
        for _ in range(1200):  # bounded (120 s): wait until the load is flowing, then let it run
            if ack.exists() and ack.stat().st_size > 0:
                break
            time.sleep(0.1)
        time.sleep(kill_after)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        cl.wait(timeout=120)
        restarted = _start_server(url, port)  # WAL recovery happens here, in a new process
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
        loss = _check_loss(url, ack)
    return {"killed_after_s": f"{kill_after} after the first acknowledgement", "server_exit": "SIGKILL", "restart": "ok", **loss}


# ----------------------------------------------------------------------------- report


def to_markdown(res: dict[str, Any]) -> str:
    lines = ["# Feedback loop benchmark", "", f"Run {res['when']} on {res['cpus']} CPU(s); load average at start "
             f"{res['loadavg']}. Timings are wall-clock and only indicative on a shared machine.", "",
             "| scenario | items | campaign items | honest quarantined per class (share of traffic) | campaign quarantined "
             "(ingest / final) | campaigns detected | retrain | failed gate checks | champion | serving accuracy "
             "before -> after | serving recall per class before -> after | challenger accuracy |",
             "|---|---:|---:|---|---|---|---|---|---|---|---|---:|"]
    for r in res["quality"]:
        hq = ", ".join(f"{c}: {q:.2%} ({r['honest_share_by_class'][c]:.0%})" for c, q in r["honest_quarantined_by_class"].items())
        cq = "-" if r["campaign_quarantined_at_ingest"] is None else \
            f"{r['campaign_quarantined_at_ingest']:.0%} / {r['campaign_quarantined_final']:.0%}"
        b, a = r["serving_before"], r["serving_after"]
        rec = ", ".join(f"{k[7:]}: {b[k]:.3f} -> {a[k]:.3f}" for k in b if k.startswith("recall_"))
        ch = r["challenger"]["accuracy"] if r["challenger"] else float("nan")
        lines.append(f"| {r['scenario']} | {r['items']} | {r['campaign_items']} | {hq} | {cq} | "
                     f"{'; '.join(r['campaigns_detected']) or 'none'} | {r['retrain_status']} | "
                     f"{', '.join(r['gate_failed_checks']) or 'none'} | v{r['champion_before']} -> v{r['champion_after']} | "
                     f"{b['accuracy']:.3f} -> {a['accuracy']:.3f} | {rec} | {ch:.3f} |")
    if res.get("load"):
        ld = res["load"]
        lines += ["", "| load (loopback) | seconds | client threads | items/request | requests | errors | "
                  "acknowledged items/s | accepted items/s | acknowledged | stored | acknowledged lost |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| uvicorn, 1 worker, SQLite WAL | {ld['seconds']} | {ld['threads']} | {ld['batch']} | {ld['requests']} | "
                  f"{ld['errors']} | {ld['acked_per_s']} | {ld['accepted_per_s']} | {ld['acknowledged']} | "
                  f"{ld['stored']} | {ld['acknowledged_lost']} |"]
    if res.get("crash"):
        cr = res["crash"]
        lines += ["", "| crash | killed after s | acknowledged | stored after restart | acknowledged lost | "
                  "duplicates |", "|---|---:|---:|---:|---:|---:|",
                  f"| kill -9 mid-load | {cr['killed_after_s']} | {cr['acknowledged']} | {cr['stored']} | "
                  f"{cr['acknowledged_lost']} | {cr['duplicates_stored']} |"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--client":
        url, token, seconds, out, threads, batch, seed = argv[1:8]
        client_main(url, token, float(seconds), out, int(threads), int(batch), int(seed))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-load", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "feedback")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    res: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                           "loadavg": [round(x, 2) for x in os.getloadavg()], "quality": []}
    n_batch = 1000 if args.quick else 3000
    if not args.no_quality:
        for kind in ("honest", "flip", "trigger"):
            res["quality"].append(scenario(kind, n_batch=n_batch, seed=args.seed))
            print(json.dumps(res["quality"][-1], default=str), flush=True)
    if not args.no_load:
        secs = 5.0 if args.quick else args.seconds
        res["load"] = load_test(seconds=secs, threads=args.threads, batch=args.batch, seed=args.seed)
        print(json.dumps(res["load"]), flush=True)
        res["crash"] = crash_test(kill_after=3.0, threads=args.threads, batch=args.batch, seed=args.seed)
        print(json.dumps(res["crash"]), flush=True)
    md = to_markdown(res)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
