"""Torch models (logistic regression and MLP) trained with or without DP-SGD (Opacus).

torch and opacus are optional: they are imported lazily, through
:func:`poisonguard._optional.import_optional`, when a torch model is trained or loaded.

DP-SGD uses Opacus' :class:`~opacus.PrivacyEngine` with Poisson sampling (its
default), so each step's sampling matches what the accountant assumes. Given a target
``epsilon`` the noise multiplier is chosen by Opacus' search, which only accepts a
noise whose accounted epsilon is below the target; the epsilon actually spent is then
read back from the accountant after training and reported.

Two choices make DP-SGD work on small tables (see :func:`~poisonguard.training.dp_recipe`):

* bounded features and activations: an optional parameter-free ``Hardtanh`` on the
  (standardised) inputs, ``input_clip``, caps how far one rare, extreme value can push
  a row's gradient, so clipping cuts less signal; and ``tanh`` hidden units keep
  activations bounded (Papernot et al., "Tempered Sigmoid Activations for Deep
  Learning with Differential Privacy", AAAI 2021). Both act on one row at a time
  and cost no privacy.
* fewer, larger Poisson batches with a small clipping norm (De et al., "Unlocking
  High-Accuracy Differentially Private Image Classification through Scale", 2022;
  Tramer & Boneh, "Differentially Private Learning Needs Better Features (or Much
  More Data)", ICLR 2021).

Speed: per-row clipping norms come from Opacus' ghost clipping by default
(``grad_sample_mode="ghost"``), which never materialises per-sample gradients, and
the rows are fetched a batch at a time from in-memory tensors (:class:`_Rows`) while
Opacus' own Poisson sampler still chooses which rows form each batch.
"""

from __future__ import annotations

import io
import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._optional import import_optional
from ..errors import IntegrityError

__all__ = [
    "TorchFit", "build_net", "fit_torch", "calibrate_noise", "SIGMA_MIN", "SIGMA_MAX",
    "torch_scores", "load_state_dict_bytes", "state_dict_bytes",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TorchFit:
    """What training a torch model produced."""

    state_dict: dict[str, Any]
    arch: dict[str, Any]
    epsilon_spent: float | None
    noise_multiplier: float | None
    sample_rate: float
    steps: int
    seconds_per_epoch: float


def _torch() -> Any:
    return import_optional("torch", "torch")


ACTIVATIONS = ("relu", "tanh")


def build_net(arch: dict[str, Any]) -> Any:
    """``Linear`` (hidden=[]) or ``Linear-act-...-Linear`` from an architecture dict.

    ``arch["activation"]`` is ``"relu"`` or ``"tanh"`` and ``arch["input_clip"]`` an
    optional clamp of the inputs to ``[-c, c]``; architectures saved before these keys
    existed are ReLU networks without a clamp.
    """
    torch = _torch()
    nn = torch.nn
    act = str(arch.get("activation", "relu"))
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {', '.join(ACTIVATIONS)}")
    sizes = [int(arch["n_in"]), *[int(h) for h in arch["hidden"]], int(arch["n_out"])]
    layers: list[Any] = []
    clip = arch.get("input_clip")
    if clip is not None:  # parameter-free; shifts the Linear layers' state_dict keys by one (arch records it)
        layers.append(nn.Hardtanh(-float(clip), float(clip)))
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU() if act == "relu" else nn.Tanh())
    return nn.Sequential(*layers)


class _Rows:
    """In-memory rows that a ``DataLoader`` fetches a whole batch at a time.

    With ``__getitems__`` the loader indexes the tensors once per batch instead of
    once per row and stacking, which is most of a step's cost on small models. The
    batches themselves (which rows) still come from the loader's sampler: Opacus'
    Poisson sampler under DP, so the accounting is unchanged.
    """

    def __init__(self, X: Any, y: Any) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.X[i], self.y[i]

    def __getitems__(self, idx: list[int]) -> tuple[Any, Any]:
        i = _torch().as_tensor(idx, dtype=_torch().long)
        return self.X[i], self.y[i]


def _batch(data: tuple[Any, Any]) -> tuple[Any, Any]:
    """Collate for :class:`_Rows`: the fetched pair already is the batch (possibly empty)."""
    return data


def fit_torch(
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    hidden: tuple[int, ...],
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    dp: Any = None,
    activation: str = "relu",
    input_clip: float | None = None,
) -> TorchFit:
    """Train a torch classifier; with ``dp`` (a :class:`DPSettings`) use DP-SGD via Opacus.

    ``activation`` (``"relu"`` or ``"tanh"``) is used between hidden layers;
    ``input_clip`` (``None`` or ``c > 0``) clamps every input feature to ``[-c, c]``
    inside the network, so prediction applies the same clamp.
    """
    torch = _torch()
    torch.manual_seed(seed)
    arch = {"n_in": int(X.shape[1]), "hidden": [int(h) for h in hidden], "n_out": int(n_classes),
            "activation": activation, "input_clip": input_clip}
    model = build_net(arch)
    Xt = torch.tensor(np.asarray(X, dtype=np.float32))  # copies: inputs may be read-only views
    yt = torch.tensor(np.asarray(y, dtype=np.int64))
    ds = _Rows(Xt, yt)
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, generator=gen, collate_fn=_batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    engine = None
    noise = None
    if dp is not None:
        opacus = import_optional("opacus", "dp")
        with warnings.catch_warnings():
            # Opacus warns that its RNG is not cryptographically secure; secure_mode is
            # much slower and meant for a final production run. Recorded in metadata.
            warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")
            engine = opacus.PrivacyEngine(accountant=dp.accountant)
            common = dict(
                module=model, optimizer=optimizer, criterion=loss_fn, data_loader=loader,
                max_grad_norm=dp.max_grad_norm, poisson_sampling=True, grad_sample_mode=dp.grad_sample_mode,
            )
            sigma = dp.noise_multiplier
            if sigma is None:
                # our own bounded search instead of make_private_with_epsilon, whose search
                # never ends for a huge target; same sampling rate and steps as Opacus uses
                rate = 1 / len(loader)
                sigma = calibrate_noise(target_epsilon=dp.epsilon, delta=dp.delta, sample_rate=rate,
                                        steps=int(epochs / rate), accountant=dp.accountant)
            out = engine.make_private(noise_multiplier=sigma, **common)
        if len(out) == 4:  # ghost clipping also wraps the loss (two backward passes)
            model_p, optimizer, loss_fn, loader = out
        else:
            model_p, optimizer, loader = out
        noise = float(optimizer.noise_multiplier)
    else:
        model_p = model
    t0 = time.perf_counter()
    model_p.train()
    with warnings.catch_warnings():
        # the first layer's inputs need no gradient; Opacus' hooks work regardless
        warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")
        steps = _loop(model_p, loader, optimizer, loss_fn, epochs)
    per_epoch = (time.perf_counter() - t0) / max(epochs, 1)
    eps = None
    if engine is not None:
        eps = float(engine.get_epsilon(dp.delta))
    sample_rate = min(1.0, batch_size / len(ds)) if dp is None else float(loader.sample_rate)
    # ``model`` shares its parameters with the Opacus wrapper; its keys carry no "_module." prefix.
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TorchFit(
        state_dict=state, arch=arch, epsilon_spent=eps, noise_multiplier=noise,
        sample_rate=sample_rate, steps=steps, seconds_per_epoch=per_epoch,
    )


#: The noise search's range: Opacus' own upper limit, and a floor below which no
#: budget the settings accept (epsilon <= EPSILON_MAX) needs to go.
SIGMA_MIN = 1e-3
SIGMA_MAX = 1e6
_MAX_EVALUATIONS = 80


def calibrate_noise(*, target_epsilon: float, delta: float, sample_rate: float, steps: int,
                    accountant: str = "rdp", tolerance: float = 0.01) -> float:
    """The smallest noise multiplier (within ``tolerance`` in epsilon) that spends at most ``target_epsilon``.

    A bounded search: the noise stays in ``[SIGMA_MIN, SIGMA_MAX]`` and the accountant
    is asked at most ``_MAX_EVALUATIONS`` times, so a huge target cannot make it loop
    (Opacus' ``get_noise_multiplier`` bisects until the epsilon is within 0.01 of the
    target, which a target of 1e300 never is). The result always satisfies
    ``epsilon(noise) <= target_epsilon`` under ``accountant``.

    The PRV accountant gets slow and memory-hungry at small noise (minutes at 0.1), so
    the bracket is found with RDP first: PRV's epsilon is not larger than RDP's, so
    PRV only refines the RDP noise downwards, by at most a factor 2.

    Raises
    ------
    ValueError
        Even ``SIGMA_MAX`` spends more than ``target_epsilon``.
    """
    opacus = import_optional("opacus", "dp")
    acc = {m: opacus.accountants.create_accountant(mechanism=m) for m in {"rdp", accountant}}
    budget = [_MAX_EVALUATIONS]

    def eps(sigma: float, mech: str) -> float:
        budget[0] -= 1
        acc[mech].history = [(sigma, sample_rate, steps)]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.filterwarnings("ignore", message=".*Optimal order is the (largest|smallest) alpha.*")
            try:
                e = float(acc[mech].get_epsilon(delta=delta))
            except (ValueError, OverflowError, ZeroDivisionError, FloatingPointError, MemoryError):
                # the accountants' numerics give out only at very little noise (PRV then asks
                # numpy for terabytes, which fails at once): that noise is too little
                return math.inf
        return e if math.isfinite(e) else math.inf

    e_max = eps(SIGMA_MAX, accountant)
    if e_max > target_epsilon:
        raise ValueError(f"even the largest noise multiplier searched ({SIGMA_MAX:g}) spends epsilon {e_max:.4g}")
    if eps(SIGMA_MAX, "rdp") > target_epsilon:  # below RDP's floor (its finite orders); PRV alone
        return _search(lambda s: eps(s, accountant), target_epsilon, 1.0, tolerance, budget)
    hi = _search(lambda s: eps(s, "rdp"), target_epsilon, 1.0, tolerance, budget)
    if accountant == "rdp" or hi <= 2 * SIGMA_MIN:
        return hi
    if eps(hi, accountant) > target_epsilon:  # PRV above RDP here (numerical slack): search upwards
        return _search(lambda s: eps(s, accountant), target_epsilon, 2 * hi, tolerance, budget, floor=hi)
    return _search(lambda s: eps(s, accountant), target_epsilon, hi, tolerance, budget, floor=hi / 2)


def _search(eps: Any, target: float, start: float, tolerance: float, budget: list[int], *,
            floor: float = SIGMA_MIN) -> float:
    """A noise in ``[floor, SIGMA_MAX]`` whose epsilon is at most ``target`` (Opacus' search, bounded).

    Brackets the answer by doubling or halving from ``start``, then bisects until the
    epsilon is within ``tolerance`` of the target or the evaluations run out; the
    upper end, which always meets the target, is returned.
    """
    lo, hi = floor, min(max(start, floor), SIGMA_MAX)
    e_hi = eps(hi)
    while e_hi > target and budget[0] > 0:  # too little noise: double
        if hi >= SIGMA_MAX:
            raise ValueError(f"even the largest noise multiplier searched ({SIGMA_MAX:g}) spends epsilon {e_hi:.4g}")
        lo, hi = hi, min(2 * hi, SIGMA_MAX)
        e_hi = eps(hi)
    if e_hi > target:
        return SIGMA_MAX  # out of evaluations: the most noise is always within budget
    while lo < hi / 2 and budget[0] > 0:  # enough noise: halve until the bracket is tight
        e = eps(max(hi / 2, lo))
        if e > target:
            lo = max(hi / 2, lo)
            break
        hi, e_hi = max(hi / 2, lo), e
    if hi <= floor:
        return floor
    while budget[0] > 0 and target - e_hi > tolerance and hi - lo > 1e-9 * hi:
        mid = (lo + hi) / 2
        e = eps(mid)
        if e <= target:
            hi, e_hi = mid, e
        else:
            lo = mid
    return hi


def _loop(model: Any, loader: Any, optimizer: Any, loss_fn: Any, epochs: int) -> int:
    steps = 0
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            # Poisson sampling can draw an empty batch; Opacus still takes (and accounts)
            # a noise-only step for it, so it goes through the same path.
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            steps += 1
    return steps


def torch_scores(net: Any, X: np.ndarray) -> np.ndarray:
    """Class scores (logits) for ``X``."""
    torch = _torch()
    net.eval()
    with torch.no_grad():
        return net(torch.as_tensor(X, dtype=torch.float32)).numpy().astype(np.float64)


def state_dict_bytes(state: dict[str, Any]) -> bytes:
    torch = _torch()
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_state_dict_bytes(data: bytes, arch: dict[str, Any], where: str) -> Any:
    """Load weights with ``torch.load(weights_only=True)`` into a freshly built net."""
    torch = _torch()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and containers
        # torch's own message spans several lines and suggests weights_only=False, the
        # very thing that would run the payload; say it in one line of our own instead.
        log.debug("torch.load(weights_only=True) refused %s: %s", where, exc)
        raise IntegrityError(
            f"{where}: refusing to load torch weights: weights.pt holds objects other than plain tensors "
            f"({type(exc).__name__}); loading them could run code, so it is never done"
        ) from exc
    try:
        net = build_net(arch)
        net.load_state_dict(state, strict=True)
    except Exception as exc:
        raise IntegrityError(f"{where}: weights do not match the saved architecture: {exc}") from exc
    return net
