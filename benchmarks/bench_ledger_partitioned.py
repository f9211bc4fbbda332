"""Benchmark of ``ledger add`` on a partitioned Parquet dataset: local engine vs Dask (issue 12, item 3).

For each size (default 1M and 10M rows x 32 columns, in partitions of 500k rows) it
writes the partitions, then runs ``poisonguard ledger add DIR`` as a subprocess, once
with ``--engine local`` and once with ``--engine dask`` (a LocalCluster of 2 workers,
started by the command, so its start-up is in the time). The process tree's memory is
sampled every 0.2 s: the peak RSS of the driver, of the largest worker and of the whole
tree. At the smallest size the digest is also compared with the one of a single file
holding the same rows. Writes ``benchmarks/results/ledger_partitioned.json`` and ``.md``.

    python benchmarks/bench_ledger_partitioned.py [--rows 1000000 10000000] [--cols 32]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

RESULTS = Path(__file__).resolve().parent / "results"
PARTITION_ROWS = 500_000


def make_partition(start: int, n: int, n_cols: int, seed: int) -> pd.DataFrame:
    """Rows ``start .. start+n`` of the benchmark table (ints, floats, short text, rounded floats)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {"id": np.arange(start, start + n)}
    words = np.array(["alpha", "beta", "gamma", "délta", "epsilon"])
    for j in range(n_cols - 1):
        kind = j % 4
        if kind == 0:
            cols[f"i{j}"] = rng.integers(0, 1_000_000, n)
        elif kind == 1:
            cols[f"f{j}"] = rng.normal(size=n)
        elif kind == 2:
            cols[f"s{j}"] = rng.choice(words, n)
        else:
            cols[f"r{j}"] = np.round(rng.normal(size=n) * 100, 2)
    return pd.DataFrame(cols)


def write_dataset(folder: Path, n: int, n_cols: int, part_rows: int) -> int:
    folder.mkdir(parents=True)
    k = 0
    for start in range(0, n, part_rows):
        make_partition(start, min(part_rows, n - start), n_cols, seed=k).to_parquet(
            folder / f"part-{k:05d}.parquet", index=False)
        k += 1
    return k


class TreeMemory:
    """Peak RSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.every = every
        self.driver = self.worker = self.total = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                rss = {}
                for p in procs:
                    try:
                        rss[p.pid] = p.memory_info().rss
                    except psutil.Error:
                        pass
                self.driver = max(self.driver, rss.get(self.root.pid, 0))
                others = [v for k, v in rss.items() if k != self.root.pid]
                self.worker = max([self.worker, *others])
                self.total = max(self.total, sum(rss.values()))
            except psutil.Error:
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> TreeMemory:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def run_cli(args: list[str], cwd: Path) -> tuple[float, TreeMemory, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "poisonguard", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "250"})
    with TreeMemory(proc.pid) as mem:
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    return wall, mem, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def one_file_digest(folder: Path) -> str:
    from poisonguard.provenance import fingerprint_frame

    frame = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))], ignore_index=True)
    return fingerprint_frame(frame).digest


def write_results(out: dict[str, object], cols: int, part_rows: int) -> None:
    runs = out["runs"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ledger_partitioned.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# ledger add on a partitioned dataset: local engine vs Dask LocalCluster (2 workers)",
        "",
        f"{cols} columns (ints, floats, text, rounded floats), partitions of {part_rows:,} rows, "
        f"{os.cpu_count()} CPUs shared with other jobs (load average in the table). Each run is "
        "`poisonguard ledger add DIR --engine E` as a subprocess: read, hash, sign, store the row hashes; "
        "the Dask runs include starting and stopping the LocalCluster. RSS sampled every 0.2 s.",
        "",
        "| rows | engine | partitions | wall s | s / 1M rows | peak RSS driver MB | peak RSS largest worker MB "
        "| peak RSS all processes MB | store MB | load before/after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['rows']:,} | {r['engine']} | {r['partitions']} | {r['wall_s']} | {r['s_per_million_rows']} "
                     f"| {r['peak_rss_driver_mb']} | {r['peak_rss_largest_worker_mb']} | {r['peak_rss_tree_mb']} "
                     f"| {r['store_mb']} | {r['load_avg_1min_before']}/{r['load_avg_1min_after']} |")
    lines.append("")
    for c in out.get("checks", []):  # type: ignore[union-attr]
        extra = f", equal to one file's: {c['one_file_digest_equal']}" if "one_file_digest_equal" in c else ""
        lines.append(f"- {c['rows']:,} rows: digests of the engines agree: {c['engines_agree']}{extra}")
    (RESULTS / "ledger_partitioned.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--engines", nargs="+", default=["local", "dask"])
    ap.add_argument("--partition-rows", type=int, default=PARTITION_ROWS)
    ap.add_argument("--tmp", default=None, help="Where to write the partitions [default: system temp].")
    args = ap.parse_args()
    mb = lambda b: round(b / 2**20)  # noqa: E731
    out: dict[str, object] = {"cols": args.cols, "partition_rows": args.partition_rows, "cpus": os.cpu_count(),
                              "python": platform.python_version(), "runs": []}
    runs: list[dict[str, object]] = out["runs"]  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="pg-bench-ledger-part-", dir=args.tmp) as tmp:
        tmp_p = Path(tmp)
        for n in args.rows:
            folder = tmp_p / f"ds-{n}"
            t0 = time.perf_counter()
            n_parts = write_dataset(folder, n, args.cols, args.partition_rows)
            size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
            print(f"{n} rows x {args.cols}: {n_parts} partitions, {mb(size)} MB Parquet, written in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            digests = {}
            for engine in args.engines:
                work = tmp_p / f"ledger-{n}-{engine}"
                work.mkdir()
                for cmd in (["ledger", "init"], ["source", "add", "acme", "--kind", "vendor"]):
                    subprocess.run([sys.executable, "-m", "poisonguard", *cmd], cwd=work, check=True,
                                   capture_output=True)
                load0 = os.getloadavg()[0]
                wall, mem, res = run_cli(["ledger", "add", str(folder), "--name", "big", "--source", "acme",
                                          "--engine", engine], work)
                if res.returncode != 0:
                    raise SystemExit(f"ledger add failed ({engine}, {n}): {res.stderr[-2000:]}")
                m = re.search(r"digest\s+([0-9a-f]{64})", " ".join(res.stdout.split()))
                digests[engine] = m.group(1) if m else None
                db = work / ".poisonguard" / "poisonguard.db"
                row = {"rows": n, "engine": engine, "partitions": n_parts, "parquet_mb": mb(size),
                       "wall_s": round(wall, 1), "s_per_million_rows": round(wall / (n / 1e6), 2),
                       "peak_rss_driver_mb": mb(mem.driver), "peak_rss_largest_worker_mb": mb(mem.worker),
                       "peak_rss_tree_mb": mb(mem.total), "store_mb": mb(db.stat().st_size),
                       "row_hash_mb": mb(16 * n), "load_avg_1min_before": round(load0, 1),
                       "load_avg_1min_after": round(os.getloadavg()[0], 1), "digest": digests[engine]}
                runs.append(row)
                print(json.dumps(row), flush=True)
                write_results(out, args.cols, args.partition_rows)  # after every run: a long run keeps what it has
                shutil.rmtree(work)
            same = len(set(digests.values())) == 1 and None not in digests.values()
            entry = {"rows": n, "engines_agree": same}
            if n == min(args.rows):
                entry["one_file_digest_equal"] = one_file_digest(folder) == next(iter(digests.values()))
            out.setdefault("checks", []).append(entry)  # type: ignore[union-attr]
            print(json.dumps(entry), flush=True)
            write_results(out, args.cols, args.partition_rows)
            shutil.rmtree(folder)
if __name__ == "__main__":
    main()
