"""The label group and conflicting duplicates of the scan's fusion, on tables no rule was designed on.

Tables: clean real tables that are in no other benchmark (statsmodels ``spector``,
``modechoice``; vega_datasets ``iris``; river ``Bananas``) and real tables of the
other benchmarks (held-out and sklearn), each clean and under label attacks of
other shapes than the main matrix's: uniform flips at 1%, 5% and 30%, flips of one
class only into another (``pair``), and relabelled exact copies of clean rows
(``dupflip``). Per cell: the scan's AUROC, the best single registered detector's,
the two label detectors', the duplicates detector's, the cleanlab and 10-NN anchors',
and the default rule's flags (share of rows, class damage, recall).

    python benchmarks/bench_label_fusion.py                  # all cells -> results/label_fusion.*
    python benchmarks/bench_label_fusion.py --table bananas --out-dir /tmp/x
    python benchmarks/bench_label_fusion.py --scores /tmp/s  # also keep each cell's raw detector scores
    python benchmarks/bench_label_fusion.py --refuse /tmp/s  # re-run only the fusion on kept scores
    python benchmarks/bench_label_fusion.py --heldout        # tables and attacks no label rule saw -> label_heldout.*

``--heldout`` runs tables that no benchmark or rule of the label group was designed on
(statsmodels ``randhie`` with two targets, ``fair`` and ``anes96`` with other targets
than elsewhere, ``ccard``, ``heart``; scikit-learn ``wine``), clean and under attacks
that the main matrix does not hold: uniform flips at 1% and 10%, flips of every other
class into the largest one (``to majority``), and flips of each class's most typical
rows (nearest its class mean, ``typical``).

``--refuse`` re-combines stored detector scores with the current fusion code (no
detector is re-fitted): the quick loop for changing :mod:`poisonguard.scan._ensemble`
and ``_label_rules``. Its numbers are the scan's as long as no detector changed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def _statsmodels(item: str, label: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    import statsmodels.api as sm

    raw = getattr(sm.datasets, item).load_pandas().data.drop(columns=list(drop))
    return raw.rename(columns={label: "label"}).assign(label=lambda f: f["label"].astype(int).astype(str))


def _vega(item: str, label: str) -> pd.DataFrame:
    import vega_datasets

    return vega_datasets.local_data(item).rename(columns={label: "label"})


def _river(item: str) -> pd.DataFrame:
    import river.datasets as rd

    rows, labels = zip(*list(getattr(rd, item)()))
    frame = pd.DataFrame(list(rows))
    frame.columns = [f"x{c}" for c in frame.columns]
    return frame.assign(label=[str(v) for v in labels])


def _builtin(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from poisonguard.datasets import load_dataset

        ds = load_dataset(name, seed=0)
        return ds.frame.rename(columns={ds.label: "label"})
    return load


#: table name -> loader of a frame with a ``label`` column
TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "spector": lambda: _statsmodels("spector", "GRADE"),
    "modechoice": lambda: _statsmodels("modechoice", "choice", drop=("individual",)),
    "iris": lambda: _vega("iris", "species"),
    "bananas": lambda: _river("Bananas"),
    "fair": _builtin("fair"),
    "anes96": _builtin("anes96"),
    "cars": _builtin("cars"),
    "seattle_weather": _builtin("seattle_weather"),
    "penguins": _builtin("penguins"),
    "phishing": _builtin("phishing"),
    "image_segments": _builtin("image_segments"),
    "pima": _builtin("pima"),
    "wine": _builtin("wine"),
    "breast_cancer": _builtin("breast_cancer"),
    "digits": _builtin("digits"),
    # the main benchmark's real and generated tables (their cells there: flips at 5%/10%, clean)
    "caravan": _builtin("caravan"),
    "default": _builtin("default"),
    "credit": _builtin("credit"),
    "imbalanced": _builtin("imbalanced"),
    "overlap10": _builtin("overlap10"),
    "synthetic": _builtin("synthetic"),
}


def _sklearn(item: str) -> pd.DataFrame:
    import sklearn.datasets as skd

    data = getattr(skd, f"load_{item}")(as_frame=True)
    return data.frame.rename(columns={"target": "label"}).assign(label=lambda f: f["label"].astype(str))


#: tables that no benchmark and no rule of the label group was designed on (``--heldout``)
HELDOUT_TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "randhie_hlthp": lambda: _statsmodels("randhie", "hlthp"),
    "randhie_idp": lambda: _statsmodels("randhie", "idp"),
    "fair_religious": lambda: _statsmodels("fair", "religious"),
    "anes96_pid": lambda: _statsmodels("anes96", "PID", drop=("vote",)),
    "ccard_ownrent": lambda: _statsmodels("ccard", "OWNRENT"),
    "heart_censors": lambda: _statsmodels("heart", "censors"),
    "sk_wine": lambda: _sklearn("wine"),
}


@dataclass(frozen=True)
class Variant:
    """One attack variant: a name, the :func:`poisonguard.attacks.poison` kind, rate and arguments."""

    name: str
    kind: str
    rate: float
    params: Callable[[pd.Series], dict[str, Any]] | None = None


def _largest_to_second(y: pd.Series) -> dict[str, Any]:
    """Flip rows of the largest class into the second largest (a class-conditional flip)."""
    top = y.value_counts().index
    return {"source_class": top[0], "target_class": top[1]}


def _second_to_largest(y: pd.Series) -> dict[str, Any]:
    top = y.value_counts().index
    return {"source_class": top[1], "target_class": top[0]}


VARIANTS: tuple[Variant, ...] = (
    Variant("clean", "clean", 0.0),
    Variant("flip", "flip", 0.01),
    Variant("flip", "flip", 0.05),
    Variant("flip", "flip", 0.30),
    Variant("pair 1->2", "pair", 0.05, _largest_to_second),
    Variant("pair 2->1", "pair", 0.05, _second_to_largest),
    Variant("dupflip", "duplicate_flip", 0.03),
    Variant("boundary", "boundary", 0.05, lambda y: {"target_class": y.value_counts().index[1]}),
)


def _relabel(frame: pd.DataFrame, rows: np.ndarray, new: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    out = frame.reset_index(drop=True).copy()
    out.loc[rows, "label"] = new
    mask = np.zeros(len(out), dtype=bool)
    mask[rows] = True
    return out, mask


def _to_majority(frame: pd.DataFrame, rate: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of every class but the largest, relabelled as the largest."""
    y = frame["label"].astype(str).reset_index(drop=True)
    top = y.value_counts().index[0]
    pool = np.flatnonzero((y != top).to_numpy())
    rows = np.random.default_rng(seed).choice(pool, size=min(pool.size, max(1, round(rate * len(y)))), replace=False)
    return _relabel(frame.assign(label=y.to_numpy()), rows, np.full(rows.size, top, dtype=object))


def _typical(frame: pd.DataFrame, rate: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Each class's rows nearest its mean (standardized numeric columns), relabelled to another class."""
    y = frame["label"].astype(str).reset_index(drop=True)
    num = frame.drop(columns=["label"]).select_dtypes("number").reset_index(drop=True)
    Z = ((num - num.mean()) / num.std().replace(0, 1)).fillna(0).to_numpy()
    classes = np.array(sorted(y.unique()))
    rng = np.random.default_rng(seed)
    rows, new = [], []
    for c in classes:
        idx = np.flatnonzero((y == c).to_numpy())
        d = np.linalg.norm(Z[idx] - Z[idx].mean(axis=0), axis=1)
        take = idx[np.argsort(d)[: max(1, round(rate * idx.size))]]
        rows.append(take)
        new.append(rng.choice(classes[classes != c], size=take.size))
    return _relabel(frame.assign(label=y.to_numpy()), np.concatenate(rows), np.concatenate(new).astype(object))


HELDOUT_VARIANTS: tuple[Variant, ...] = (
    Variant("clean", "clean", 0.0),
    Variant("flip", "flip", 0.01),
    Variant("flip", "flip", 0.10),
    Variant("to majority", "to_majority", 0.05),
    Variant("typical", "typical", 0.05),
)


def _cell(table: str, v: Variant) -> tuple[pd.DataFrame, np.ndarray]:
    from poisonguard.attacks import poison

    frame = {**TABLES, **HELDOUT_TABLES}[table]()
    if v.kind == "clean":
        return frame, np.zeros(len(frame), dtype=bool)
    if v.kind == "to_majority":
        return _to_majority(frame, v.rate, 0)
    if v.kind == "typical":
        return _typical(frame, v.rate, 0)
    params = v.params(frame["label"]) if v.params else {}
    res = poison(v.kind, frame, label="label", rate=v.rate, seed=0, **params)
    return res.frame, np.asarray(res.mask, dtype=bool)


def _anchors(frame: pd.DataFrame, mask: np.ndarray) -> dict[str, float | None]:
    from poisonguard.bench._anchors import anchors_for
    from poisonguard.bench._metrics import auroc
    from poisonguard.encoding import TableEncoder
    from poisonguard.validation import prepare_table

    if not mask.any():
        return {}
    prep = prepare_table(frame, label="label")
    X = TableEncoder().fit_transform(prep.frame, prep.features)
    out: dict[str, float | None] = {}
    for a in anchors_for("scan"):
        if a.name in ("cleanlab", "knn10"):
            try:
                out[a.name] = float(auroc(np.asarray(a.score(X, prep.y, 0), dtype=float), mask))
            except Exception as exc:  # an anchor's crash is reported, not hidden
                out[a.name] = None
                print(f"  anchor {a.name} failed: {exc}", file=sys.stderr)
    return out


def _rescored(name: str, frame: pd.DataFrame, mask: np.ndarray) -> np.ndarray:
    """One detector's raw scores on the cell's table, encoded as the scan encodes it (whole table fitted)."""
    from poisonguard.detectors import get_detector
    from poisonguard.encoding import TableEncoder
    from poisonguard.validation import prepare_table

    prep = prepare_table(frame, label="label")
    X = TableEncoder().fit_transform(prep.frame, prep.features, dtype=np.float32)
    X.flags.writeable = False
    return get_detector(name).fit(X, prep.y).score_samples(X, prep.y)


def _fused(raw: dict[str, np.ndarray], y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Suspicion and auto flags of the current fusion code over stored raw scores."""
    from poisonguard.detectors import detector_class
    from poisonguard.scan._ensemble import calibrate, combine

    kinds = {n: detector_class(n).score_kind for n in raw}
    families = {n: detector_class(n).family for n in raw}
    strengths = {n: calibrate(raw[n], kinds[n]) for n in raw}
    c = combine(strengths, kinds, families, raw=raw, y=y, n_classes=n_classes)
    return c.suspicion, c.auto_flags


def _row(table: str, v: Variant, mask: np.ndarray, y: np.ndarray, raw: dict[str, np.ndarray],
         suspicion: np.ndarray, flagged: np.ndarray, anchors: dict[str, float | None]) -> dict[str, Any]:
    from poisonguard.bench._metrics import auroc, class_damage
    from poisonguard.detectors import detector_class

    det = {n: float(auroc(s, mask)) for n, s in raw.items()} if mask.any() else {}
    label_det = {n: a for n, a in det.items() if detector_class(n).family == "label"}
    best = max(det, key=det.get) if det else None
    best_label = max(label_det, key=label_det.get) if label_det else None
    return {
        "table": table, "attack": v.name, "rate": v.rate, "rows": int(mask.size), "poisoned": int(mask.sum()),
        "auroc": float(auroc(suspicion, mask)) if mask.any() else None,
        "best": best, "best_auroc": det.get(best) if best else None,
        "best_label": best_label, "best_label_auroc": label_det.get(best_label) if best_label else None,
        "duplicates_auroc": det.get("duplicates"),
        "anchors": anchors,
        "flagged_frac": float(flagged.mean()),
        "class_damage": class_damage(flagged, mask, y),
        "flag_recall": float(flagged[mask].mean()) if mask.any() else None,
        "flag_precision": float(mask[flagged].mean()) if flagged.any() else None,
    }


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _breaks(r: dict[str, Any]) -> list[str]:
    out = []
    if r["poisoned"] == 0:
        if r["flagged_frac"] > 0.01 or (r["class_damage"] or 0) > 0.05:
            out.append(f"clean: {_pct(r['flagged_frac'])} flagged, class damage {_pct(r['class_damage'])}")
        return out
    if r["best_auroc"] is not None and r["auroc"] < r["best_auroc"] - 0.005:
        out.append(f"scan {r['auroc']:.3f} < {r['best']} {r['best_auroc']:.3f}")
    for a, s in r["anchors"].items():
        if s is not None and r["auroc"] < s - 0.005:
            out.append(f"< {a} {s:.3f}")
    if (r["class_damage"] or 0) > 0.05:
        out.append(f"class damage {_pct(r['class_damage'])}")
    return out


def to_markdown(rows: list[dict[str, Any]], title: str) -> str:
    head = ("| table | attack | rate | rows | poisoned | scan AUROC | best single | best label | duplicates "
            "| cleanlab | 10-NN | flagged | class damage | flag recall | flag precision | breaks |")
    lines = [f"## {title}", "", head, "|" + "---|" * 16]
    for r in rows:
        best = f"{r['best']} {_f(r['best_auroc'])}" if r["best"] else "–"
        bl = f"{r['best_label']} {_f(r['best_label_auroc'])}" if r["best_label"] else "–"
        lines.append(
            f"| {r['table']} | {r['attack']} | {r['rate'] * 100:g}% | {r['rows']} | {r['poisoned']} | {_f(r['auroc'])} "
            f"| {best} | {bl} | {_f(r['duplicates_auroc'])} | {_f(r['anchors'].get('cleanlab'))} "
            f"| {_f(r['anchors'].get('knn10'))} | {_pct(r['flagged_frac'])} | {_pct(r['class_damage'])} "
            f"| {_f(r['flag_recall'])} | {_f(r['flag_precision'])} | {'; '.join(_breaks(r)) or 'ok'} |")
    n_break = sum(bool(_breaks(r)) for r in rows)
    lines += ["", f"{n_break} of {len(rows)} cells break a target (clean: <= 1% of rows and <= 5% of any class "
              "flagged; attacked: scan >= best single detector - 0.005 and >= each anchor - 0.005, class damage <= 5%)."]
    return "\n".join(lines) + "\n"


def _key(table: str, v: Variant) -> str:
    return f"{table}__{v.name.replace(' ', '').replace('>', '')}__{v.rate:g}"


TITLE = "Label group and conflicting duplicates: tables and variants no rule was designed on"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heldout", action="store_true", help="the held-out tables and attack variants -> label_heldout.*")
    ap.add_argument("--table", action="append", choices=list(TABLES) + list(HELDOUT_TABLES),
                    help="table (repeatable); default: all")
    ap.add_argument("--variant", action="append", choices=sorted({v.name for v in VARIANTS + HELDOUT_VARIANTS}),
                    help="attack variant (repeatable); default: all")
    ap.add_argument("--scores", type=Path, help="keep each cell's raw detector scores (and anchors) here")
    ap.add_argument("--refuse", type=Path, help="re-run only the fusion on scores kept by --scores")
    ap.add_argument("--rescore", action="append", default=[],
                    help="with --refuse: re-fit and re-score this detector first (repeatable)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--title", default=TITLE)
    args = ap.parse_args(argv)
    import poisonguard
    from poisonguard.errors import DataError, InputError

    tables = args.table or list(HELDOUT_TABLES if args.heldout else TABLES)
    pool = HELDOUT_VARIANTS if args.heldout else VARIANTS
    variants = [v for v in pool if not args.variant or v.name in args.variant]
    stem = "label_heldout" if args.heldout else "label_fusion"
    if args.heldout and args.title == TITLE:
        args.title = "Label group: held-out tables and attack variants no label rule was designed on"
    rows: list[dict[str, Any]] = []
    for table in tables:
        for v in variants:
            key = _key(table, v)
            t0 = time.perf_counter()
            if args.refuse:
                path = args.refuse / f"{key}.npz"
                if not path.exists():
                    continue
                z = np.load(path, allow_pickle=False)
                raw = {k[4:]: z[k] for k in z.files if k.startswith("raw_")}
                y, mask = z["y"], z["mask"]
                anchors = json.loads(str(z["anchors"]))
                for name in args.rescore:
                    raw[name] = _rescored(name, *_cell(table, v))
                suspicion, flagged = _fused(raw, y, int(z["n_classes"]))
            else:
                try:
                    frame, mask = _cell(table, v)
                except InputError as exc:  # e.g. a rate that poisons no row of a 32-row table
                    print(f"{table:16s} {v.name:10s} {v.rate:5.2f} skipped: {exc}", flush=True)
                    continue
                try:
                    res = poisonguard.scan(frame, label="label", random_state=0)
                except DataError as exc:  # e.g. a pair flip that relabelled a whole class
                    print(f"{table:16s} {v.name:10s} {v.rate:5.2f} skipped: {exc}", flush=True)
                    continue
                raw = {str(c): res.detector_scores[c].to_numpy() for c in res.detector_scores.columns}
                y = np.asarray(res.table.y)
                suspicion, flagged = np.asarray(res.suspicion, float), np.asarray(res.flagged, bool)
                anchors = _anchors(frame, mask)
                if args.scores:
                    args.scores.mkdir(parents=True, exist_ok=True)
                    np.savez(args.scores / f"{key}.npz", y=y, mask=mask, n_classes=len(res.table.classes),
                             anchors=json.dumps(anchors), **{f"raw_{k}": s for k, s in raw.items()})
            row = _row(table, v, mask, y, raw, suspicion, flagged, anchors)
            row["time_s"] = time.perf_counter() - t0
            rows.append(row)
            print(f"{table:16s} {v.name:10s} {v.rate:5.2f} scan {_f(row['auroc'])} best {row['best']} "
                  f"{_f(row['best_auroc'])} flagged {_pct(row['flagged_frac'])} damage {_pct(row['class_damage'])} "
                  f"recall {_f(row['flag_recall'])} {'; '.join(_breaks(row))}", flush=True)
    md = to_markdown(rows, args.title)
    print(md)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "refused": bool(args.refuse),
            "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    (args.out_dir / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out_dir / f"{stem}.md").write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
