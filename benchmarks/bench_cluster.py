"""The ``cluster`` detector on clean real tables and on blob-attack variants it was not designed on.

Usage::

    python benchmarks/bench_cluster.py            # clean tables + variants, detector and scan
    python benchmarks/bench_cluster.py --no-scan  # the detector alone (fast)

Clean tables (none of them in a benchmark matrix as a design table): statsmodels
``fair``, ``spector``, ``modechoice``, ``anes96``, ``randhie``; vega_datasets ``iris``,
``cars``, ``seattle-weather``; river ``Phishing``, ``Bananas``,
``ImageSegments``; sklearn digits, wine, breast_cancer; and tables no rule of the
detector was designed on (``--extra``): statsmodels ``grunfeld``, ``star98``,
``macrodata``, ``sunspots``, ``cancer``; vega ``airports``, ``seattle-temps``,
``la-riots``, ``barley``; river ``ChickWeights``, ``TrumpApproval``, ``SolarFlare``,
``WaterFlow``; sklearn diabetes. Nothing downloads.

Attack variants, each on digits, breast_cancer, the 20k-row generated table,
statsmodels randhie and the coarse held-out tables fair, anes96, phishing and pima:
blob spread 0.02 / 0.1 / 0.2 / 0.3 (at 3%), rates 1% / 3% / 5% / 8% (spread 0.05), two
blobs (1.5% each), one blob whose rows carry random labels, one whose rows carry two
labels, a blob centred on a real row, a blob rounded to the table's grid (every column
whose clean values are all whole numbers is rounded: an attacker who copies the
table's format), and the far blob (``placement="cluster"``).

Per row: rows, injected rows, the detector's AUROC, its flagged rows (strength >= 0.5)
and how many of them are injected, and (unless ``--no-scan``) the default scan's AUROC
and flag recall. Writes ``benchmarks/results/cluster.json`` and ``cluster.md``.
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
from sklearn.metrics import roc_auc_score

from poisonguard.attacks import inject_outliers
from poisonguard.datasets import load_dataset
from poisonguard.detectors import ClusterDetector
from poisonguard.encoding import TableEncoder

RESULTS = Path(__file__).resolve().parent / "results"
LABEL = "label"


def _statsmodels(item: str, label: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    import statsmodels.datasets as smd

    raw = getattr(smd, item).load_pandas().data.copy()
    return raw.drop(columns=list(drop)).rename(columns={label: LABEL})


def _vega(item: str, label: str) -> pd.DataFrame:
    from vega_datasets import local_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = local_data(item)
    return raw.rename(columns={label: LABEL})


def _river(item: str) -> pd.DataFrame:
    import river.datasets as rd

    rows, labels = [], []
    for x, y in getattr(rd, item)():
        rows.append(x)
        labels.append(str(y))
    frame = pd.DataFrame(rows)
    frame.columns = [str(c) for c in frame.columns]
    frame[LABEL] = labels
    return frame


def _randhie() -> pd.DataFrame:
    raw = _statsmodels("randhie", "mdvis")
    return raw.assign(**{LABEL: (raw[LABEL] > 0).astype(int)})


def _fair() -> pd.DataFrame:
    raw = _statsmodels("fair", "affairs")
    return raw.assign(**{LABEL: (raw[LABEL] > 0).astype(int)})


def _modechoice() -> pd.DataFrame:
    raw = _statsmodels("modechoice", "mode", drop=("individual", "choice"))
    return raw


def _builtin(name: str) -> Callable[[], pd.DataFrame]:
    return lambda: load_dataset(name).frame


def _binarised(frame: pd.DataFrame) -> pd.DataFrame:
    """The label column cut at its median (a numeric target made a binary label)."""
    y = pd.to_numeric(frame[LABEL])
    return frame.assign(**{LABEL: (y > y.median()).astype(int)})


def _numeric_statsmodels(item: str, label: str) -> pd.DataFrame:
    return _binarised(_statsmodels(item, label).select_dtypes(include=[np.number]))


def _dated(frame: pd.DataFrame) -> pd.DataFrame:
    """Date columns as seconds (the encoder reads numbers and text)."""
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].astype("int64") // 10**9
    return frame


def _sk_diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    b = load_diabetes()
    frame = pd.DataFrame(b.data, columns=[f"c{i}" for i in range(b.data.shape[1])])
    return _binarised(frame.assign(**{LABEL: b.target}))


CLEAN: dict[str, Callable[[], pd.DataFrame]] = {
    "sm/fair": _fair,
    "sm/spector": lambda: _statsmodels("spector", "GRADE"),
    "sm/modechoice": _modechoice,
    "sm/anes96": lambda: _statsmodels("anes96", "PID"),
    "sm/randhie": _randhie,
    "vega/iris": lambda: _vega("iris", "species"),
    "vega/cars": lambda: _vega("cars", "Origin"),
    "vega/seattle-weather": lambda: _vega("seattle-weather", "weather"),
    "river/Phishing": lambda: _river("Phishing"),
    "river/Bananas": lambda: _river("Bananas"),
    "river/ImageSegments": lambda: _river("ImageSegments"),
    "sklearn/digits": _builtin("digits"),
    "sklearn/wine": _builtin("wine"),
    "sklearn/breast_cancer": _builtin("breast_cancer"),
}

#: clean tables that no rule of the detector was designed on (``--extra``)
EXTRA_CLEAN: dict[str, Callable[[], pd.DataFrame]] = {
    "sm/grunfeld": lambda: _numeric_statsmodels("grunfeld", "invest"),
    "sm/star98": lambda: _numeric_statsmodels("star98", "NABOVE"),
    "sm/macrodata": lambda: _numeric_statsmodels("macrodata", "realgdp"),
    "sm/sunspots": lambda: _numeric_statsmodels("sunspots", "SUNACTIVITY"),
    "sm/cancer": lambda: _numeric_statsmodels("cancer", "cancer"),
    "vega/airports": lambda: _vega("airports", "state").dropna(subset=[LABEL]).reset_index(drop=True),
    "vega/seattle-temps": lambda: _binarised(_dated(_vega("seattle-temps", "temp"))),
    "vega/la-riots": lambda: _dated(_vega("la-riots", "gender")).dropna(subset=[LABEL]).reset_index(drop=True),
    "vega/barley": lambda: _vega("barley", "site"),
    "river/ChickWeights": lambda: _binarised(_river("ChickWeights")),
    "river/TrumpApproval": lambda: _binarised(_dated(_river("TrumpApproval"))),
    "river/SolarFlare": lambda: _river("SolarFlare"),
    "river/WaterFlow": lambda: _binarised(_dated(_river("WaterFlow"))),
    "sklearn/diabetes": _sk_diabetes,
}

ATTACK_TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "digits": _builtin("digits"),
    "breast_cancer": _builtin("breast_cancer"),
    "synthetic": lambda: load_dataset("synthetic", n_rows=20_000).frame,
    "sm/randhie": _randhie,
    "fair": _builtin("fair"),
    "anes96": _builtin("anes96"),
    "phishing": _builtin("phishing"),
    "pima": _builtin("pima"),
}


def _blob(frame: pd.DataFrame, rate: float, seed: int, **kw) -> tuple[pd.DataFrame, np.ndarray]:
    pt = inject_outliers(frame, LABEL, rate, seed=seed, **kw)
    return pt.frame, pt.mask


def _two_blobs(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    first = inject_outliers(frame, LABEL, 0.015, seed=seed, placement="cluster_in_range")
    clean_n = len(frame)
    second = inject_outliers(frame, LABEL, 0.015, seed=seed + 100, placement="cluster_in_range")
    out = pd.concat([first.frame, second.frame.iloc[clean_n:]], ignore_index=True)
    return out, np.concatenate([first.mask, second.mask[clean_n:]])


def _random_labels(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    out, mask = _blob(frame, 0.03, seed, placement="cluster_in_range")
    classes = frame[LABEL].unique()
    rng = np.random.default_rng(seed)
    out = out.copy()
    out.loc[mask, LABEL] = classes[rng.integers(0, classes.size, size=int(mask.sum()))]
    return out, mask


def _two_labels(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    out, mask = _blob(frame, 0.03, seed, placement="cluster_in_range")
    classes = np.sort(frame[LABEL].unique())
    out = out.copy()
    rows = np.flatnonzero(mask)
    out.loc[rows[1::2], LABEL] = classes[(list(classes).index(out.loc[rows[0], LABEL]) + 1) % classes.size]
    return out, mask


def _numeric_features(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != LABEL and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])]


def _on_real_row(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The blob moved so that its centre is a real row's values (a template copied from the table)."""
    out, mask = _blob(frame, 0.03, seed, placement="cluster_in_range")
    row = frame.iloc[int(np.random.default_rng(seed).integers(0, len(frame)))]
    out = out.copy()
    for col in _numeric_features(frame):
        vals = out.loc[mask, col].astype(float)
        moved = vals - vals.mean() + float(row[col])
        lo, hi = float(frame[col].min()), float(frame[col].max())
        moved = moved.clip(lo, hi)
        out[col] = out[col].astype(float)
        out.loc[mask, col] = np.round(moved) if pd.api.types.is_integer_dtype(frame[col]) else moved
    return out, mask


def _rounded(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The blob rounded like the table: a column whose clean values are all whole numbers gets whole numbers."""
    out, mask = _blob(frame, 0.03, seed, placement="cluster_in_range")
    out = out.copy()
    for col in _numeric_features(frame):
        clean = frame[col].dropna().to_numpy(dtype=float)
        if clean.size and np.all(clean == np.round(clean)):
            out[col] = out[col].astype(float)
            out.loc[mask, col] = np.round(out.loc[mask, col].astype(float))
    return out, mask


VARIANTS: dict[str, Callable[[pd.DataFrame, int], tuple[pd.DataFrame, np.ndarray]]] = {
    "spread 0.02": lambda f, s: _blob(f, 0.03, s, placement="cluster_in_range", spread=0.02),
    "spread 0.1": lambda f, s: _blob(f, 0.03, s, placement="cluster_in_range", spread=0.1),
    "spread 0.2": lambda f, s: _blob(f, 0.03, s, placement="cluster_in_range", spread=0.2),
    "spread 0.3": lambda f, s: _blob(f, 0.03, s, placement="cluster_in_range", spread=0.3),
    "rate 1%": lambda f, s: _blob(f, 0.01, s, placement="cluster_in_range"),
    "rate 3%": lambda f, s: _blob(f, 0.03, s, placement="cluster_in_range"),
    "rate 5%": lambda f, s: _blob(f, 0.05, s, placement="cluster_in_range"),
    "rate 8%": lambda f, s: _blob(f, 0.08, s, placement="cluster_in_range"),
    "two blobs": _two_blobs,
    "random labels": _random_labels,
    "two labels": _two_labels,
    "on a real row": _on_real_row,
    "rounded to grid": _rounded,
    "far blob": lambda f, s: _blob(f, 0.03, s, placement="cluster"),
}


def _measure(frame: pd.DataFrame, mask: np.ndarray, scan: bool) -> dict:
    feats = [c for c in frame.columns if c != LABEL]
    X = TableEncoder().fit_transform(frame, feats, dtype=np.float32)
    X.flags.writeable = False
    t = time.perf_counter()
    det = ClusterDetector().fit(X)
    s = det.score_samples(X)
    row = {
        "rows": int(len(frame)), "injected": int(mask.sum()), "detector_s": round(time.perf_counter() - t, 3),
        "flagged": int((s >= 0.5).sum()), "flagged_injected": int((s[mask] >= 0.5).sum()),
        "auroc": float(roc_auc_score(mask, s)) if 0 < mask.sum() < len(mask) else None,
        "groups": det.report_["tested"][:3],
    }
    if scan:
        import poisonguard

        res = poisonguard.scan(frame, label=LABEL, random_state=0)
        sus = np.asarray(res.suspicion, dtype=float)
        flagged = np.asarray(res.flagged, dtype=bool)
        row["scan_auroc"] = float(roc_auc_score(mask, sus)) if 0 < mask.sum() < len(mask) else None
        row["scan_flagged"] = int(flagged.sum())
        row["scan_recall"] = float(flagged[mask].mean()) if mask.any() else None
    return row


def _fmt(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-scan", action="store_true", help="the detector alone (no default scan)")
    ap.add_argument("--seeds", type=int, default=2, help="attack seeds per variant")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--no-extra", action="store_true", help="leave out the extra clean tables")
    ap.add_argument("--table", action="append", help="attack only these tables (repeatable; default all)")
    ap.add_argument("--variant", action="append", help="only these variants (repeatable; default all)")
    args = ap.parse_args(argv)
    scan = not args.no_scan
    rows: list[dict] = []
    args.out_dir.mkdir(parents=True, exist_ok=True)

    def write(final: bool) -> None:
        # rewritten after every row, so an interrupted run still leaves its measured rows (marked partial)
        (args.out_dir / "cluster.json").write_text(json.dumps({"complete": final, "rows": rows}, indent=1, default=str),
                                                   encoding="utf-8")
        note = "" if final else f"\n_Partial: {len(rows)} rows measured (run interrupted or in progress)._\n"
        (args.out_dir / "cluster.md").write_text("\n".join(lines) + "\n" + note, encoding="utf-8")

    lines = ["## cluster detector: clean real tables", "",
             "| table | rows | flagged by cluster | scan flagged | candidates tested (size, separation, p) |",
             "|---|---:|---:|---:|---|"]
    clean = CLEAN if args.no_extra else {**CLEAN, **EXTRA_CLEAN}
    for name, load in clean.items():
        try:
            frame = load()
            r = {"kind": "clean", "table": name, **_measure(frame, np.zeros(len(frame), dtype=bool), scan)}
        except Exception as exc:  # a table that cannot load is reported, never skipped silently
            r = {"kind": "clean", "table": name, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(r)
        tested = ", ".join(f"({g['size']}, {g['ratio']:.2f}, {g['p_value']:.2g})" for g in r.get("groups", []))
        lines.append(f"| {name} | {r.get('rows', '–')} | {r.get('flagged', r.get('error'))} | "
                     f"{_fmt(r.get('scan_flagged'))} | {tested} |")
        print(lines[-1], flush=True)
        write(False)
    lines += ["", "## cluster detector: blob variants (not designed on)", "",
              "| table | variant | seed | rows | injected | cluster AUROC | cluster flagged (injected) | "
              "scan AUROC | scan flag recall |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines[-4:]))
    for tname, load in ATTACK_TABLES.items():
        if args.table and tname not in args.table:
            continue
        base = load()
        for vname, make in VARIANTS.items():
            if args.variant and vname not in args.variant:
                continue
            for seed in range(1, args.seeds + 1):
                frame, mask = make(base, seed)
                r = {"kind": "attack", "table": tname, "variant": vname, "seed": seed, **_measure(frame, mask, scan)}
                rows.append(r)
                lines.append(f"| {tname} | {vname} | {seed} | {r['rows']} | {r['injected']} | {_fmt(r['auroc'])} | "
                             f"{r['flagged']} ({r['flagged_injected']}) | {_fmt(r.get('scan_auroc'))} | "
                             f"{_fmt(r.get('scan_recall'))} |")
                print(lines[-1], flush=True)
                write(False)
    write(True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
