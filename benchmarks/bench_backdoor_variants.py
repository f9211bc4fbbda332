"""Backdoor variants nobody designed on, on real tables no other bench uses (issue 9).

Per table: the clean table (what the three backdoor detectors and the whole scan flag),
then tabular backdoors that vary what the held-out matrix fixes: the trigger column
(seeds pick other columns), one, two or three trigger columns, values outside the
column's range or inside it (p99.9, p90), rates 1/3/5/10%, and the clean-label variant
(rows of the target class stamped, labels kept). Per cell: the scan's AUROC, the best
single detector, the best backdoor detector's AUROC, the rows the backdoor detectors
flag (strength >= 0.5) and how many of them are poisoned.

    python benchmarks/bench_backdoor_variants.py                    # all tables
    python benchmarks/bench_backdoor_variants.py --table iris --plain-bonferroni

``--plain-bonferroni`` runs the token search with Bonferroni over every candidate x
class test and ``backdoor_trigger``'s presence tests over every suspected trigger (the
rules before Tarone's correction), for a before/after.
Writes ``benchmarks/results/backdoor_variants[_plain].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).parent))

from bench_class_damage import LABEL, TABLES, _statsmodels  # noqa: E402

from poisonguard.attacks import poison  # noqa: E402
from poisonguard.bench._metrics import auroc  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BACKDOOR = ("backdoor_trigger", "backdoor_clean_label", "backdoor_spectral")

#: tables: statsmodels / vega / sklearn / river tables no other bench reads, plus three held-out ones
VARIANT_TABLES = {
    "spector": TABLES["spector"], "modechoice": TABLES["modechoice"], "iris": TABLES["iris"],
    "penguins": TABLES["penguins"], "wine": TABLES["wine"], "bananas": TABLES["bananas"],
    "heart": _statsmodels("heart", "censors"), "ccard": _statsmodels("ccard", "OWNRENT"),
    "cpunish": _statsmodels("cpunish", "SOUTH"), "randhie": _statsmodels("randhie", "hlthg"),
    "pima": None, "anes96": None, "fair": None,
}

#: (name, rate, trigger options, clean_label)
VARIANTS = (
    ("1out", 0.05, {"n_trigger_features": 1, "trigger_values": "outside"}, False),
    ("1out-seed1", 0.05, {"n_trigger_features": 1, "trigger_values": "outside"}, False),
    ("1out", 0.01, {"n_trigger_features": 1, "trigger_values": "outside"}, False),
    ("1out", 0.10, {"n_trigger_features": 1, "trigger_values": "outside"}, False),
    ("2out", 0.03, {"n_trigger_features": 2, "trigger_values": "outside"}, False),
    ("3out", 0.05, {"n_trigger_features": 3, "trigger_values": "outside"}, False),
    ("p99.9x2", 0.05, {"n_trigger_features": 2, "trigger_values": "p99.9"}, False),
    ("p90x3", 0.10, {"n_trigger_features": 3, "trigger_values": "p90"}, False),
    ("clean-label-1out", 0.05, {"n_trigger_features": 1, "trigger_values": "outside"}, True),
    ("clean-label-p99.9x2", 0.05, {"n_trigger_features": 2, "trigger_values": "p99.9"}, True),
)


def _load(name: str):
    loader = VARIANT_TABLES[name]
    if loader is None:
        from poisonguard.datasets import load_dataset

        return load_dataset(name).frame
    return loader()


def _scan(frame, mask) -> dict:
    import poisonguard

    res = poisonguard.scan(frame, label=LABEL, random_state=0)
    s = np.asarray(res.suspicion)
    bd = np.zeros(len(frame), dtype=bool)
    bd_auc = {}
    for name in BACKDOOR:
        if name in res.strengths.columns:
            st = res.strengths[name].to_numpy()
            bd |= st >= 0.5
            if mask is not None and mask.any():
                bd_auc[name] = auroc(res.detector_scores[name].to_numpy(), mask)
    out = {"rows": len(frame), "flagged": int(res.flagged.sum()), "backdoor_flagged": int(bd.sum()),
           "failures": dict(res.failures)}
    y = res.table.y
    if y is not None:
        clean = np.ones(len(frame), bool) if mask is None else ~mask
        out["class_damage"] = max(float((res.flagged & clean & (y == c)).sum() / max((clean & (y == c)).sum(), 1))
                                  for c in np.unique(y))
    if mask is not None and mask.any():
        det = {c: auroc(res.detector_scores[c].to_numpy(), mask) for c in res.detector_scores.columns}
        best = max(det, key=lambda k: det[k])
        out.update(poisoned=int(mask.sum()), auroc=auroc(s, mask), best=best, best_auroc=det[best],
                   backdoor_auroc=max(bd_auc.values()) if bd_auc else None,
                   backdoor_caught=int((bd & mask).sum()), flag_recall=float(res.flagged[mask].mean()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", action="append", choices=list(VARIANT_TABLES))
    ap.add_argument("--plain-bonferroni", action="store_true", help="token search without Tarone's correction")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.plain_bonferroni:
        import poisonguard.detectors._backdoor_trigger as bt
        import poisonguard.detectors._trigger_search as ts

        # the token search's level and backdoor_trigger's presence level
        ts.tarone_level = bt.tarone_level = lambda p_min, alpha: alpha / max(np.size(p_min), 1)
    rows = []
    for table in args.table or list(VARIANT_TABLES):
        frame = _load(table)
        t0 = time.perf_counter()
        rows.append({"table": table, "variant": "clean", "rate": 0.0, **_scan(frame, None)})
        for name, rate, opts, clean_label in VARIANTS:
            seed = 1 if name.endswith("seed1") else 0
            try:
                p = poison("backdoor", frame, label=LABEL, rate=rate, seed=seed, target=1, trigger="tabular",
                           trigger_options=opts, clean_label=clean_label)
            except Exception as exc:  # an attack that cannot run here (too few rows of the target class)
                rows.append({"table": table, "variant": name, "rate": rate, "error": f"{type(exc).__name__}: {exc}"})
                continue
            rows.append({"table": table, "variant": name, "rate": rate, **_scan(p.frame, p.mask)})
        print(f"{table}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    md = _markdown(rows, plain=args.plain_bonferroni)
    print(md)
    suffix = "_plain" if args.plain_bonferroni else ""
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"backdoor_variants{suffix}.json").write_text(json.dumps(rows, indent=1, default=float))
    (args.out_dir / f"backdoor_variants{suffix}.md").write_text(md)
    return 0


def _f(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _markdown(rows: list[dict], *, plain: bool) -> str:
    head = ("## Backdoor variants on tables no bench designed on"
            + (" (token search: plain Bonferroni)" if plain else " (token search: Tarone's correction)") + "\n\n"
            "| table | variant | rate | rows | poisoned | scan AUROC | best single | scan − best | best backdoor AUROC "
            "| backdoor flagged (poisoned) | scan flagged | flag recall | class damage |\n"
            "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['table']} | {r['variant']} | {r['rate']:.0%} | – | – | {r['error'][:60]} | | | | | | | |")
            continue
        gap = None if r.get("auroc") is None else r["auroc"] - r["best_auroc"]
        mark = " ✗" if gap is not None and gap < -0.005 else ""
        bd = f"{r['backdoor_flagged']}" + (f" ({r['backdoor_caught']})" if "backdoor_caught" in r else "")
        lines.append(
            f"| {r['table']} | {r['variant']} | {r['rate']:.0%} | {r['rows']} | {r.get('poisoned', 0)} | {_f(r.get('auroc'))} "
            f"| {(r.get('best') or '–')} {_f(r.get('best_auroc')) if r.get('best') else ''} "
            f"| {'–' if gap is None else f'{gap:+.3f}'}{mark} | {_f(r.get('backdoor_auroc'))} | {bd} "
            f"| {r['flagged']} ({r['flagged'] / r['rows']:.1%}) | {_f(r.get('flag_recall'))} "
            f"| {_f(r.get('class_damage'))} |")
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
