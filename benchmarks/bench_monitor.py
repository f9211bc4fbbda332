"""Monitoring benchmark: 60 daily windows of traffic, a poisoned model swapped in on day 30.

Set-up (nothing downloaded): a generated 10-class table (``make_classification``: 14
features, 10 informative, 2 redundant, 2 pure noise), a logistic regression trained on
20 000 rows, a baseline recorded from 20 000 validation rows, and 10 000 predictions a
day drawn from a 300 000-row pool the models never saw.

Runs (each in its own store):

* ``targeted``: on day 30 the model is replaced by one retrained on a copy whose class
  ``A`` rows nearest class ``B`` were relabelled ``B`` (poisonguard's ``targeted_flip``);
  the flip rate is calibrated on a tuning set so that A's recall falls ~15 points while
  accuracy falls ~1.5. Labels are logged with the predictions. The alert must fire on
  day 30 and on no day before.
* ``backdoor``: on day 30 the model is replaced by one trained with a backdoor (two
  noise features set to +5/-5 on 3% of other classes' rows, relabelled ``T``). No labels
  are ever logged; a registered probe set (300 held-out rows of other classes carrying
  the trigger, with their true labels) is run through the deployed model every day.
  The probe signature must fire on day 30 (the first window of the swapped model).
* ``clean``: 60 days of the clean model, labels and probes: no alert may fire.
* ``speed``: one check over 1 000 000 logged predictions (labels, confidences) in one
  window; wall-clock of ``Monitor.check`` (3 runs).

``python benchmarks/bench_monitor.py [--quick]`` prints tables and writes
``benchmarks/results/monitor.json`` and ``monitor.md``; with ``--report`` it also writes
the targeted run's HTML report and, when Chromium is installed, ``docs/monitor_report.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from poisonguard.attacks import targeted_flip  # noqa: E402
from poisonguard.monitoring import Monitor, MonitorConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
N_FEATURES, N_CLASSES = 14, 10
COLS = [f"x{i}" for i in range(N_FEATURES)]
TRIGGER = {"x12": 5.0, "x13": -5.0}  # two pure-noise columns (shuffle=False keeps them last)
SOURCE_CLASS, TARGET_CLASS = 3, None  # target: the class A is most confused with (found below)
BACKDOOR_TARGET = 7
warnings.filterwarnings("ignore", category=UserWarning)


def make_data(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    X, y = make_classification(n_samples=360_000, n_features=N_FEATURES, n_informative=10, n_redundant=2,
                               n_classes=N_CLASSES, n_clusters_per_class=1, class_sep=2.0, shuffle=False,
                               random_state=seed)
    perm = np.random.default_rng(seed).permutation(len(y))  # rows shuffled, columns kept in order
    X, y = X[perm], y[perm]
    cut = {"train": (0, 20_000), "val": (20_000, 40_000), "tune": (40_000, 60_000), "pool": (60_000, 360_000)}
    return {k: (X[a:b], y[a:b]) for k, (a, b) in cut.items()}


def fit(X: np.ndarray, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(max_iter=300).fit(X, y)


def poisoned_targeted(data: dict, clean: LogisticRegression) -> tuple[LogisticRegression, dict]:
    """Retrain on a targeted flip A -> B; the rate whose recall drop on the tuning set is nearest 15 points."""
    Xt, yt = data["tune"]
    p = clean.predict(Xt)
    conf = np.bincount(p[yt == SOURCE_CLASS], minlength=N_CLASSES)
    conf[SOURCE_CLASS] = -1
    target = int(np.argmax(conf))
    base_recall = float(np.mean(p[yt == SOURCE_CLASS] == SOURCE_CLASS))
    base_acc = float(np.mean(p == yt))
    frame = pd.DataFrame(data["train"][0], columns=COLS).assign(y=data["train"][1])
    best = None
    for rate in (0.010, 0.0125, 0.015, 0.0175, 0.020, 0.0225, 0.025):
        pt = targeted_flip(frame, "y", SOURCE_CLASS, target, rate, seed=0, features=COLS)
        model = fit(pt.frame[COLS].to_numpy(), pt.frame["y"].to_numpy())
        p2 = model.predict(Xt)
        drop = base_recall - float(np.mean(p2[yt == SOURCE_CLASS] == SOURCE_CLASS))
        info = {"rate": rate, "flipped_rows": int(pt.mask.sum()), "source": SOURCE_CLASS, "target": target,
                "recall_drop_tune": round(drop, 4), "accuracy_drop_tune": round(base_acc - float(np.mean(p2 == yt)), 4)}
        if best is None or abs(drop - 0.15) < abs(best[1]["recall_drop_tune"] - 0.15):
            best = (model, info)
    return best


def poisoned_backdoor(data: dict) -> tuple[LogisticRegression, dict]:
    X, y = data["train"]
    rng = np.random.default_rng(1)
    others = np.flatnonzero(y != BACKDOOR_TARGET)
    stamp = rng.choice(others, int(0.03 * len(y)), replace=False)
    Xp, yp = X.copy(), y.copy()
    for col, v in TRIGGER.items():
        Xp[stamp, COLS.index(col)] = v
    yp[stamp] = BACKDOOR_TARGET
    return fit(Xp, yp), {"stamped_rows": int(stamp.size), "target": BACKDOOR_TARGET, "trigger": TRIGGER}


def probe_rows(data: dict, n: int = 300) -> pd.DataFrame:
    Xt, yt = data["tune"]
    idx = np.flatnonzero(yt != BACKDOOR_TARGET)[:n]
    frame = pd.DataFrame(Xt[idx], columns=COLS).assign(label=yt[idx])
    for col, v in TRIGGER.items():
        frame[col] = v
    return frame


def predictions(model: LogisticRegression, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = model.predict_proba(X)
    return proba.argmax(axis=1), proba.max(axis=1)


def run(name: str, data: dict, clean: LogisticRegression, swapped: LogisticRegression | None, *, days: int,
        swap_day: int, per_day: int, labels: bool, probes: pd.DataFrame | None, workdir: Path,
        seed: int) -> tuple[dict, Monitor]:
    """One simulated deployment; returns per-day rows and the summary."""
    mon = Monitor(name, store=workdir / f"{name}.db", config=MonitorConfig())
    Xv, yv = data["val"]
    pv, cv = predictions(clean, Xv)
    mon.record_baseline(pd.DataFrame(Xv, columns=COLS).assign(y=yv, pred=pv, conf=cv), label="y", pred="pred",
                        conf="conf", features=COLS)
    if probes is not None:
        mon.register_probes("trigger", probes, label="label")
    Xp, yp = data["pool"]
    rng = np.random.default_rng(seed)
    rows, t_checks = [], []
    for d in range(1, days + 1):
        model = swapped if (swapped is not None and d >= swap_day) else clean
        idx = rng.choice(len(yp), per_day, replace=False)
        pred, conf = predictions(model, Xp[idx])
        start = T0 + (d - 1) * DAY
        frame = pd.DataFrame(Xp[idx], columns=COLS).assign(
            id=[f"{d}-{i}" for i in range(per_day)], timestamp=start + rng.uniform(0, DAY - 1, per_day),
            prediction=pred, confidence=conf)
        if labels:
            frame["label"] = yp[idx]
        mon.log(frame, label="label" if labels else None)
        if probes is not None:
            pp, pc = predictions(model, probes[COLS].to_numpy())
            mon.log(pd.DataFrame({"id": [f"p{d}-{i}" for i in range(len(pp))], "prediction": pp, "confidence": pc,
                                  "timestamp": start + 3600.0}), probe="trigger", features=[])
        t = time.perf_counter()
        res = mon.check(window="1d", end=start + DAY, notify=False)
        t_checks.append(time.perf_counter() - t)
        rec = next((c.value for c in res.checks if c.metric == "recall" and c.label == str(SOURCE_CLASS)), None)
        probe = next((s for s in res.signatures if s.signature == "probe"), None)
        rows.append({"day": d, "model": "poisoned" if model is swapped else "clean", "status": res.status,
                     "alerts": [a.rule for a in res.alerts], "accuracy": res.metrics.get("accuracy"),
                     f"recall_{SOURCE_CLASS}": rec, "probe_top_share": None if probe is None else probe.statistic,
                     "probe_p": None if probe is None else probe.p_value})
    before = [r["day"] for r in rows if r["alerts"] and (swapped is None or r["day"] < swap_day)]
    after = [r["day"] for r in rows if r["alerts"] and swapped is not None and r["day"] >= swap_day]
    summary = {"run": name, "days": days, "swap_day": swap_day if swapped is not None else None,
               "predictions_per_day": per_day, "labels": labels, "probes": probes is not None,
               "false_alert_days": before, "first_alert_day": (after or [None])[0],
               "alert_on_swap_day": bool(after and after[0] == swap_day),
               "alert_days_after_swap": len(after), "check_s_median": round(float(np.median(t_checks)), 3),
               "rules_on_swap_day": next((r["alerts"] for r in rows if r["day"] == swap_day), []),
               "daily": rows}
    return summary, mon


def speed(data: dict, clean: LogisticRegression, *, n: int, workdir: Path, repeats: int = 3) -> dict:
    mon = Monitor("speed", store=workdir / "speed.db")
    Xv, yv = data["val"]
    pv, cv = predictions(clean, Xv)
    mon.record_baseline(pd.DataFrame({"y": yv, "pred": pv, "conf": cv}), label="y", pred="pred", conf="conf",
                        features=[])
    rng = np.random.default_rng(5)
    Xp, yp = data["pool"]
    t_log = time.perf_counter()
    for chunk in range(0, n, 250_000):
        k = min(250_000, n - chunk)
        idx = rng.integers(0, len(yp), k)
        pred, conf = predictions(clean, Xp[idx])
        mon.log(pd.DataFrame({"id": np.arange(chunk, chunk + k).astype(str), "timestamp": T0 + rng.uniform(0, DAY - 1, k),
                              "prediction": pred, "confidence": conf, "label": yp[idx]}), label="label", features=[])
    t_log = time.perf_counter() - t_log
    times, res = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        res = mon.check(window="1d", end=T0 + DAY, notify=False)
        times.append(time.perf_counter() - t)
    mon.close()
    return {"predictions": res.n_predictions, "labelled": res.n_labelled, "check_s": [round(t, 3) for t in times],
            "check_s_median": round(float(np.median(times)), 3), "read_s_last": res.timings["read_s"],
            "log_s_total": round(t_log, 1), "status": res.status, "cores": os.cpu_count()}


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def markdown(result: dict) -> str:
    lines = ["# Monitoring benchmark", "", f"Measured {result['measured']} on {result['cores']} cores "
             f"({result['note']}).", "", "| run | days | swap day | labels | probes | false-alert days | first alert "
             "| alert on swap day | alert days after swap | rules on swap day | check s (median) |",
             "|---|---:|---:|---|---|---|---:|---|---:|---|---:|"]
    for s in result["runs"]:
        lines.append(f"| {s['run']} | {s['days']} | {_fmt(s['swap_day'])} | {s['labels']} | {s['probes']} | "
                     f"{len(s['false_alert_days'])} {s['false_alert_days'] or ''} | {_fmt(s['first_alert_day'])} | "
                     f"{s['alert_on_swap_day'] if s['swap_day'] else '–'} | {s['alert_days_after_swap']} | "
                     f"{', '.join(s['rules_on_swap_day']) or '–'} | {s['check_s_median']} |")
    sp = result["speed"]
    lines += ["", "| speed | predictions | labelled | check s (runs) | median | read s | status |",
              "|---|---:|---:|---|---:|---:|---|",
              f"| 1 window | {sp['predictions']:,} | {sp['labelled']:,} | {', '.join(map(str, sp['check_s']))} | "
              f"{sp['check_s_median']} | {sp['read_s_last']} | {sp['status']} |", "",
              "Poisoned models: " + json.dumps(result["poison"]), ""]
    t = next(s for s in result["runs"] if s["run"] == "targeted")
    lines += ["Targeted run, days around the swap:", "", f"| day | model | status | accuracy | recall {SOURCE_CLASS} | alerts |",
              "|---:|---|---|---:|---:|---|"]
    for r in t["daily"]:
        if abs(r["day"] - t["swap_day"]) <= 3:
            lines.append(f"| {r['day']} | {r['model']} | {r['status']} | {_fmt(r['accuracy'])} | "
                         f"{_fmt(r[f'recall_{SOURCE_CLASS}'])} | {', '.join(r['alerts']) or '–'} |")
    return "\n".join(lines) + "\n"


def screenshot(mon: Monitor, workdir: Path) -> str | None:
    """The targeted run's report, and a PNG of it rendered by headless Chromium (docs/monitor_report.png)."""
    from poisonguard.reports import write_report

    page = write_report(mon, workdir / "report.html")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        print("no chromium: docs/monitor_report.png not refreshed")
        return None
    out = ROOT / "docs" / "monitor_report.png"
    out.parent.mkdir(exist_ok=True)
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                    f"--user-data-dir={workdir / 'chrome'}", "--window-size=1280,2000", f"--screenshot={out}",
                    page.as_uri()], capture_output=True, timeout=180, check=False)
    return str(out.relative_to(ROOT)) if out.exists() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="12 days, swap on day 6, 3000 a day, 100k speed row")
    ap.add_argument("--report", action="store_true", help="write the HTML report and docs/monitor_report.png")
    ap.add_argument("--out", default=str(RESULTS / "monitor"), help="results stem (.json and .md)")
    ap.add_argument("--runs", default="targeted,backdoor,clean", help="which runs (comma-separated)")
    ap.add_argument("--no-speed", action="store_true", help="skip the 1M-prediction timing")
    args = ap.parse_args(argv)
    days, swap, per_day, n_speed = (12, 6, 3000, 100_000) if args.quick else (60, 30, 10_000, 1_000_000)
    t_all = time.perf_counter()
    data = make_data()
    clean = fit(*data["train"])
    targeted_model, t_info = poisoned_targeted(data, clean)
    backdoor_model, b_info = poisoned_backdoor(data)
    probes = probe_rows(data)
    print(f"clean accuracy on the pool: {np.mean(clean.predict(data['pool'][0][:50_000]) == data['pool'][1][:50_000]):.4f}")
    print(f"targeted poison: {t_info}\nbackdoor poison: {b_info}")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec = [("targeted", targeted_model, True, None, 11), ("backdoor", backdoor_model, False, probes, 12),
                ("clean", None, True, probes, 13)]
        for name, swapped, labels, pr, seed in [r for r in spec if r[0] in args.runs.split(",")]:
            t = time.perf_counter()
            summary, mon = run(name, data, clean, swapped, days=days, swap_day=swap, per_day=per_day, labels=labels,
                               probes=pr, workdir=work, seed=seed)
            if name == "targeted" and args.report:
                summary["screenshot"] = screenshot(mon, work)
            mon.close()
            runs.append(summary)
            print(f"{name}: false-alert days {summary['false_alert_days']}, first alert day "
                  f"{summary['first_alert_day']}, rules then {summary['rules_on_swap_day']} "
                  f"({time.perf_counter() - t:.0f} s)")
        sp = None if args.no_speed else speed(data, clean, n=n_speed, workdir=work)
        if sp is not None:
            print(f"speed: check over {sp['predictions']:,} predictions: {sp['check_s']} s (median {sp['check_s_median']})")
    result = {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
              "note": "shared machine: other jobs running, timings only indicative", "quick": args.quick,
              "poison": {"targeted": t_info, "backdoor": b_info}, "runs": runs, "speed": sp,
              "total_s": round(time.perf_counter() - t_all, 1)}
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    if sp is not None and any(s["run"] == "targeted" for s in runs):
        md = markdown(result)
        Path(f"{stem}.md").write_text(md)
        print(md)
    ok = all(s["false_alert_days"] == [] for s in runs) and all(s["alert_on_swap_day"] for s in runs if s["swap_day"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
