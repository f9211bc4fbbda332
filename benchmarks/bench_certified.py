"""Certified accuracy of Deep Partition Aggregation (issue #5).

DPA (Levine & Feizi, ICLR 2021) with K in {10, 25, 50} hash partitions of logistic
regressions, on digits and on a generated 20 000-row ``make_classification`` table.
Reports clean accuracy beside certified accuracy at radius 1, 5 and 10,
and the accuracy of one logistic regression on all the training data for reference.
A bagging certificate (Jia, Cao & Gong, AAAI 2021; 200 bags) is reported beside.

Usage: python benchmarks/bench_certified.py
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from poisonguard.datasets import load_dataset
from poisonguard.training import CertifiedSettings, TrainSettings, certify, train_model

KS = (10, 25, 50)
BAGS = 200
RADII = (1, 5, 10)
OUT = Path(__file__).parent / "results"


def _tables() -> dict[str, pd.DataFrame]:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=20_000, n_features=20, n_informative=10, n_redundant=4, n_classes=4,
        n_clusters_per_class=2, class_sep=1.5, random_state=0,
    )
    synth = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    synth["label"] = y
    return {"digits": load_dataset("digits").frame, "make_classification 20k": synth}


def main() -> None:
    from sklearn.model_selection import train_test_split

    rows = []
    for name, df in _tables().items():
        tr, te = train_test_split(np.arange(len(df)), test_size=0.25, random_state=0, stratify=df["label"])
        train, test = df.iloc[tr].reset_index(drop=True), df.iloc[te].reset_index(drop=True)
        single = train_model(train, label="label", settings=TrainSettings(model="logreg", val_fraction=0.0))
        single_acc = float(np.mean(single.predict(test) == test["label"].to_numpy()))
        for k in KS:
            t0 = time.perf_counter()
            s = TrainSettings(model="logreg", val_fraction=0.0, certified=CertifiedSettings(partitions=k))
            m = train_model(train, label="label", settings=s)
            res = certify(m, test)
            rows.append({
                "data": name, "n_train": len(train), "n_test": len(test), "K": k,
                "single_model_accuracy": single_acc, "clean_accuracy": res.accuracy_at(0),
                **{f"certified_r{r}": res.accuracy_at(r) for r in RADII},
                "median_radius": float(res.rows["radius"].median()),
                "seconds": time.perf_counter() - t0,
            })
        # second method: bagging certificate, bags of n/25 rows (the size of a K=25 partition)
        t0 = time.perf_counter()
        bag = max(10, len(train) // 25)
        s = TrainSettings(model="logreg", val_fraction=0.0,
                          certified=CertifiedSettings(partitions=BAGS, method="bagging", bag_size=bag, alpha=0.001))
        m = train_model(train, label="label", settings=s)
        res = certify(m, test)
        rows.append({
            "data": name, "n_train": len(train), "n_test": len(test), "K": f"bagging T={BAGS}, k={bag}",
            "single_model_accuracy": single_acc,
            "clean_accuracy": float(np.mean(res.rows["correct"])),
            **{f"certified_r{r}": res.accuracy_at(r) for r in RADII},
            "median_radius": float(res.rows["radius"].median()),
            "seconds": time.perf_counter() - t0,
        })
    md = [
        "DPA (exact certificate), logistic-regression base models, 75/25 stratified split; accuracy on the "
        "test part. Bagging rows: Jia et al. certificate, holds with probability 0.999.",
        "",
        "| data | K | one model, all data | DPA clean accuracy | certified r=1 | certified r=5 | certified r=10 | median radius |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['data']} | {r['K']} | {r['single_model_accuracy']:.4f} | {r['clean_accuracy']:.4f} | "
            f"{r['certified_r1']:.4f} | {r['certified_r5']:.4f} | {r['certified_r10']:.4f} | {r['median_radius']:g} |"
        )
    text = "\n".join(md)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_certified.md").write_text(text + "\n", encoding="utf-8")
    meta = {"platform": platform.platform(), "python": platform.python_version(),
            "note": "timings on a shared 2-core machine; noisy", "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (OUT / "bench_certified.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
