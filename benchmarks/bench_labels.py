"""Label-side benchmark: flips of every kind on real, generated and held-out tables.

Per cell the default ``poisonguard.scan`` is scored against the truth beside two
anchors run on the same encoded matrix: cleanlab's 5-fold logistic regression
(``find_label_issues`` ranking) and a 10-NN vote. Columns: AUROC of each, the scan's
flag recall and precision under the default rule, the share of rows flagged, and
*class damage* (the largest share of any one class's clean rows that the scan flags).

Tables:

* the benchmark's own (``digits``, ``breast_cancer``, ``wine``, ``synthetic``) and the
  real tables of ``poisonguard.datasets`` (``caravan``, ``default``, ``credit``,
  ``pd_speech``, ``penguins``) and the generated ``imbalanced`` / ``overlap10``;
* held out, never used to design the label rules: statsmodels ``fair`` (affairs > 0),
  ``anes96`` (vote), vega_datasets ``iris``, ``cars`` (origin, with missing values),
  ``seattle_weather`` (weather, five imbalanced classes), river ``Phishing``,
  ``Bananas`` and ``ImageSegments`` (all shipped inside the wheels: nothing downloads).

Attacks: clean; uniform flips at 2%, 5%, 10% and 20%; ``pair`` flips (each flipped row
to the next class, 10%); ``into-minority`` (5% of the table, rows of other classes
relabelled to the smallest class: the insurance-table attack); ``one-class`` (20% of
the largest class flipped away); ``targeted`` and ``boundary`` (the attack simulator's).

Run: ``python benchmarks/bench_labels.py [--tables a,b] [--attacks a,b] [--out DIR]``;
writes ``labels.json`` and ``labels.md`` into ``benchmarks/results`` (or ``--out``).
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

warnings.filterwarnings("ignore")

RESULTS = Path(__file__).resolve().parent / "results"
LABEL = "label"


# ----------------------------------------------------------------- held-out tables
def _codes(values: pd.Series) -> np.ndarray:
    classes = np.array(sorted(values.astype(str).unique()))
    return np.searchsorted(classes, values.astype(str).to_numpy()).astype(np.int64)


def _fair() -> pd.DataFrame:
    import statsmodels.api as sm

    d = sm.datasets.fair.load_pandas().data
    return d.drop(columns=["affairs"]).assign(label=(d["affairs"] > 0).astype(np.int64))


def _anes96() -> pd.DataFrame:
    import statsmodels.api as sm

    d = sm.datasets.anes96.load_pandas().data
    return d.drop(columns=["vote"]).assign(label=d["vote"].astype(np.int64))


def _vega(name: str, label: str, drop: tuple[str, ...] = ()) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from vega_datasets import data

        d = getattr(data, name)().drop(columns=list(drop))
        return d.drop(columns=[label]).assign(label=_codes(d[label]))

    return load


def _river(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import river.datasets as rd

        rows = list(getattr(rd, name)())
        frame = pd.DataFrame([x for x, _ in rows])
        frame.columns = [str(c).replace("-", "_") for c in frame.columns]
        return frame.assign(label=_codes(pd.Series([y for _, y in rows])))

    return load


HELD_OUT: dict[str, Callable[[], pd.DataFrame]] = {
    "fair": _fair,
    "anes96": _anes96,
    "iris": _vega("iris", "species"),
    "cars": _vega("cars", "Origin", ("Name",)),
    "seattle_weather": _vega("seattle_weather", "weather", ("date",)),
    "phishing": _river("Phishing"),
    "bananas": _river("Bananas"),
    "image_segments": _river("ImageSegments"),
}


def load_table(name: str) -> pd.DataFrame:
    """A table with its label in column ``label`` (codes 0..K-1)."""
    if name in HELD_OUT:
        return HELD_OUT[name]().reset_index(drop=True)
    from poisonguard.datasets import load_dataset

    return load_dataset(name).frame


# ------------------------------------------------------------------------ attacks
def _relabel(frame: pd.DataFrame, rows: np.ndarray, new: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    out = frame.copy()
    y = out[LABEL].to_numpy().copy()
    changed = rows[new != y[rows]]
    y[rows] = new
    out[LABEL] = y
    mask = np.zeros(len(frame), dtype=bool)
    mask[changed] = True
    return out, mask


def attack(frame: pd.DataFrame, name: str, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Poison ``frame`` with attack ``name``; the poisoned frame and the mask of changed rows."""
    from poisonguard.attacks import poison

    y = frame[LABEL].to_numpy()
    k = int(y.max()) + 1
    rng = np.random.default_rng(seed)
    counts = np.bincount(y, minlength=k)
    if name == "clean":
        return frame, np.zeros(len(frame), dtype=bool)
    if name.startswith("flip"):
        rate = float(name.split("-")[1]) / 100
        p = poison("flip", frame, label=LABEL, rate=rate, seed=seed)
        return p.frame, np.asarray(p.mask)
    if name == "pair":  # each flipped row to the next class
        rows = np.sort(rng.choice(len(y), size=round(0.10 * len(y)), replace=False))
        return _relabel(frame, rows, (y[rows] + 1) % k)
    if name == "into-minority":  # rows of other classes relabelled to the smallest class
        small = int(np.argmin(np.where(counts > 0, counts, np.inf)))
        others = np.flatnonzero(y != small)
        rows = np.sort(rng.choice(others, size=min(others.size, round(0.05 * len(y))), replace=False))
        return _relabel(frame, rows, np.full(rows.size, small))
    if name == "one-class":  # 20% of the largest class flipped away, uniformly
        big = int(np.argmax(counts))
        members = np.flatnonzero(y == big)
        rows = np.sort(rng.choice(members, size=round(0.20 * members.size), replace=False))
        return _relabel(frame, rows, (big + rng.integers(1, k, size=rows.size)) % k)
    if name == "boundary":
        p = poison("boundary", frame, label=LABEL, rate=0.05, seed=seed, target_class=1)
        return p.frame, np.asarray(p.mask)
    if name == "targeted":
        src, dst = int(np.argmax(counts)), int(np.argsort(counts)[-2])
        p = poison("targeted", frame, label=LABEL, rate=0.05, seed=seed, source_class=src, target_class=dst)
        return p.frame, np.asarray(p.mask)
    raise ValueError(f"unknown attack {name!r}")


# ------------------------------------------------------------------------ cells
DESIGN = ("digits", "breast_cancer", "wine", "synthetic", "caravan", "default", "credit", "pd_speech", "penguins")
GENERATED_CLEAN = ("imbalanced", "overlap10")
DESIGN_ATTACKS = ("clean", "flip-5", "flip-10", "targeted", "boundary")
HELD_OUT_ATTACKS = ("clean", "flip-2", "flip-5", "flip-20", "pair", "into-minority", "one-class", "boundary")


def default_cells() -> list[tuple[str, str, str]]:
    """(group, table, attack) of the default run."""
    cells = [("design", t, a) for t in DESIGN for a in DESIGN_ATTACKS]
    cells += [("design", t, "clean") for t in GENERATED_CLEAN]
    cells += [("held-out", t, a) for t in HELD_OUT for a in HELD_OUT_ATTACKS]
    return cells


def _auroc(score: np.ndarray, mask: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(mask, score)) if 0 < mask.sum() < mask.size else None


def run_cell(group: str, table: str, attack_name: str, *, detectors: str | None, seed: int = 0) -> dict:
    """Poison, scan, score the anchors on the same encoded matrix; one JSON-ready row."""
    import poisonguard
    from poisonguard.bench import anchors_for, class_damage
    from poisonguard.encoding import TableEncoder
    from poisonguard.validation import prepare_table

    row: dict = {"group": group, "table": table, "attack": attack_name, "status": "ok"}
    try:
        frame, mask = attack(load_table(table), attack_name, seed)
        t0 = time.perf_counter()
        res = poisonguard.scan(frame, label=LABEL, random_state=seed,
                               **({"detectors": detectors} if detectors else {}))
        row["scan_s"] = time.perf_counter() - t0
    except Exception as exc:  # fail closed: the cell is failed, never clean
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        return row
    flagged = np.asarray(res.flagged, dtype=bool)
    y = np.asarray(res.table.y)
    row.update(
        rows=int(len(frame)), classes=int(y.max()) + 1, poisoned=int(mask.sum()),
        flagged_frac=float(flagged.mean()), class_damage=class_damage(flagged, mask, y),
        auroc=_auroc(np.asarray(res.suspicion, dtype=float), mask),
        flag_recall=float(flagged[mask].mean()) if mask.any() else None,
        flag_precision=float(mask[flagged].mean()) if flagged.any() and mask.any() else None,
        poisoned_classes=[int(p["class_code"]) if "class_code" in p else str(p["class"])
                          for p in res.summary().get("per_class", []) if p.get("poisoned")],
    )
    if mask.any():
        prep = prepare_table(frame, label=LABEL)
        X = TableEncoder().fit_transform(prep.frame, prep.features)
        for a in anchors_for("scan"):
            if a.name in ("cleanlab", "knn10"):
                try:
                    row[a.name] = _auroc(np.asarray(a.score(X, prep.y, seed), dtype=float), mask)
                except Exception as exc:
                    row[a.name] = f"failed: {type(exc).__name__}"
    return row


def _f(x, fmt: str = ".3f") -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    return format(x, fmt)


def to_markdown(rows: list[dict]) -> str:
    head = ("| group | table | attack | rows | poisoned | AUROC scan | cleanlab | 10-NN | flag recall | "
            "flag precision | flagged | class damage | scan s |")
    lines = [head, "|" + "---|" * 3 + "---:|" * 10]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['group']} | {r['table']} | {r['attack']} | failed: {r.get('error')} |")
            continue
        lines.append(
            f"| {r['group']} | {r['table']} | {r['attack']} | {r['rows']} | {r['poisoned']} | {_f(r['auroc'])} | "
            f"{_f(r.get('cleanlab'))} | {_f(r.get('knn10'))} | {_f(r['flag_recall'], '.2f')} | "
            f"{_f(r['flag_precision'], '.2f')} | {r['flagged_frac']:.1%} | {_f(r['class_damage'], '.1%')} | "
            f"{r['scan_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tables", help="comma-separated tables (default: all)")
    ap.add_argument("--attacks", help="comma-separated attacks (default: per group)")
    ap.add_argument("--detectors", help="detectors of the scan (default: the default set)")
    ap.add_argument("--out", default=str(RESULTS), help="directory of labels.json / labels.md")
    ap.add_argument("--name", default="labels", help="file stem of the results")
    args = ap.parse_args(argv)
    cells = default_cells()
    if args.tables:
        keep = set(args.tables.split(","))
        cells = [c for c in cells if c[1] in keep]
    if args.attacks:
        keep = set(args.attacks.split(","))
        cells = [c for c in cells if c[2] in keep]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for group, table, name in cells:
        rows.append(run_cell(group, table, name, detectors=args.detectors))
        r = rows[-1]
        print(f"{group:8s} {table:16s} {name:14s} " + (
            f"auroc={_f(r.get('auroc'))} cl={_f(r.get('cleanlab'))} knn={_f(r.get('knn10'))} "
            f"rec={_f(r.get('flag_recall'), '.2f')} prec={_f(r.get('flag_precision'), '.2f')} "
            f"flagged={r['flagged_frac']:.2%} damage={_f(r['class_damage'], '.1%')}"
            if r["status"] == "ok" else f"FAILED {r.get('error')}"), flush=True)
        meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "detectors": args.detectors or "default"}
        (out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
        (out / f"{args.name}.md").write_text(to_markdown(rows))
    return 1 if any(r["status"] != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
