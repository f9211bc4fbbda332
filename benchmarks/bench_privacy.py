"""Privacy/accuracy trade-off of DP-SGD on digits (issue #5).

Trains the same torch model (logistic regression by default, ``--model mlp`` for the
MLP) with the same loop at epsilon in {0.5, 1, 2, 3, 4, 8} and without DP, delta=1e-5,
RDP accountant, and reports test accuracy, the epsilon actually spent, and the time
per epoch of DP-SGD relative to non-private training.

Targets: epsilon=3 within 3 accuracy points of no DP; DP time per epoch <= 2x.

Usage: python benchmarks/bench_privacy.py [--model logreg|mlp] [--repeats 3]
Timings are wall-clock on a shared machine and therefore noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from poisonguard.datasets import load_dataset
from poisonguard.training import DPSettings, TrainSettings, train_model

EPSILONS = [0.5, 1.0, 2.0, 3.0, 4.0, 8.0, None]
OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="logreg", choices=["logreg", "mlp"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: least noise on a shared machine)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
    ds = load_dataset("digits")
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(ds.n_rows), test_size=0.25, random_state=0, stratify=ds.frame["label"])
    train, test = ds.frame.iloc[tr].reset_index(drop=True), ds.frame.iloc[te].reset_index(drop=True)
    base = TrainSettings(
        model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, val_fraction=0.0,
        backend="torch", hidden=(64,),
    )
    rows = []
    for eps in EPSILONS:
        accs, spent, sigma, per_epoch = [], [], [], []
        for r in range(args.repeats):
            s = dataclasses.replace(base, seed=r)
            if eps is not None:
                s = dataclasses.replace(s, dp=DPSettings(epsilon=eps, delta=1e-5, max_grad_norm=args.max_grad_norm))
            m = train_model(train, label="label", settings=s)
            accs.append(float(np.mean(m.predict(test) == test["label"].to_numpy())))
            per_epoch.append(m.metadata["training"]["seconds_per_epoch"])
            if eps is not None:
                spent.append(m.metadata["privacy"]["epsilon_spent"])
                sigma.append(m.metadata["privacy"]["noise_multiplier"])
        rows.append({
            "epsilon": eps, "epsilon_spent": float(np.max(spent)) if spent else None,
            "noise_multiplier": float(np.mean(sigma)) if sigma else None,
            "accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
            "seconds_per_epoch": float(np.median(per_epoch)),
        })
    timing = _interleaved_timing(train, base, args.max_grad_norm)
    base_row = rows[-1]
    for row in rows:
        row["accuracy_gap_points"] = 100 * (base_row["accuracy"] - row["accuracy"])
        row["time_ratio_vs_no_dp"] = row["seconds_per_epoch"] / base_row["seconds_per_epoch"]
    md = [
        f"DP-SGD on digits ({args.model}, {len(train)} train / {len(test)} test rows, {args.epochs} epochs, "
        f"batch {args.batch_size}, clip {args.max_grad_norm}, delta 1e-5, RDP accountant, mean of {args.repeats} seeds, "
        f"{args.threads} torch thread(s); time = median seconds per epoch on a shared, loaded 2-core machine)",
        "",
        "| epsilon | epsilon spent (max) | noise multiplier | test accuracy | gap to no DP (points) | time/epoch (s) | DP/non-DP time |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        e = "no DP" if row["epsilon"] is None else f"{row['epsilon']:g}"
        es = "-" if row["epsilon_spent"] is None else f"{row['epsilon_spent']:.3f}"
        nm = "-" if row["noise_multiplier"] is None else f"{row['noise_multiplier']:.3f}"
        md.append(
            f"| {e} | {es} | {nm} | {row['accuracy']:.4f} ± {row['accuracy_std']:.4f} | "
            f"{row['accuracy_gap_points']:.2f} | {row['seconds_per_epoch']:.4f} | {row['time_ratio_vs_no_dp']:.2f}x |"
        )
    md += [
        "",
        f"Interleaved timing (same model and data, epsilon=3 vs no DP, {timing['rounds']} alternating rounds of "
        f"{timing['epochs']} epochs): non-DP {timing['non_dp_s']:.4f} s/epoch, DP {timing['dp_s']:.4f} s/epoch, "
        f"ratio {timing['ratio']:.2f}x (median of per-round ratios; min {timing['ratio_min']:.2f}x, "
        f"max {timing['ratio_max']:.2f}x)",
    ]
    text = "\n".join(md)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"bench_privacy_{args.model}"
    (OUT / f"{name}.md").write_text(text + "\n", encoding="utf-8")
    meta = {"args": vars(args), "platform": platform.platform(), "python": platform.python_version(),
            "note": "wall-clock timings on a shared 2-core machine; noisy", "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (OUT / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows, "timing": timing}, indent=2) + "\n", encoding="utf-8")


def _interleaved_timing(train, base: TrainSettings, clip: float, rounds: int = 7, epochs: int = 5) -> dict:
    """Alternate non-DP and DP runs so that load changes on a shared machine hit both alike."""
    from poisonguard.encoding import TableEncoder
    from poisonguard.training._torch import fit_torch

    feats = [c for c in train.columns if c != "label"]
    X = TableEncoder().fit_transform(train, feats)
    y = train["label"].to_numpy()
    hidden = base.hidden if base.model == "mlp" else ()
    dp = DPSettings(epsilon=3.0, delta=1e-5, max_grad_norm=clip)
    kw = dict(n_classes=10, hidden=hidden, epochs=epochs, batch_size=base.batch_size, lr=base.lr, seed=0)
    fit_torch(X, y, **kw)  # warm-up
    plain, private = [], []
    for _ in range(rounds):
        plain.append(fit_torch(X, y, **kw).seconds_per_epoch)
        private.append(fit_torch(X, y, dp=dp, **kw).seconds_per_epoch)
    ratios = np.array(private) / np.array(plain)
    return {"rounds": rounds, "epochs": epochs, "non_dp_s": float(np.median(plain)), "dp_s": float(np.median(private)),
            "ratio": float(np.median(ratios)), "ratio_min": float(ratios.min()), "ratio_max": float(ratios.max())}


if __name__ == "__main__":
    main()
