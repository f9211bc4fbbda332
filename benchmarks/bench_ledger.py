"""Benchmark of the provenance ledger on a 1M x 20 table.

Measures fingerprinting (vs ``sha256sum`` of the same file), ``ledger add``, detection of
a single changed cell by ``verify`` (named by row), ``ledger diff`` of two 1M-row
versions, and peak memory. Writes ``benchmarks/results/ledger.json`` and ``.md``.

    python benchmarks/bench_ledger.py [--rows 1000000] [--cols 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from poisonguard.provenance import (
    add_source, add_version, diff_versions, fingerprint_frame, generate_key, init_ledger, verify_ledger,
)
from poisonguard.store import open_store

RESULTS = Path(__file__).resolve().parent / "results"


def make_table(n: int, n_cols: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {"id": np.arange(n)}
    for j in range(n_cols - 1):
        kind = j % 4
        if kind == 0:
            cols[f"i{j}"] = rng.integers(0, 1_000_000, n)
        elif kind == 1:
            cols[f"f{j}"] = rng.normal(size=n)
        elif kind == 2:
            cols[f"s{j}"] = rng.choice(np.array(["alpha", "beta", "gamma", "délta", "epsilon"]), n)
        else:
            cols[f"r{j}"] = np.round(rng.normal(size=n) * 100, 2)
    return pd.DataFrame(cols)


def timed(fn):  # noqa: ANN001, ANN201
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def sha256sum_seconds(path: Path) -> float:
    exe = shutil.which("sha256sum")
    if exe is None:  # pragma: no cover - not on this platform
        import hashlib

        _, s = timed(lambda: hashlib.sha256(path.read_bytes()).hexdigest())
        return s
    _, s = timed(lambda: subprocess.run([exe, str(path)], check=True, capture_output=True))
    return s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=20)
    args = ap.parse_args()
    n, c = args.rows, args.cols
    res: dict[str, object] = {"rows": n, "cols": c, "cpus": os.cpu_count(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="pg-bench-ledger-") as tmp:
        tmp_p = Path(tmp)
        df, t_gen = timed(lambda: make_table(n, c))
        csv, pq1 = tmp_p / "v1.csv", tmp_p / "v1.parquet"
        df.to_csv(csv, index=False)
        df.to_parquet(pq1, index=False)
        res["csv_mb"] = round(csv.stat().st_size / 2**20, 1)
        res["parquet_mb"] = round(pq1.stat().st_size / 2**20, 1)
        # fingerprint of the in-memory table (median of 3) vs sha256sum of the CSV file
        times, cpu = [], []
        for _ in range(3):
            c0 = time.process_time()
            fp, t = timed(lambda: fingerprint_frame(df))
            times.append(t)
            cpu.append(time.process_time() - c0)
        res["fingerprint_s"] = round(float(np.median(times)), 2)
        res["fingerprint_cpu_s"] = round(float(np.median(cpu)), 2)
        sha, sha_cpu = [], []
        for _ in range(3):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            sha.append(sha256sum_seconds(csv))
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            sha_cpu.append((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime))
        res["sha256sum_csv_s"] = round(float(np.median(sha)), 3)
        res["sha256sum_csv_cpu_s"] = round(float(np.median(sha_cpu)), 3)
        res["fingerprint_vs_sha256sum"] = round(res["fingerprint_s"] / res["sha256sum_csv_s"], 1)
        res["load_avg_1min"] = round(os.getloadavg()[0], 1)
        csv_df, t_csv = timed(lambda: pd.read_csv(csv))
        res["csv_parquet_digest_equal"] = fingerprint_frame(csv_df).digest == fp.digest
        del csv_df
        # ledger add (load + file hash + fingerprint + signed entry + 16 MB of row hashes)
        key = generate_key(tmp_p / "k.key")
        store = open_store(tmp_p / "pg.db", create=True)
        init_ledger(store, key)
        add_source(store, "vendor-feed", kind="vendor", key=key)
        v1, t_add = timed(lambda: add_version(store, pq1, name="big", source="vendor-feed", key=key))
        res["ledger_add_parquet_s"] = round(t_add, 2)
        # one changed cell: verify must name the row
        row = int(np.random.default_rng(1).integers(0, n))
        df2 = df.copy()
        df2.iloc[row, 3] = df2.iloc[row, 3] + 1e-9 if df2.dtypes.iloc[3].kind == "f" else df2.iloc[row, 3]
        if df2.iloc[row].equals(df.iloc[row]):
            df2.loc[row, "i0"] = int(df2.loc[row, "i0"]) + 1
        pq2 = tmp_p / "v2.parquet"
        df2.to_parquet(pq2, index=False)
        del df2
        rep, t_verify = timed(lambda: verify_ledger(store, key, version=v1.version_id, path=pq2, record=False))
        named = rep.data.diff.changed_new.tolist()
        res["changed_row"] = row
        res["verify_named_rows"] = named
        res["verify_detected"] = (not rep.ok) and named == [row]
        res["verify_message"] = rep.lines()[0] if rep.lines() else ""
        res["verify_s"] = round(t_verify, 2)
        # diff of two 1M-row versions: the first 1000 rows removed, 1000 new rows added
        df3 = pd.concat([df.iloc[1000:], make_table(1000, c, seed=7).assign(id=np.arange(n, n + 1000))],
                        ignore_index=True)
        pq3 = tmp_p / "v3.parquet"
        df3.to_parquet(pq3, index=False)
        del df3
        add_version(store, pq3, name="big", source="vendor-feed", parent=v1.version_id, key=key)
        (a, b, d), t_diff = timed(lambda: diff_versions(store, "big@1", "big@2"))
        res["diff_s"] = round(t_diff, 2)
        res["diff_counts"] = {"changed": d.n_changed, "added": int(d.added.size), "removed": int(d.removed.size)}
        from poisonguard.cli import main as cli_main

        _, t_cli = timed(lambda: cli_main(["ledger", "diff", "big@1", "big@2", "--db", str(tmp_p / "pg.db"),
                                           "--out", str(tmp_p / "diff.csv")]))
        res["ledger_diff_cli_s"] = round(t_cli, 2)
        store.dispose()
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    rows = [
        ("table", f"{n:,} rows x {c} cols (CSV {res['csv_mb']} MB, Parquet {res['parquet_mb']} MB)", ""),
        ("fingerprint (in memory)", f"{res['fingerprint_s']} s wall, {res['fingerprint_cpu_s']} s CPU",
         "target <= 10 s"),
        ("sha256sum of the CSV", f"{res['sha256sum_csv_s']} s wall, {res['sha256sum_csv_cpu_s']} s CPU", ""),
        ("fingerprint / sha256sum", f"{res['fingerprint_vs_sha256sum']}x", ""),
        ("CSV and Parquet digests equal", str(res["csv_parquet_digest_equal"]), ""),
        ("ledger add (Parquet, end to end)", f"{res['ledger_add_parquet_s']} s", ""),
        ("verify, one changed cell", f"{res['verify_s']} s; detected={res['verify_detected']}",
         f"\"{res['verify_message']}\""),
        ("diff of two versions (library, stored hashes)", f"{res['diff_s']} s", "target <= 15 s"),
        ("ledger diff CLI (incl. loading both files, CSV out)", f"{res['ledger_diff_cli_s']} s",
         f"{res['diff_counts']}"),
        ("peak RSS", f"{res['peak_rss_mb']:.0f} MB", ""),
        ("machine load (1-min average, shared)", str(res["load_avg_1min"]), f"{res['cpus']} CPUs"),
    ]
    md = ["| measure | value | note |", "|---|---|---|"] + [f"| {a} | {b} | {c_} |" for a, b, c_ in rows]
    text = "\n".join(md)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ledger.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "ledger.md").write_text(f"# Ledger benchmark ({os.cpu_count()} CPUs)\n\n{text}\n")


if __name__ == "__main__":
    main()
