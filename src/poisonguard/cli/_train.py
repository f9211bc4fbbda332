"""``poisonguard train | predict | certify | privacy-sweep``: hardened training commands."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from .._io import check_outputs
from ..errors import InputError
from ._app import app, console, err_console

__all__: list[str] = []


def _hidden(spec: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(h) for h in spec.split(",") if h.strip())
    except ValueError as exc:
        raise InputError(f"--hidden must be comma-separated layer sizes like '64,32', got {spec!r}") from exc
    return sizes


@app.command("train")
def train_cmd(
    data: Path = typer.Argument(..., help="Training table (CSV or Parquet)."),
    label: str = typer.Option(..., "--label", "-y", help="Label column."),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory to create."),
    model: str = typer.Option("logreg", "--model", help="logreg | mlp | gbdt | tree."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Rows held out for validation metrics."),
    seed: int = typer.Option(0, "--seed"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Torch models: epochs [30; DP recipe 100]."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="Torch models: (expected) batch size [128; DP recipe 512]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Torch models: Adam learning rate [0.01]."),
    hidden: str = typer.Option("64", "--hidden", help="MLP hidden layer sizes, e.g. '64,32'."),
    activation: Optional[str] = typer.Option(None, "--activation", help="mlp: relu | tanh [relu; DP recipe tanh]."),
    input_clip: Optional[float] = typer.Option(
        None, "--input-clip", help="Torch models: clamp standardised inputs to +-C [none; DP recipe 2]."),
    gbdt_iter: int = typer.Option(100, "--gbdt-iter", help="gbdt: boosting iterations."),
    tree_depth: Optional[int] = typer.Option(None, "--tree-depth", help="tree: maximum depth."),
    dp: bool = typer.Option(False, "--dp", help="Train with DP-SGD (Opacus)."),
    epsilon: Optional[float] = typer.Option(None, "--epsilon", help="DP: target epsilon."),
    delta: Optional[float] = typer.Option(None, "--delta", help="DP: delta (default 1e-5; must be below 1/n)."),
    max_grad_norm: Optional[float] = typer.Option(
        None, "--max-grad-norm", help="DP: per-row gradient clipping norm [1.0; DP recipe 0.1]."),
    dp_recipe: Optional[bool] = typer.Option(
        None, "--dp-recipe/--no-dp-recipe", help="DP: settings tuned for DP-SGD, the default under --dp (tanh, "
        "inputs clamped to +-2, batch 512 or a third of the rows, 100 epochs, clip 0.1); options given "
        "explicitly still apply. --no-dp-recipe: the plain defaults."),
    noise_multiplier: Optional[float] = typer.Option(None, "--noise-multiplier", help="DP: noise instead of --epsilon."),
    accountant: str = typer.Option("rdp", "--accountant", help="DP: rdp | prv."),
    certified: bool = typer.Option(False, "--certified", help="Train a DPA ensemble with certificates."),
    partitions: Optional[int] = typer.Option(None, "--partitions", "-k", help="Certified: number of base models K."),
    method: str = typer.Option("dpa", "--method", help="Certified: dpa (exact) | bagging (probabilistic)."),
    bag_size: Optional[int] = typer.Option(None, "--bag-size", help="Bagging: rows per bag."),
    alpha: float = typer.Option(0.001, "--alpha", help="Bagging: failure probability of the certificate."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow writing into a non-empty --out."),
) -> None:
    """Train a model and save it in the safe format (arrays/JSON, state_dict, skops)."""
    import dataclasses

    from ..training import CertifiedSettings, DPSettings, TrainSettings, check_model_out, save_model, train_model
    from ..training import dp_recipe as make_recipe

    check_outputs({"--out": out}, {"DATA": data})
    if not dp and (epsilon is not None or noise_multiplier is not None or delta is not None
                   or dp_recipe is not None or max_grad_norm is not None):
        raise InputError("--epsilon, --delta, --noise-multiplier, --max-grad-norm and --dp-recipe need --dp")
    if not certified and (partitions is not None or method != "dpa" or bag_size is not None):
        raise InputError("--partitions, --method and --bag-size need --certified")
    given = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "activation": activation,
                               "input_clip": input_clip}.items() if v is not None}
    common = dict(val_fraction=val_fraction, seed=seed, hidden=_hidden(hidden), gbdt_iter=gbdt_iter,
                  tree_depth=tree_depth)
    certificate = CertifiedSettings(
        partitions=50 if partitions is None else partitions, method=method, bag_size=bag_size, alpha=alpha,
    ) if certified else None
    if dp and dp_recipe is not False:  # whoever asks for DP gets the settings that work for it
        settings = make_recipe(
            epsilon, noise_multiplier=noise_multiplier, delta=1e-5 if delta is None else delta,
            max_grad_norm=0.1 if max_grad_norm is None else max_grad_norm, model=model, accountant=accountant,
            **{**common, **given},
        )
        settings = dataclasses.replace(settings, certified=certificate)
    else:
        settings = TrainSettings(
            model=model, **common, **given,
            dp=DPSettings(
                epsilon=epsilon, delta=1e-5 if delta is None else delta,
                max_grad_norm=1.0 if max_grad_norm is None else max_grad_norm,
                noise_multiplier=noise_multiplier, accountant=accountant,
            ) if dp else None,
            certified=certificate,
        )
    check_model_out(out, overwrite=overwrite)  # before minutes of training, not after
    m = train_model(data, label=label, settings=settings)
    digest = save_model(m, out, overwrite=overwrite)
    meta = m.metadata
    console.print(f"trained {model} ({m.kind}) on {meta['n_train']} rows; saved to {out}", highlight=False)
    if meta["metrics"]:
        console.print(
            f"validation ({meta['n_val']} rows): accuracy {meta['metrics']['accuracy']:.4f}, "
            f"macro F1 {meta['metrics']['macro_f1']:.4f}", highlight=False,
        )
    if meta["privacy"]:
        p = meta["privacy"]
        target = "" if p["target_epsilon"] is None else f" (target {p['target_epsilon']:g})"
        console.print(
            f"privacy: epsilon spent {p['epsilon_spent']:.4f}{target} at delta {p['delta']:g}, "
            f"{p['accountant']} accountant, noise multiplier {p['noise_multiplier']:.4f}, "
            f"clip {p['max_grad_norm']:g}, sample rate {p['sample_rate']:.4f}, {p['steps']} steps",
            highlight=False,
        )
    if meta["certified"]:
        c = meta["certified"]
        acc = c.get("validation_certified_accuracy", {})
        shown = ", ".join(f"r>={r}: {v:.3f}" for r, v in acc.items())
        what = "DPA" if m.kind == "dpa" else f"bagging (bags of {c['bag_size']}, alpha {c['alpha']:g})"
        console.print(f"{what}: K={c['partitions']} {c['base_model']} models; validation certified accuracy {shown}", highlight=False)
    for note in meta.get("warnings", []):
        err_console.print(f"warning: {note}", highlight=False, markup=False)
    console.print(f"manifest sha256 {digest}", highlight=False)


@app.command("predict")
def predict_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by `train`."),
    data: Path = typer.Argument(..., help="Rows to predict (CSV or Parquet)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write predictions here (default: stdout)."),
    expect_sha256: Optional[str] = typer.Option(None, "--expect-sha256", help="Refuse unless the manifest has this digest."),
) -> None:
    """Batch predictions from a saved model (every model file's hash is verified first)."""
    import pandas as pd

    from ..training import certify, load_model
    from ..validation import load_table, save_table

    check_outputs({"--out": out}, {"DATA": data}, input_dirs={"MODEL_DIR": model_dir})
    m = load_model(model_dir, expected_manifest_sha256=expect_sha256)
    df = m.validate_rows(load_table(data), where=str(data))
    if m.certified:
        res = certify(m, df)
        pred = res.rows[["prediction", "radius"]]
    else:
        pred = pd.DataFrame({"prediction": m.predict(df)})
    if out is None:
        typer.echo(pred.to_csv(index=False), nl=False)
    else:
        save_table(pred, out)
        console.print(f"wrote {len(pred)} predictions to {out}", highlight=False)


@app.command("certify")
def certify_cmd(
    model_dir: Path = typer.Argument(..., help="A DPA model directory (train --certified)."),
    data: Path = typer.Argument(..., help="Rows to certify; with the label column for certified accuracy."),
    out: Path = typer.Option(Path("certify-out"), "--out", "-o", help="Output directory."),
    label: Optional[str] = typer.Option(None, "--label", "-y", help="Label column (default: the model's)."),
) -> None:
    """Certified radius per prediction, certified accuracy per radius (CSV + PNG).

    The radius is how many training rows an attacker could insert, delete or relabel
    without changing the prediction: exact for DPA, with probability 1 - alpha for
    bagging (-1: not certified).
    """
    from ..training import certify, load_model
    from ..validation import load_table

    check_outputs({"--out": out}, {"DATA": data}, input_dirs={"MODEL_DIR": model_dir})
    m = load_model(model_dir)
    res = certify(m, load_table(data), label=label)
    paths = res.write(out)
    console.print(f"wrote per-row certificates to {paths['rows']}", highlight=False)
    r = res.rows["radius"]
    console.print(f"{res.method}: radius median {r.median():g}, max {r.max()} (K={res.partitions})", highlight=False)
    if res.curve is not None:
        from rich.table import Table

        t = Table(title="certified accuracy")
        t.add_column("radius", justify="right")
        t.add_column("certified accuracy", justify="right")
        for rad in sorted({0, 1, 2, 5, 10, 20, int(r.max())}):
            t.add_row(str(rad), f"{res.accuracy_at(rad):.4f}")
        console.print(t)
        console.print(f"curve: {paths['curve']}, plot: {paths['plot']}", highlight=False)


def _epsilons(spec: str) -> list[float | None]:
    out: list[float | None] = []
    for tok in (t.strip().lower() for t in spec.split(",")):
        if not tok:
            continue
        if tok in ("none", "nodp", "inf"):
            out.append(None)
            continue
        try:
            v = float(tok)
        except ValueError as exc:
            raise InputError(f"--epsilons must be numbers or 'none', got {tok!r}") from exc
        if not (v > 0 and math.isfinite(v)):
            raise InputError(f"every epsilon must be positive and finite, got {tok}")
        out.append(v)
    if not out:
        raise InputError("--epsilons is empty")
    return out


@app.command("privacy-sweep")
def privacy_sweep_cmd(
    data: Path = typer.Argument(..., help="Table (CSV or Parquet)."),
    label: str = typer.Option(..., "--label", "-y"),
    out: Path = typer.Option(Path("privacy-sweep-out"), "--out", "-o", help="Output directory."),
    epsilons: str = typer.Option("0.5,1,2,4,8,none", "--epsilons", help="Budgets; 'none' = no DP."),
    model: str = typer.Option("mlp", "--model", help="logreg | mlp (torch)."),
    attack: Optional[str] = typer.Option(None, "--attack", help="flip | backdoor."),
    rate: float = typer.Option(0.1, "--rate", help="Attack: fraction of training rows poisoned."),
    target: Optional[str] = typer.Option(None, "--target", help="Backdoor: target class."),
    image_shape: Optional[str] = typer.Option(None, "--image-shape", help="Backdoor: pixel grid, e.g. 8x8 (patch trigger)."),
    delta: float = typer.Option(1e-5, "--delta"),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm"),
    accountant: str = typer.Option("rdp", "--accountant", help="rdp | prv."),
    epochs: int = typer.Option(20, "--epochs"),
    batch_size: int = typer.Option(128, "--batch-size"),
    lr: float = typer.Option(0.01, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    repeats: int = typer.Option(1, "--repeats", help="Runs per budget (averaged)."),
) -> None:
    """Accuracy, and an attack's damage, at each privacy budget (table + PNG)."""
    from ..training import TrainSettings, privacy_sweep

    check_outputs({"--out": out}, {"DATA": data})
    if model not in ("logreg", "mlp"):
        raise InputError(f"privacy-sweep trains torch models: --model logreg or mlp, not {model!r}")
    if attack is not None and attack not in ("flip", "backdoor"):
        raise InputError(f"--attack must be flip or backdoor, got {attack!r}")
    if target is not None and attack != "backdoor":
        raise InputError("--target is a backdoor setting; pass --attack backdoor")
    shape = None
    if image_shape is not None:
        try:
            h, w = (int(v) for v in image_shape.lower().split("x"))
        except ValueError as exc:
            raise InputError(f"--image-shape must look like 8x8, got {image_shape!r}") from exc
        shape = (h, w)
    settings = TrainSettings(model=model, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    res = privacy_sweep(
        data, label=label, epsilons=_epsilons(epsilons), settings=settings, delta=delta,
        max_grad_norm=max_grad_norm, accountant=accountant, attack=attack, attack_rate=rate,
        target=target, image_shape=shape, repeats=repeats,
    )
    paths = res.write(out)
    typer.echo(res.to_markdown())  # plain stdout: rich would wrap the table's long lines
    console.print(f"wrote {paths['csv']}, {paths['md']} and {paths['plot']}", highlight=False)
