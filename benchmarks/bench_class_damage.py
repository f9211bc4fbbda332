"""Class damage of the default flag rule on clean real tables that no benchmark uses, and outlier variants.

Usage::

    python benchmarks/bench_class_damage.py                 # every table x every variant
    python benchmarks/bench_class_damage.py --table iris --table wine
    python benchmarks/bench_class_damage.py --out-dir /tmp/x

For each table (statsmodels, vega_datasets' local data, river's bundled data, sklearn's
bundled data; nothing is downloaded) the default ``poisonguard.scan`` runs on the clean
table and on outlier variants that no detector setting was designed on:

* ``far-1%`` / ``far-10%``: scattered far outliers (random labels) at 1% and 10% of the rows;
* ``far-small-class``: 3% scattered far outliers that all carry the smallest class's label;
* ``scaled-one-class``: 2% of the rows, all drawn from the largest class, rescaled by 10.

Columns: rows flagged (share), class damage (the largest share of one class's clean rows
flagged, with its class code and counts), whether that damage breaks the target
("> 5% of the class and > 1 row": on a class of 20 rows one flagged row is already 5%,
and one row is what any rule that flags at all can take), flag recall and AUROC of the
suspicion on the injected rows. Clean tables must also keep <= 1% of all rows.

Writes ``benchmarks/results/class_damage.json`` and ``class_damage.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from poisonguard.bench import git_head

RESULTS = Path(__file__).resolve().parent / "results"
LABEL = "label"
#: the class-damage target: a class loses more than this share of its clean rows ...
DAMAGE_SHARE = 0.05
#: ... and more than this many rows
DAMAGE_ROWS = 1


def _coded(frame: pd.DataFrame, label: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in drop if c in frame.columns]).dropna(subset=[label])
    classes = np.array(sorted(frame[label].astype(str).unique()))
    codes = np.searchsorted(classes, frame[label].astype(str).to_numpy())
    out = frame.drop(columns=[label]).reset_index(drop=True)
    out.columns = [str(c).replace(" ", "_").replace("/", "_") for c in out.columns]
    out[LABEL] = codes
    return out


def _statsmodels(item: str, label: str, drop: tuple[str, ...] = ()) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import statsmodels.api as sm

        return _coded(getattr(sm.datasets, item).load_pandas().data, label, drop)
    return load


def _vega(item: str, label: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from vega_datasets import local_data

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = local_data(item)  # local_data never downloads
        for col in raw.columns:
            if pd.api.types.is_datetime64_any_dtype(raw[col]):
                raw[col] = raw[col].dt.strftime("%Y-%m-%d").astype(object)
        return _coded(raw, label)
    return load


def _river(item: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import river.datasets as rd

        rows, labels = [], []
        for x, y in getattr(rd, item)():
            rows.append(x)
            labels.append(str(y))
        frame = pd.DataFrame(rows)
        frame.columns = [f"x{c}" for c in frame.columns]
        return _coded(frame.assign(target=labels), "target")
    return load


def _sklearn(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import sklearn.datasets as skd

        bunch = getattr(skd, f"load_{name}")()
        frame = pd.DataFrame(bunch.data, columns=[f"f{i}" for i in range(bunch.data.shape[1])])
        target = bunch.target
        if name == "diabetes":  # a regression target, binned into tertiles
            target = np.searchsorted(np.quantile(target, [1 / 3, 2 / 3]), target)
        return _coded(frame.assign(target=target), "target")
    return load


def _penguins() -> pd.DataFrame:
    from poisonguard.datasets import load_dataset

    return load_dataset("penguins").frame


TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "spector": _statsmodels("spector", "GRADE"),
    "modechoice": _statsmodels("modechoice", "mode", drop=("individual", "choice")),
    "fair": _statsmodels("fair", "rate_marriage"),
    "anes96": _statsmodels("anes96", "PID"),
    "iris": _vega("iris", "species"),
    "cars": _vega("cars", "Origin"),
    "seattle_weather": _vega("seattle-weather", "weather"),
    "penguins": _penguins,
    "phishing": _river("Phishing"),
    "bananas": _river("Bananas"),
    "image_segments": _river("ImageSegments"),
    "digits": _sklearn("digits"),
    "wine": _sklearn("wine"),
    "breast_cancer": _sklearn("breast_cancer"),
    "diabetes_binned": _sklearn("diabetes"),
}


def _far(rate: float) -> Callable[[pd.DataFrame, int], tuple[pd.DataFrame, np.ndarray]]:
    def attack(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        from poisonguard.attacks import inject_outliers

        # at least one row on a tiny table (spector: 32 rows)
        p = inject_outliers(frame, LABEL, max(rate, 1.0 / len(frame)), seed=seed)
        return p.frame, p.mask
    return attack


def _far_small_class(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    from poisonguard.attacks import inject_outliers

    p = inject_outliers(frame, LABEL, 0.03, seed=seed)
    out = p.frame.copy()
    small = frame[LABEL].value_counts().idxmin()
    out.loc[p.mask, LABEL] = small
    return out, p.mask


def _scaled_one_class(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """2% of the rows (at least one), all of the largest class, every numeric feature x 10."""
    rng = np.random.default_rng(seed)
    big = frame[LABEL].value_counts().idxmax()
    num = [c for c in frame.columns if c != LABEL and pd.api.types.is_numeric_dtype(frame[c])]
    ok = (frame[LABEL].to_numpy() == big) & (frame[num].fillna(0).to_numpy() != 0).any(axis=1)
    rows = np.flatnonzero(ok)
    k = min(len(rows), max(1, round(0.02 * len(frame))))
    pick = rng.choice(rows, size=k, replace=False)
    out = frame.copy()
    for c in num:
        vals = out.loc[pick, c] * 10.0
        out[c] = out[c].astype(np.float64) if not pd.api.types.is_integer_dtype(out[c]) else out[c]
        out.loc[pick, c] = vals.round().astype(out[c].dtype) if pd.api.types.is_integer_dtype(out[c]) else vals
    mask = np.zeros(len(frame), dtype=bool)
    mask[pick] = True
    return out, mask


ATTACKS: dict[str, Callable[[pd.DataFrame, int], tuple[pd.DataFrame, np.ndarray]] | None] = {
    "clean": None,
    "far-1%": _far(0.01),
    "far-10%": _far(0.10),
    "far-small-class": _far_small_class,
    "scaled-one-class": _scaled_one_class,
}


def run_one(table: str, attack: str, seed: int = 0) -> dict:
    from sklearn.metrics import roc_auc_score

    import poisonguard

    frame = TABLES[table]()
    fn = ATTACKS[attack]
    frame, mask = (frame, np.zeros(len(frame), dtype=bool)) if fn is None else fn(frame, seed)
    t0 = time.perf_counter()
    res = poisonguard.scan(frame, label=LABEL, random_state=seed)
    elapsed = time.perf_counter() - t0
    flagged = np.asarray(res.flagged, dtype=bool)
    y = np.asarray(res.table.y)
    worst = {"class": int(np.unique(y)[0]), "flagged": 0, "clean_rows": int(((y == np.unique(y)[0]) & ~mask).sum()),
             "share": 0.0}
    for c in np.unique(y):
        clean = (y == c) & ~mask
        n_c, f_c = int(clean.sum()), int((flagged & clean).sum())
        share = f_c / n_c if n_c else 0.0
        if share > worst["share"] or (share == worst["share"] and f_c > worst["flagged"]):
            worst = {"class": int(c), "flagged": f_c, "clean_rows": n_c, "share": share}
    row = {
        "table": table, "attack": attack, "rows": int(len(frame)), "poisoned": int(mask.sum()),
        "flagged_frac": float(flagged.mean()), "class_damage": worst,
        "damage_breaks": bool(worst["share"] > DAMAGE_SHARE and worst["flagged"] > DAMAGE_ROWS),
        "recall": float(flagged[mask].mean()) if mask.any() else None,
        "auroc": float(roc_auc_score(mask, res.suspicion)) if 0 < mask.sum() < len(mask) else None,
        "time_s": elapsed, "status": res.status,
    }
    row["breaks"] = _breaks(row)
    return row


def _breaks(row: dict) -> list[str]:
    out = []
    if row["damage_breaks"]:
        d = row["class_damage"]
        out.append(f"class {d['class']}: {d['flagged']} of {d['clean_rows']} clean rows")
    if row["attack"] == "clean" and row["flagged_frac"] > 0.01:
        out.append(f"clean table {100 * row['flagged_frac']:.1f}% flagged")
    if row["recall"] is not None and row["recall"] < 0.5:
        out.append(f"recall {row['recall']:.3f}")
    return out


def to_markdown(rows: list[dict], meta: dict) -> str:
    lines = ["## Class damage of the default flag rule (tables in no other benchmark, outlier variants)", "",
             "| table | attack | rows | injected | flagged | class damage | recall | AUROC | breaks |",
             "|---|---|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        if r.get("status") == "failed":
            lines.append(f"| {r['table']} | {r['attack']} | – | – | – | failed: {r.get('error', '')} | – | – | ✗ |")
            continue
        d = r["class_damage"]
        dmg = f"{100 * d['share']:.1f}% (class {d['class']}: {d['flagged']} of {d['clean_rows']})"
        rec = "–" if r["recall"] is None else f"{r['recall']:.3f}"
        auc = "–" if r["auroc"] is None else f"{r['auroc']:.3f}"
        lines.append(f"| {r['table']} | {r['attack']} | {r['rows']} | {r['poisoned']} | {100 * r['flagged_frac']:.1f}% "
                     f"| {dmg} | {rec} | {auc} | {'; '.join(r['breaks']) or 'ok'} |")
    lines += ["", "class damage: the largest share of one class's clean rows that the default rule flags; it "
              f"breaks the target when it is > {100 * DAMAGE_SHARE:.0f}% of the class and > {DAMAGE_ROWS} row "
              "(on a class of 20 rows a single row is 5%). Clean tables must also keep <= 1% of all rows; "
              "attacked cells need recall >= 0.5.", "", f"_git head: {meta.get('git_head')}; {meta.get('when')}_", ""]
    return "\n".join(lines)



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", action="append", choices=list(TABLES))
    ap.add_argument("--attack", action="append", choices=list(ATTACKS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = []
    meta = {"git_head": git_head(RESULTS.parent), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for table in args.table or TABLES:
        for attack in args.attack or ATTACKS:
            try:
                row = run_one(table, attack, args.seed)
            except Exception as exc:  # fail closed: a crashed cell is reported, never clean
                row = {"table": table, "attack": attack, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                       "breaks": ["failed"]}
            rows.append(row)
            sys.stderr.write(f"{table}/{attack}: {row.get('breaks')}\n")
    md = to_markdown(rows, meta)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "class_damage.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2), encoding="utf-8")
    (args.out_dir / "class_damage.md").write_text(md, encoding="utf-8")
    sys.stdout.write(md)
    return 1 if any(r.get("status") == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
