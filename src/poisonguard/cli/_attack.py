"""``poisonguard attack``: write a poisoned copy of a table and its ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from .._io import atomic_write_json, check_outputs
from ..errors import InputError
from ._app import app, console


def _parse_shape(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().replace("*", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"--image-shape must look like 8x8, got {text!r}") from None
    if h < 1 or w < 1:
        raise InputError(f"--image-shape must be positive, got {text!r}")
    return (h, w)


def _parse_floats(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} must be numbers separated by commas, got {text!r}") from None


@app.command("attack")
def attack_command(
    data: Optional[Path] = typer.Argument(None, help="Clean table (CSV or Parquet); or use --dataset."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Built-in table: digits, breast_cancer, wine, synthetic."),
    n_rows: Optional[int] = typer.Option(None, "--n-rows", help="Rows of --dataset (synthetic: size; others: subset)."),
    label: str = typer.Option("label", "--label", help="Label column."),
    features: Optional[str] = typer.Option(None, "--features", help="Feature columns, comma-separated (default: all but the label)."),
    kind: str = typer.Option(
        ..., "--kind",
        help="flip, pair, targeted, boundary, outlier, perturbed, duplicate_flip, scaled or backdoor.",
    ),
    rate: float = typer.Option(0.1, "--rate", help="Fraction of rows to poison, in (0, 1)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed, same poisoned table."),
    target: Optional[str] = typer.Option(None, "--target", help="Target class (pair, targeted, boundary, backdoor)."),
    source_class: Optional[str] = typer.Option(None, "--source-class", help="Class whose rows are flipped (pair, targeted)."),
    scale: str = typer.Option("4,8", "--scale", help="Outlier / perturbation distance from the mean, in std: LOW,HIGH."),
    placement: str = typer.Option(
        "far", "--placement", help="Outliers: far, in_range, cluster or cluster_in_range."),
    spread: float = typer.Option(0.05, "--spread", help="Outlier clusters: blob width, as a share of each column's spread."),
    n_columns: int = typer.Option(3, "--n-columns", help="Perturbed copies: columns pushed out per copy."),
    factor: float = typer.Option(10.0, "--factor", help="Scaled rows: the factor numeric features are multiplied by."),
    trigger: Optional[str] = typer.Option(None, "--trigger", help="Backdoor trigger: patch, blend or tabular."),
    image_shape: Optional[str] = typer.Option(None, "--image-shape", help="Pixel grid HxW (digits: 8x8, set automatically)."),
    patch_size: int = typer.Option(2, "--patch-size", help="Patch side in pixels."),
    position: str = typer.Option("bottom-right", "--position", help="Patch position: bottom-right, bottom-left, top-right, top-left, centre, random."),
    trigger_value: Optional[float] = typer.Option(None, "--trigger-value", help="Patch pixel value (default: max observed)."),
    alpha: float = typer.Option(0.2, "--alpha", help="Blend weight of the pattern."),
    trigger_features: Optional[str] = typer.Option(None, "--trigger-features", help="Tabular trigger columns, comma-separated."),
    trigger_values: Optional[str] = typer.Option(None, "--trigger-values", help="Tabular trigger values: numbers, or p99.9 / outside."),
    clean_label: bool = typer.Option(False, "--clean-label", help="Backdoor: stamp target-class rows and keep their labels."),
    holdout: Optional[Path] = typer.Option(None, "--holdout", help="Backdoor: write a test split (clean + triggered rows) here."),
    holdout_fraction: float = typer.Option(0.2, "--holdout-fraction", help="Share of rows split off for --holdout."),
    out: Path = typer.Option(..., "--out", help="Poisoned table to write (.csv or .parquet)."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Ground truth CSV row,poisoned (default: <out stem>.truth.csv)."),
    mask_column: Optional[str] = typer.Option(None, "--mask-column", help="Also put the mask into the table as this column."),
) -> None:
    """Write a poisoned copy of a table, its ground truth and the attack's settings.

    Beside --out it writes <stem>.attack.json (kind and resolved settings) and, for a
    backdoor, <stem>.trigger.json (reusable with poisonguard.attacks.load_trigger).
    """
    from ..attacks import ATTACK_KINDS, poison, save_trigger
    from ..datasets import load_dataset
    from ..validation import load_table, parse_columns, save_table

    if (data is None) == (dataset is None):
        raise InputError("give either a DATA file or --dataset NAME (exactly one)")
    truth_path = truth if truth is not None else out.with_name(f"{out.stem}.truth.csv")
    meta_path = out.with_name(f"{out.stem}.attack.json")
    trigger_path = out.with_name(f"{out.stem}.trigger.json")
    check_outputs(
        {"--out": out, "--truth": truth_path, "--holdout": holdout, "<out>.attack.json": meta_path,
         "<out>.trigger.json": trigger_path if kind == "backdoor" else None},
        {"DATA": data},
    )
    if kind not in ATTACK_KINDS:
        raise InputError(f"unknown --kind {kind!r}; choose one of: {', '.join(ATTACK_KINDS)}")
    shape = _parse_shape(image_shape)
    if dataset is not None:
        ds = load_dataset(dataset, n_rows=n_rows, seed=seed)
        frame = ds.frame
        if shape is None:
            shape = ds.image_shape
    else:
        if n_rows is not None:
            raise InputError("--n-rows only applies to --dataset")
        frame = load_table(data)

    params: dict[str, Any] = {}
    if kind != "flip" and features is not None:
        params["features"] = parse_columns(features)
    if kind in ("targeted", "pair"):
        if source_class is None or target is None:
            raise InputError(f"--kind {kind} needs --source-class A and --target B")
        params.update(source_class=source_class, target_class=target)
    elif kind == "boundary":
        if target is None:
            raise InputError("--kind boundary needs --target CLASS")
        params["target_class"] = target
    elif kind in ("outlier", "perturbed"):
        lo_hi = _parse_floats(scale, "--scale")
        if len(lo_hi) != 2:
            raise InputError(f"--scale must be two numbers LOW,HIGH, got {scale!r}")
        params["scale"] = tuple(lo_hi)
        if kind == "outlier":
            params.update(placement=placement, spread=spread)
        else:
            params["n_columns"] = n_columns
    elif kind == "scaled":
        params["factor"] = factor
    elif kind == "backdoor":
        if target is None:
            raise InputError("--kind backdoor needs --target CLASS")
        options: dict[str, Any] = {}
        if trigger in (None, "patch"):
            options.update(size=patch_size, position=position, value=trigger_value)
        if trigger == "blend":
            options["alpha"] = alpha
        if trigger_features is not None:
            options["trigger_features"] = parse_columns(trigger_features)
        if trigger_values is not None:
            vals = trigger_values.strip()
            options["trigger_values"] = vals if vals in ("p99.9", "outside") else _parse_floats(vals, "--trigger-values")
        if shape is None:
            options = {k: v for k, v in options.items() if k in ("trigger_features", "trigger_values")}
        params.update(
            target=target, trigger=trigger, image_shape=shape, clean_label=clean_label,
            holdout_fraction=holdout_fraction if holdout is not None else None, trigger_options=options,
        )
    if kind != "backdoor" and (holdout is not None or clean_label or trigger is not None):
        raise InputError("--holdout, --clean-label and --trigger only apply to --kind backdoor")
    if kind not in ("targeted", "pair", "boundary", "backdoor") and target is not None:
        raise InputError(f"--target does not apply to --kind {kind}")
    if kind not in ("targeted", "pair") and source_class is not None:
        raise InputError(f"--source-class does not apply to --kind {kind}")

    result = poison(kind, frame, label=label, rate=rate, seed=seed, **params)

    table = result.frame
    if mask_column is not None:
        if mask_column in table.columns:
            raise InputError(f"--mask-column {mask_column!r} already is a column of the table")
        table = table.assign(**{mask_column: result.mask})
    save_table(table, out)
    save_table(result.truth(), truth_path)
    meta = {"kind": result.kind, "label": result.label, "target": result.params.get("target", result.params.get("target_class")),
            "source": str(data) if data is not None else f"dataset:{dataset}", "params": result.params}
    atomic_write_json(json.loads(json.dumps(meta, default=str)), meta_path)
    written = [str(out), str(truth_path), str(meta_path)]
    if result.trigger is not None:
        written.append(str(save_trigger(result.trigger, trigger_path)))
    if holdout is not None and result.holdout is not None:
        written.append(str(save_table(result.holdout, holdout)))
    console.print(
        f"poisoned {result.n_poisoned} of {len(result.frame)} rows ({result.kind}, rate {rate}, seed {seed}); "
        f"wrote {', '.join(written)}",
        highlight=False, markup=False, soft_wrap=True,
    )
