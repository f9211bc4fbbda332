"""Training settings and their validation (every problem is collected, then raised once)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError

__all__ = ["DPSettings", "CertifiedSettings", "TrainSettings", "MODELS", "ACCOUNTANTS", "validate_settings"]

MODELS = ("logreg", "mlp", "gbdt", "tree")
ACCOUNTANTS = ("rdp", "prv")


@dataclass(frozen=True)
class DPSettings:
    """DP-SGD settings.

    Give exactly one of ``epsilon`` (the noise is then chosen so that training spends
    at most ``epsilon``) and ``noise_multiplier`` (the epsilon spent is reported).
    """

    epsilon: float | None = None
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    noise_multiplier: float | None = None
    accountant: str = "rdp"


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
    gbdt_iter : int
        Boosting iterations of ``gbdt``.
    tree_depth : int or None
        Maximum depth of ``tree`` (``None``: grow fully).
    max_iter : int
        Solver iterations of scikit-learn's logistic regression.
    backend : {"auto", "torch"}
        ``"torch"`` trains ``logreg`` in torch even without DP, so that a DP model
        and its non-private baseline are the same model and training loop.
    """

    model: str = "logreg"
    val_fraction: float = 0.2
    seed: int = 0
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.01
    hidden: tuple[int, ...] = (64,)
    gbdt_iter: int = 100
    tree_depth: int | None = None
    max_iter: int = 500
    backend: str = "auto"
    dp: DPSettings | None = None
    certified: CertifiedSettings | None = None


def validate_settings(s: TrainSettings, *, n_train: int | None = None) -> None:
    """Raise one :class:`InputError` naming every invalid setting (``n_train``: rows used to fit)."""
    problems: list[str] = []
    if s.model not in MODELS:
        problems.append(f"--model must be one of {', '.join(MODELS)}, got {s.model!r}")
    if not (0 <= s.val_fraction < 1):
        problems.append(f"--val-fraction must be in [0, 1), got {s.val_fraction}")
    if s.epochs < 1:
        problems.append(f"--epochs must be at least 1, got {s.epochs}")
    if s.batch_size < 1:
        problems.append(f"--batch-size must be at least 1, got {s.batch_size}")
    if not (s.lr > 0 and math.isfinite(s.lr)):
        problems.append(f"--lr must be a positive number, got {s.lr}")
    if any(h < 1 for h in s.hidden):
        problems.append(f"hidden layer sizes must be positive, got {list(s.hidden)}")
    if s.backend not in ("auto", "torch"):
        problems.append(f"backend must be 'auto' or 'torch', got {s.backend!r}")
    elif s.backend == "torch" and s.model not in ("logreg", "mlp"):
        problems.append(f"backend 'torch' trains logreg or mlp, not {s.model!r}")
    if s.gbdt_iter < 1:
        problems.append(f"gbdt_iter must be at least 1, got {s.gbdt_iter}")
    if s.tree_depth is not None and s.tree_depth < 1:
        problems.append(f"tree_depth must be at least 1 or None, got {s.tree_depth}")
    if s.dp is not None and s.certified is not None:
        problems.append("--dp and --certified cannot be combined; train them as two models")
    if s.dp is not None:
        problems += _dp_problems(s, n_train)
    if s.certified is not None:
        k = s.certified.partitions
        c = s.certified
        if c.method not in ("dpa", "bagging"):
            problems.append(f"--method must be dpa or bagging, got {c.method!r}")
        if c.bag_size is not None and (c.method != "bagging" or c.bag_size < 1):
            problems.append(f"--bag-size is a positive bagging setting, got {c.bag_size} with method {c.method!r}")
        if not (0 < c.alpha < 1):
            problems.append(f"--alpha must be in (0, 1), got {c.alpha}")
        if s.model not in ("logreg", "tree"):
            problems.append(f"--certified trains logreg or tree base models, not {s.model!r}")
        if k < 2:
            problems.append(f"--partitions must be at least 2, got {k}")
        elif n_train is not None and k > n_train and c.method == "dpa":
            problems.append(f"--partitions {k} is more than the {n_train} training rows; most partitions would be empty")
    if problems:
        raise InputError("invalid training settings: " + "; ".join(problems))


def _dp_problems(s: TrainSettings, n_train: int | None) -> list[str]:
    dp = s.dp
    assert dp is not None
    out: list[str] = []
    if s.model not in ("logreg", "mlp"):
        out.append(f"--dp trains torch models: use --model logreg or mlp, not {s.model!r}")
    if dp.accountant not in ACCOUNTANTS:
        out.append(f"--accountant must be one of {', '.join(ACCOUNTANTS)}, got {dp.accountant!r}")
    if dp.epsilon is not None and dp.noise_multiplier is not None:
        out.append(
            f"give either --epsilon ({dp.epsilon}) or --noise-multiplier ({dp.noise_multiplier}), not both: "
            "the noise is chosen from the target epsilon"
        )
    elif dp.epsilon is None and dp.noise_multiplier is None:
        out.append("--dp needs a privacy target: pass --epsilon E (or --noise-multiplier S)")
    if dp.epsilon is not None and not (dp.epsilon > 0 and math.isfinite(dp.epsilon)):
        out.append(f"--epsilon must be a positive finite number, got {dp.epsilon}")
    if dp.noise_multiplier is not None and not (dp.noise_multiplier > 0 and math.isfinite(dp.noise_multiplier)):
        out.append(f"--noise-multiplier must be positive, got {dp.noise_multiplier}")
    if not (dp.max_grad_norm > 0 and math.isfinite(dp.max_grad_norm)):
        out.append(f"--max-grad-norm must be positive, got {dp.max_grad_norm}")
    if not (0 < dp.delta < 1):
        out.append(f"--delta must be in (0, 1), got {dp.delta}")
    elif n_train is not None and dp.delta >= 1 / n_train:
        out.append(
            f"--delta {dp.delta:g} is not below 1/n = 1/{n_train} = {1 / n_train:.3g}; a delta that large "
            f"allows releasing whole rows. Use e.g. --delta {_suggest_delta(n_train):g}"
        )
    if n_train is not None and s.batch_size > n_train:
        out.append(
            f"--batch-size {s.batch_size} is larger than the {n_train} training rows; Poisson sampling "
            f"needs a sampling rate below 1 for the accounting to give any amplification"
        )
    elif n_train is not None and s.batch_size == n_train:
        out.append(
            f"--batch-size {s.batch_size} equals the number of training rows (sampling rate 1); "
            "use a smaller batch so privacy amplification by sampling applies"
        )
    return out


def _suggest_delta(n: int) -> float:
    return 10 ** math.floor(math.log10(1 / n) - 1)
