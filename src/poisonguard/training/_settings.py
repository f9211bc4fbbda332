"""Training settings and their validation (every problem is collected, then raised once)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError

__all__ = [
    "DPSettings", "CertifiedSettings", "TrainSettings", "MODELS", "ACCOUNTANTS", "ACTIVATIONS",
    "GRAD_SAMPLE_MODES", "validate_settings", "dp_recipe", "EPSILON_WARN", "EPSILON_MAX",
]

MODELS = ("logreg", "mlp", "gbdt", "tree")
ACCOUNTANTS = ("rdp", "prv")
ACTIVATIONS = ("relu", "tanh")
GRAD_SAMPLE_MODES = ("ghost", "hooks", "ew", "functorch")

#: Above this epsilon a model is still trained, but with a warning: an (epsilon, delta)
#: guarantee lets one row change the odds of any outcome by a factor up to e^epsilon,
#: and e^10 (about 22 000) is where practitioners stop calling that private.
EPSILON_WARN = 10.0
#: Above this epsilon DP training is refused: e^100 bounds nothing, so such a budget
#: would only decorate a non-private model with a privacy label. Train without --dp.
EPSILON_MAX = 100.0


@dataclass(frozen=True)
class DPSettings:
    """DP-SGD settings.

    Give exactly one of ``epsilon`` (the noise is then chosen so that training spends
    at most ``epsilon``) and ``noise_multiplier`` (the epsilon spent is reported).

    ``grad_sample_mode`` is how Opacus gets each row's clipped gradient: ``"ghost"``
    (ghost clipping: per-row norms without per-row gradients, then a second backward
    pass; the fastest here), or ``"hooks"``, ``"ew"``, ``"functorch"``, which
    materialise per-row gradients. All clip the same per-row gradient norm, so the
    privacy accounting does not depend on it.
    """

    epsilon: float | None = None
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    noise_multiplier: float | None = None
    accountant: str = "rdp"
    grad_sample_mode: str = "ghost"


@dataclass(frozen=True)
class CertifiedSettings:
    """A certified ensemble.

    Parameters
    ----------
    partitions : int
        Number of base models: disjoint hash partitions for ``"dpa"``, bags for
        ``"bagging"``.
    method : {"dpa", "bagging"}
        Deep Partition Aggregation (exact, deterministic certificate) or bagging
        (Jia, Cao & Gong 2021; holds with probability ``1 - alpha``).
    bag_size : int or None
        Bagging: rows drawn with replacement per bag (default ``max(10, n_train // 20)``).
    alpha : float
        Bagging: the certificate fails with probability at most ``alpha``.
    """

    partitions: int = 50
    method: str = "dpa"
    bag_size: int | None = None
    alpha: float = 0.001


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides how a model is trained (saved in the model's metadata).

    Parameters
    ----------
    model : {"logreg", "mlp", "gbdt", "tree"}
        ``logreg`` is scikit-learn's logistic regression, or a torch linear layer under
        DP; ``mlp`` a torch MLP; ``gbdt`` a histogram gradient-boosted ensemble;
        ``tree`` a decision tree. Under ``certified`` it is the base model
        (``logreg`` or ``tree``).
    val_fraction : float
        Share of rows held out for the validation metrics (stratified; hash-based for
        certified training so the split does not depend on other rows). 0 disables it.
    epochs, batch_size, lr, hidden
        Torch training (``mlp`` and DP models).
    activation : {"relu", "tanh"}
        Hidden-layer activation of ``mlp``. ``tanh`` suits DP-SGD (see :func:`dp_recipe`).
    input_clip : float or None
        Torch models: clamp each standardised input feature to ``[-input_clip,
        input_clip]`` inside the network (training and prediction alike). Bounds the
        gradient of rows with rare, extreme values; a per-row operation, so it costs
        no privacy.
    gbdt_iter : int
        Boosting iterations of ``gbdt``.
    tree_depth : int or None
        Maximum depth of ``tree`` (``None``: grow fully).
    max_iter : int
        Solver iterations of scikit-learn's logistic regression.
    backend : {"auto", "torch"}
        ``"torch"`` trains ``logreg`` in torch even without DP, so that a DP model
        and its non-private baseline are the same model and training loop.
    shrink_batch : bool
        Use at most a third of the training rows per (expected) batch: on a table with
        fewer than ``3 * batch_size`` training rows the batch becomes ``ceil(n_train / 3)``,
        so Poisson sampling keeps a rate of 1/3. Set by :func:`dp_recipe` when
        no batch size is given; the saved settings hold the batch actually used.
    """

    model: str = "logreg"
    val_fraction: float = 0.2
    seed: int = 0
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.01
    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    input_clip: float | None = None
    gbdt_iter: int = 100
    tree_depth: int | None = None
    max_iter: int = 500
    backend: str = "auto"
    shrink_batch: bool = False
    dp: DPSettings | None = None
    certified: CertifiedSettings | None = None


#: the settings that messages name as {name} (rendered as --name by the CLI)
_SETTING_NAMES = ('accountant', 'alpha', 'bag_size', 'batch_size', 'certified', 'delta', 'dp', 'epochs', 'epsilon', 'lr', 'max_grad_norm', 'method', 'model', 'noise_multiplier', 'partitions', 'val_fraction')


def validate_settings(s: TrainSettings, *, n_train: int | None = None) -> None:
    """Raise one :class:`InputError` naming every invalid setting (``n_train``: rows used to fit)."""
    problems: list[str] = []
    if s.model not in MODELS:
        problems.append(f"{{model}} must be one of {', '.join(MODELS)}, got {s.model!r}")
    if not (0 <= s.val_fraction < 1):
        problems.append(f"{{val_fraction}} must be in [0, 1), got {s.val_fraction}")
    if s.epochs < 1:
        problems.append(f"{{epochs}} must be at least 1, got {s.epochs}")
    if s.batch_size < 1:
        problems.append(f"{{batch_size}} must be at least 1, got {s.batch_size}")
    if not (s.lr > 0 and math.isfinite(s.lr)):
        problems.append(f"{{lr}} must be a positive number, got {s.lr}")
    if any(h < 1 for h in s.hidden):
        problems.append(f"hidden layer sizes must be positive, got {list(s.hidden)}")
    torch_model = s.model == "mlp" or s.dp is not None or s.backend == "torch"
    if s.activation not in ACTIVATIONS:
        problems.append(f"activation must be one of {', '.join(ACTIVATIONS)}, got {s.activation!r}")
    elif s.activation != "relu" and s.model != "mlp":
        problems.append(f"activation {s.activation!r} applies to the mlp's hidden layers, not to {s.model!r}")
    if s.input_clip is not None:
        if not (s.input_clip > 0 and math.isfinite(s.input_clip)):
            problems.append(f"input_clip must be a positive number or None, got {s.input_clip}")
        elif not torch_model or s.certified is not None:
            problems.append(
                f"input_clip applies to torch models (mlp, {{dp}}, or backend 'torch'), not to {s.model!r} "
                f"with backend {s.backend!r}"
            )
    if s.backend not in ("auto", "torch"):
        problems.append(f"backend must be 'auto' or 'torch', got {s.backend!r}")
    elif s.backend == "torch" and s.model not in ("logreg", "mlp"):
        problems.append(f"backend 'torch' trains logreg or mlp, not {s.model!r}")
    if s.gbdt_iter < 1:
        problems.append(f"gbdt_iter must be at least 1, got {s.gbdt_iter}")
    if s.tree_depth is not None and s.tree_depth < 1:
        problems.append(f"tree_depth must be at least 1 or None, got {s.tree_depth}")
    if s.dp is not None and s.certified is not None:
        problems.append("{dp} and {certified} cannot be combined; train them as two models")
    if s.dp is not None:
        problems += _dp_problems(s, n_train)
    if s.certified is not None:
        k = s.certified.partitions
        c = s.certified
        if c.method not in ("dpa", "bagging"):
            problems.append(f"{{method}} must be dpa or bagging, got {c.method!r}")
        if c.bag_size is not None and (c.method != "bagging" or c.bag_size < 1):
            problems.append(f"{{bag_size}} is a positive bagging setting, got {c.bag_size} with method {c.method!r}")
        if not (0 < c.alpha < 1):
            problems.append(f"{{alpha}} must be in (0, 1), got {c.alpha}")
        if s.model not in ("logreg", "tree"):
            problems.append(f"{{certified}} trains logreg or tree base models, not {s.model!r}")
        if k < 2:
            problems.append(f"{{partitions}} must be at least 2, got {k}")
        elif n_train is not None and k > n_train and c.method == "dpa":
            problems.append(f"{{partitions}} {k} is more than the {n_train} training rows; most partitions would be empty")
    if problems:
        text = "invalid training settings: " + "; ".join(problems)
        # each setting appears as {name}: the library prints the name, the CLI its option
        raise InputError(text, params=[n for n in _SETTING_NAMES if "{" + n + "}" in text])


def _dp_problems(s: TrainSettings, n_train: int | None) -> list[str]:
    dp = s.dp
    assert dp is not None
    out: list[str] = []
    if s.model not in ("logreg", "mlp"):
        out.append(f"{{dp}} trains torch models: use {{model}} logreg or mlp, not {s.model!r}")
    if dp.grad_sample_mode not in GRAD_SAMPLE_MODES:
        out.append(f"grad_sample_mode must be one of {', '.join(GRAD_SAMPLE_MODES)}, got {dp.grad_sample_mode!r}")
    if dp.accountant not in ACCOUNTANTS:
        out.append(f"{{accountant}} must be one of {', '.join(ACCOUNTANTS)}, got {dp.accountant!r}")
    if dp.epsilon is not None and dp.noise_multiplier is not None:
        out.append(
            f"give either {{epsilon}} ({dp.epsilon}) or {{noise_multiplier}} ({dp.noise_multiplier}), not both: "
            "the noise is chosen from the target epsilon"
        )
    elif dp.epsilon is None and dp.noise_multiplier is None:
        out.append("{dp} needs a privacy target: pass {epsilon} E (or {noise_multiplier} S)")
    if dp.epsilon is not None and not (dp.epsilon > 0 and math.isfinite(dp.epsilon)):
        out.append(f"{{epsilon}} must be a positive finite number, got {dp.epsilon}")
    elif dp.epsilon is not None and dp.epsilon > EPSILON_MAX:
        out.append(
            f"{{epsilon}} {dp.epsilon:g} is above {EPSILON_MAX:g}: a budget that large gives no meaningful "
            f"privacy (one row may change any outcome's odds by e^{dp.epsilon:g}); use a budget of at most "
            f"{EPSILON_WARN:g}, or train without {{dp}}"
        )
    if dp.noise_multiplier is not None and not (dp.noise_multiplier > 0 and math.isfinite(dp.noise_multiplier)):
        out.append(f"{{noise_multiplier}} must be positive, got {dp.noise_multiplier}")
    if not (dp.max_grad_norm > 0 and math.isfinite(dp.max_grad_norm)):
        out.append(f"{{max_grad_norm}} must be positive, got {dp.max_grad_norm}")
    if not (0 < dp.delta < 1):
        out.append(f"{{delta}} must be in (0, 1), got {dp.delta}")
    elif n_train is not None and dp.delta >= 1 / n_train:
        out.append(
            f"{{delta}} {dp.delta:g} is not below 1/n = 1/{n_train} = {1 / n_train:.3g}; a delta that large "
            f"allows releasing whole rows. Use e.g. {{delta}} {_suggest_delta(n_train):g}"
        )
    if n_train is not None and s.batch_size > n_train:
        out.append(
            f"{{batch_size}} {s.batch_size} is larger than the {n_train} training rows; Poisson sampling "
            f"needs a sampling rate below 1 for the accounting to give any amplification"
        )
    elif n_train is not None and s.batch_size == n_train:
        out.append(
            f"{{batch_size}} {s.batch_size} equals the number of training rows (sampling rate 1); "
            "use a smaller batch so privacy amplification by sampling applies"
        )
    return out


def dp_recipe(
    epsilon: float | None = 3.0,
    *,
    noise_multiplier: float | None = None,
    delta: float = 1e-5,
    max_grad_norm: float = 0.1,
    model: str = "mlp",
    accountant: str = "rdp",
    **overrides: object,
) -> TrainSettings:
    """Training settings that work well for DP-SGD on small tables (an MLP by default).

    Compared with the plain defaults (ReLU, batch 128, 30 epochs, lr 0.01, clip 1):

    * ``activation="tanh"``: bounded activations lose less to clipping and noise
      (Papernot et al., "Tempered Sigmoid Activations for Deep Learning with
      Differential Privacy", AAAI 2021);
    * ``input_clip=2.0``: standardised features clamped to [-2, 2], so a row with a
      rare, extreme value does not dominate its clipped gradient (a per-row
      operation: no privacy cost). In the spirit of Tramer & Boneh, "Differentially
      Private Learning Needs Better Features (or Much More Data)", ICLR 2021;
    * ``batch_size=512``, ``epochs=100``: few, large Poisson batches and more passes
      (De et al., "Unlocking High-Accuracy Differentially Private Image
      Classification through Scale", 2022). Few steps per epoch is also what makes
      DP-SGD cheap on small models, where Opacus' per-step cost dominates;
    * ``max_grad_norm=0.1`` with ``lr=0.01``: with Adam a small clip only rescales
      every row's gradient, and the noise with it.

    Tuned on scikit-learn's digits (1347 training rows, 64 features): at epsilon 3
    the 64-unit MLP lands about 2 points below the same MLP without DP, and batch
    256 with 60 epochs does as well (see ``benchmarks/bench_privacy.py``). Opacus
    samples each row with probability ``1 / ceil(n / batch_size)``, a third here.
    Without an explicit ``batch_size`` the batch shrinks to a third of the training
    rows on tables with fewer than 1536 of them (``shrink_batch``); on much larger
    ones a batch of a few thousand keeps the number of steps reasonable.
    ``dp_recipe(None, noise_multiplier=s)`` fixes the noise instead of the budget (the
    epsilon spent is then reported); giving both is refused by validation.
    ``overrides`` replace any other :class:`TrainSettings` field.

    ``poisonguard train --dp`` uses these settings unless ``--no-dp-recipe`` is given;
    options given explicitly override them.
    """
    if "dp" in overrides:
        raise InputError("dp_recipe builds the DP settings itself; pass epsilon, delta and accountant instead")
    base: dict[str, object] = {
        "model": model, "activation": "tanh" if model == "mlp" else "relu", "input_clip": 2.0,
        "hidden": (64,), "batch_size": 512, "epochs": 100, "lr": 0.01, "shrink_batch": "batch_size" not in overrides,
    }
    base.update(overrides)
    dp = DPSettings(epsilon=epsilon, delta=delta, max_grad_norm=max_grad_norm, accountant=accountant,
                    noise_multiplier=noise_multiplier)
    return TrainSettings(dp=dp, **base)  # type: ignore[arg-type]


def _suggest_delta(n: int) -> float:
    return 10 ** math.floor(math.log10(1 / n) - 1)
