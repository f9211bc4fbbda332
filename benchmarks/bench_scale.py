"""Scale benchmark: the local and the Dask scan on 1M-10M x 32 partitioned Parquet tables.

For each size a poisoned table is written as Parquet partitions (``--partition-rows``
each), generated partition by partition so the generator never holds the whole table:

* 1M rows (``--quality-rows``): ``load_dataset("synthetic", n_rows=...)`` with 5% label
  flips and 1% injected outliers (``poisonguard.attacks.poison``), split into partitions;
  both engines scan it and their AUROC and flagged rows are compared;
* larger sizes: the same generative model as ``synthetic`` (sklearn's
  ``make_classification``: 4 classes x 2 Gaussian clusters at hypercube vertices, 16
  informative, 4 redundant and 12 noise columns, class_sep 1.5), with one fixed
  structure and each partition's rows drawn from its own seed, then the same attacks
  per partition.

Each scan runs as the ``poisonguard scan`` CLI in a subprocess; wall time and peak RSS
of the client process and of each Dask worker process (its children) are sampled every
0.5 s with psutil. The Dask engine runs on a ``LocalCluster`` of 2 workers with a
4 GB memory limit each. Engines: ``dask``; ``local`` (the default scan: above
``FIT_SAMPLE_ROWS`` rows it fits on the same stratified sample as the Dask engine);
``local-full`` (``--sample-rows 0``: every detector fitted on every row, the local scan
before the two engines shared the sample), the baseline for quality. Agreement is
reported between dask and local, and between local and local-full. The load average
of the host is recorded before and after each run. Writes
``benchmarks/results/<tag>.{json,md,png}``.

Usage::

    python benchmarks/bench_scale.py --sizes 1000000,2000000,5000000,10000000 --local-sizes 1000000 \
        --local-full-sizes 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from poisonguard.attacks import poison
from poisonguard.datasets import load_dataset

RESULTS = Path(__file__).resolve().parent / "results"
FLIP_RATE, OUTLIER_RATE = 0.05, 0.01
N_FEATURES = 32


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Structure:
    """The fixed part of the generative model (make_classification's clusters and mixing)."""

    centroids: np.ndarray
    mixing: np.ndarray
    redundant: np.ndarray
    permutation: np.ndarray


def make_structure(seed: int, *, n_informative: int = 16, n_redundant: int = 4, n_classes: int = 4,
                   clusters_per_class: int = 2, class_sep: float = 1.5) -> Structure:
    rng = np.random.default_rng(seed)
    n_clusters = n_classes * clusters_per_class
    vertices: set[tuple[int, ...]] = set()
    while len(vertices) < n_clusters:
        vertices.add(tuple(rng.integers(0, 2, n_informative)))
    centroids = np.array(sorted(vertices), dtype=float) * 2 * class_sep - class_sep
    centroids = centroids[rng.permutation(n_clusters)]
    mixing = 2 * rng.random((n_clusters, n_informative, n_informative)) - 1
    redundant = 2 * rng.random((n_informative, n_redundant)) - 1
    return Structure(centroids, mixing, redundant, rng.permutation(N_FEATURES))


def generate_partition(st: Structure, n: int, seed: int, index: int, n_classes: int = 4) -> pd.DataFrame:
    """``n`` clean rows drawn from the structure with their own seed."""
    rng = np.random.default_rng([seed, index])
    k = st.centroids.shape[0]
    cluster = rng.integers(0, k, n)
    n_inf = st.centroids.shape[1]
    X = np.empty((n, N_FEATURES))
    inf = rng.standard_normal((n, n_inf))
    for c in range(k):
        m = cluster == c
        inf[m] = inf[m] @ st.mixing[c] + st.centroids[c]
    X[:, :n_inf] = inf
    X[:, n_inf:n_inf + st.redundant.shape[1]] = inf @ st.redundant
    X[:, n_inf + st.redundant.shape[1]:] = rng.standard_normal((n, N_FEATURES - n_inf - st.redundant.shape[1]))
    X = X[:, st.permutation]
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(N_FEATURES)])
    frame["label"] = (cluster % n_classes).astype(np.int64)
    return frame


def attack(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """5% flips then 1% appended outliers; returns the table and its ground-truth mask."""
    flipped = poison("flip", frame, label="label", rate=FLIP_RATE, seed=seed)
    out = poison("outlier", flipped.frame, label="label", rate=OUTLIER_RATE, seed=seed + 1)
    mask = np.zeros(len(out.frame), dtype=bool)
    mask[: len(frame)] = flipped.mask
    mask[len(frame):] = True
    if out.mask.shape[0] == len(out.frame):
        mask |= out.mask
    return out.frame, mask


def write_dataset(root: Path, n_rows: int, partition_rows: int, seed: int, *, quality: bool) -> np.ndarray:
    """Write the poisoned table as Parquet partitions under ``root``; return the ground-truth mask."""
    root.mkdir(parents=True, exist_ok=True)
    masks = []
    if quality:  # the built-in synthetic table, attacked as a whole, then split
        ds = load_dataset("synthetic", n_rows=n_rows, seed=seed)
        frame, mask = attack(ds.frame, seed)
        del ds
        for i, lo in enumerate(range(0, len(frame), partition_rows)):
            frame.iloc[lo:lo + partition_rows].to_parquet(root / f"part-{i:05d}.parquet", index=False)
        np.save(root.parent / f"{root.name}.mask.npy", mask)
        return mask
    st = make_structure(seed)
    for i, lo in enumerate(range(0, n_rows, partition_rows)):
        part, m = attack(generate_partition(st, min(partition_rows, n_rows - lo), seed, i), seed + 7 * i)
        part.to_parquet(root / f"part-{i:05d}.parquet", index=False)
        masks.append(m)
    mask = np.concatenate(masks)
    np.save(root.parent / f"{root.name}.mask.npy", mask)
    return mask


# ----------------------------------------------------------------------------- runs
@dataclass
class Run:
    engine: str
    rows: int
    seconds: float
    client_peak_gb: float
    worker_peak_gb: float
    workers_seen: int
    exit_code: int
    flagged: int | None = None
    flagged_poisoned: int | None = None
    auroc: float | None = None
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    summary_timings: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def seconds_per_million(self) -> float:
        return self.seconds / (self.rows / 1e6)

    @property
    def precision(self) -> float | None:
        return None if not self.flagged or self.flagged_poisoned is None else self.flagged_poisoned / self.flagged


def _sample_tree(pid: int, stop: threading.Event, peaks: dict[str, Any]) -> None:
    """Peak RSS of the client (``pid``) and of each child process (the Dask workers)."""
    try:
        top = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        try:
            peaks["client"] = max(peaks.get("client", 0), top.memory_info().rss)
            for ch in top.children(recursive=True):
                try:
                    rss = ch.memory_info().rss
                except psutil.Error:
                    continue
                peaks["children"][ch.pid] = max(peaks["children"].get(ch.pid, 0), rss)
        except psutil.Error:
            pass
        stop.wait(0.5)


def run_scan(engine: str, data: Path, rows: int, out_dir: Path, mask: np.ndarray, *, timeout: float,
             memory_limit: str) -> Run:
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = out_dir / f"scores_{engine}_{rows}.parquet"
    cmd = [sys.executable, "-m", "poisonguard", "scan", str(data), "--label", "label", "--json",
           "--out", str(out_dir / f"suspicious_{engine}_{rows}.parquet"), "--scores", str(scores)]
    if engine == "dask":
        cmd += ["--engine", "dask", "--workers", "2", "--memory-limit", memory_limit]
    elif engine == "local-full":
        cmd += ["--sample-rows", "0"]
    load_before = tuple(round(x, 2) for x in os.getloadavg())
    peaks: dict[str, Any] = {"children": {}}
    stop = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = threading.Thread(target=_sample_tree, args=(proc.pid, stop, peaks), daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        code = -9
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    # Dask worker processes are the children holding real memory (the resource tracker is tiny)
    workers = [v for v in peaks["children"].values() if v > 150e6]
    run = Run(engine=engine, rows=rows, seconds=round(seconds, 1), client_peak_gb=round(peaks.get("client", 0) / 1e9, 2),
              worker_peak_gb=round(max(workers, default=0) / 1e9, 2), workers_seen=len(workers), exit_code=code,
              load_before=load_before, load_after=tuple(round(x, 2) for x in os.getloadavg()))
    if code != 0:
        run.note = (stderr.strip().splitlines() or ["(no message)"])[-1][:300]
        return run
    summary = json.loads(stdout)
    run.flagged = int(summary["flagged"])
    run.summary_timings = summary.get("timings_s", {})
    frame = pd.read_parquet(scores, columns=["row", "suspicion", "flagged"])
    from sklearn.metrics import roc_auc_score

    truth = mask[frame["row"].to_numpy()]
    run.auroc = round(float(roc_auc_score(truth, frame["suspicion"].to_numpy())), 5)
    run.flagged_poisoned = int((truth & frame["flagged"].to_numpy()).sum())
    return run


def agreement(out_dir: Path, rows: int, a_engine: str = "local", b_engine: str = "dask") -> dict[str, Any]:
    """Flag agreement between two engines' score files at ``rows`` (``a`` the reference)."""
    a = pd.read_parquet(out_dir / f"scores_{a_engine}_{rows}.parquet", columns=["row", "flagged", "suspicion"]).sort_values("row")
    b = pd.read_parquet(out_dir / f"scores_{b_engine}_{rows}.parquet", columns=["row", "flagged", "suspicion"]).sort_values("row")
    fa, fb = a["flagged"].to_numpy(), b["flagged"].to_numpy()
    both, either = int((fa & fb).sum()), int((fa | fb).sum())
    return {
        "rows": rows, "a": a_engine, "b": b_engine, "flagged_a": int(fa.sum()), "flagged_b": int(fb.sum()),
        "flagged_both": both,
        "jaccard": round(both / max(either, 1), 5),
        "share_of_a_flags_also_b": round(both / max(int(fa.sum()), 1), 5),
        "max_abs_suspicion_diff": round(float(np.abs(a["suspicion"].to_numpy() - b["suspicion"].to_numpy()).max()), 8),
        "row_agreement": round(float((fa == fb).mean()), 6),
        "suspicion_spearman": round(float(pd.Series(a["suspicion"].to_numpy()).corr(pd.Series(b["suspicion"].to_numpy()), method="spearman")), 5),
    }


# ----------------------------------------------------------------------------- report
def write_report(runs: list[Run], agree: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = ["## Scale: local and Dask scan (2-core host, under load)", "",
             f"Table: {meta['description']}", "",
             "| engine | rows | time (s) | s per 1M rows | client peak RSS (GB) | worker peak RSS (GB) | flagged | "
             "precision | AUROC | load avg before / after (1 min) | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in runs:
        prec = f"{r.precision:.4f}" if r.precision is not None else "-"
        lines.append(f"| {r.engine} | {r.rows:,} | {r.seconds:.1f} | {r.seconds_per_million:.1f} | {r.client_peak_gb:.2f} | "
                     f"{r.worker_peak_gb:.2f} | {r.flagged if r.flagged is not None else '-'} | {prec} | "
                     f"{r.auroc if r.auroc is not None else '-'} | {_load(r)} | "
                     f"{r.note or ('exit ' + str(r.exit_code) if r.exit_code else '')} |")
    if agree:
        lines += ["", "### Agreement of the flagged rows (a = reference)", "",
                  "| rows | a | b | flagged a | flagged b | both | Jaccard | a's flags also flagged by b | row agreement | "
                  "suspicion Spearman | max abs suspicion diff |",
                  "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for a in agree:
            lines.append(f"| {a['rows']:,} | {a['a']} | {a['b']} | {a['flagged_a']} | {a['flagged_b']} | {a['flagged_both']} | "
                         f"{a['jaccard']} | {a['share_of_a_flags_also_b']} | {a['row_agreement']} | {a['suspicion_spearman']} | "
                         f"{a['max_abs_suspicion_diff']} |")
    est = local_estimate(runs)
    if est:
        lines += ["", f"Largest table the local scan can do on 24 GB (an estimate, not a run): {est}"]
    return "\n".join(lines) + "\n"


def _load(r: Run) -> str:
    """1-minute load average before / after a run ("-" for runs that did not record it)."""
    if not any(r.load_before) and not any(r.load_after):
        return "-"
    return f"{r.load_before[0]:.1f} / {r.load_after[0]:.1f}"


def local_estimate(runs: list[Run], budget_gb: float = 24.0) -> str:
    """Rows at which the local scan's peak RSS reaches ``budget_gb``, extrapolated linearly from its runs."""
    ok = sorted((r for r in runs if r.engine == "local" and r.exit_code == 0), key=lambda r: r.rows)
    if not ok:
        return ""
    if len(ok) >= 2 and ok[-1].client_peak_gb > ok[0].client_peak_gb:
        slope = (ok[-1].client_peak_gb - ok[0].client_peak_gb) / (ok[-1].rows - ok[0].rows)
        base = ok[0].client_peak_gb - slope * ok[0].rows
        how = f"{slope * 1e6:.3f} GB per million rows from the runs at {ok[0].rows:,} and {ok[-1].rows:,} rows"
    else:
        slope, base = ok[-1].client_peak_gb / ok[-1].rows, 0.0
        how = f"{slope * 1e6:.3f} GB per million rows (peak / rows at {ok[-1].rows:,}, no fixed part assumed)"
    rows = (budget_gb - base) / slope
    return f"about {rows / 1e6:.0f}M rows x 32 ({how})"


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for engine, colour in (("local", "tab:blue"), ("dask", "tab:orange"), ("local-full", "tab:green")):
        ok = sorted((r for r in runs if r.engine == engine and r.exit_code == 0), key=lambda r: r.rows)
        if not ok:
            continue
        x = [r.rows / 1e6 for r in ok]
        ax_t.plot(x, [r.seconds for r in ok], "o-", color=colour, label=engine)
        for r in ok:  # wall times on a shared host mean little without the load they ran under
            ax_t.annotate(f"load {_load(r)}", (r.rows / 1e6, r.seconds), fontsize=7, color=colour,
                          textcoords="offset points", xytext=(4, 4))
        ax_m.plot(x, [r.client_peak_gb for r in ok], "o-", color=colour, label=f"{engine}: client")
        if engine == "dask":
            ax_m.plot(x, [r.worker_peak_gb for r in ok], "s--", color=colour, label="dask: each worker (max)")
    ax_t.set(xlabel="rows (millions) x 32 features", ylabel="wall time (s)",
             title="Scan time (1-min load average before / after each run)")
    ax_m.set(xlabel="rows (millions) x 32 features", ylabel="peak RSS (GB)", title="Peak memory")
    ax_m.axhline(4.0, color="grey", lw=0.8, ls=":", label="worker memory limit")
    for ax in (ax_t, ax_m):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("poisonguard scan: local vs Dask LocalCluster (2 workers), 2-core host under load", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def combine_results(tags: list[str], tag: str) -> int:
    """Merge earlier results (each run keeps the tag it came from) into one table and plot."""
    runs: list[Run] = []
    agree: list[dict[str, Any]] = []
    sources = []
    fields = set(Run.__dataclass_fields__)
    for t in tags:
        data = json.loads((RESULTS / f"{t}.json").read_text())
        sources.append({"tag": t, **data["meta"]})
        for r in data["runs"]:
            run = Run(**{k: v for k, v in r.items() if k in fields})
            run.note = (run.note + "; " if run.note else "") + f"from {t} at {data['meta'].get('commit') or '?'}"
            runs.append(run)
        agree += [a for a in data.get("agreement", []) if "a" in a]  # the current agreement format only
    runs.sort(key=lambda r: (r.engine, r.rows))
    meta = {"description": sources[-1]["description"], "combined_from": sources}
    write_results(tag, runs, agree, meta)
    return 0


def write_results(tag: str, runs: list[Run], agree: list[dict], meta: dict) -> None:
    """Write results/<tag>.json, .md and .png and print the report."""
    (RESULTS / f"{tag}.json").write_text(json.dumps(
        {"meta": meta, "runs": [asdict(r) | {"seconds_per_million": round(r.seconds_per_million, 2)} for r in runs],
         "agreement": agree}, indent=2) + "\n")
    report = write_report(runs, agree, meta)
    (RESULTS / f"{tag}.md").write_text(report)
    plot(runs, RESULTS / f"{tag}.png")
    print(report, flush=True)


def _sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip() and float(s) > 0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,2000000,5000000,10000000", help="rows for the Dask engine")
    ap.add_argument("--local-sizes", default="1000000", help="rows for the local engine")
    ap.add_argument("--local-full-sizes", default="1000000",
                    help="rows for the local engine fitted on every row (--sample-rows 0), the quality baseline")
    ap.add_argument("--quality-rows", type=int, default=1_000_000, help="the size built from load_dataset('synthetic')")
    ap.add_argument("--partition-rows", type=int, default=250_000)
    ap.add_argument("--memory-limit", default="4GB")
    ap.add_argument("--timeout", type=float, default=4 * 3600)
    ap.add_argument("--workdir", default=None, help="where the tables are written (default: a temporary directory)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="scale", help="results/<tag>.{json,md,png}")
    ap.add_argument("--combine", default="",
                    help="run nothing: merge the runs of results/<t>.json for each comma-separated tag t into <tag>")
    args = ap.parse_args(argv)
    if args.combine:
        return combine_results([t.strip() for t in args.combine.split(",") if t.strip()], args.tag)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="pg_scale_"))
    sizes = {"dask": _sizes(args.sizes), "local": _sizes(args.local_sizes), "local-full": _sizes(args.local_full_sizes)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    agree: list[dict[str, Any]] = []
    meta = {
        "description": (f"poisoned 32-column synthetic tables ({FLIP_RATE:.0%} label flips, {OUTLIER_RATE:.0%} injected "
                        f"outliers), Parquet partitions of {args.partition_rows:,} rows; {args.quality_rows:,} rows from "
                        "load_dataset('synthetic'), larger tables from the same generative model partition by partition"),
        "partition_rows": args.partition_rows, "memory_limit_per_worker": args.memory_limit, "workers": 2,
        "cpu_count": os.cpu_count(), "load_note": "2 cores shared with other jobs: wall times are noisy (under load)",
        "commit": subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parent).stdout.strip(),
    }

    def save() -> None:
        write_results(args.tag, runs, agree, meta)

    for rows in sorted(set().union(*sizes.values())):
        data = work / f"data_{rows}"
        mask_path = work / f"data_{rows}.mask.npy"
        t = time.perf_counter()
        mask = np.load(mask_path) if mask_path.exists() else write_dataset(
            data, rows, args.partition_rows, args.seed, quality=rows == args.quality_rows)
        print(f"[{rows:,} rows] table ready in {time.perf_counter() - t:.1f}s ({len(mask):,} rows with the outliers)", flush=True)
        for engine in ("dask", "local", "local-full"):
            if rows not in sizes[engine]:
                continue
            run = run_scan(engine, data, rows, work / "out", mask, timeout=args.timeout, memory_limit=args.memory_limit)
            runs.append(run)
            print(f"[{rows:,} rows] {engine}: {run.seconds:.1f}s exit {run.exit_code} {run.note}", flush=True)
            save()
        ok = {r.engine for r in runs if r.rows == rows and r.exit_code == 0}
        for a, b in (("local", "dask"), ("local-full", "local"), ("local-full", "dask")):
            if a in ok and b in ok:
                agree.append(agreement(work / "out", rows, a, b))
        save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
