"""Torch models (logistic regression and MLP) trained with or without DP-SGD (Opacus).

torch and opacus are optional: they are imported lazily, through
:func:`poisonguard._optional.import_optional`, when a torch model is trained or loaded.

DP-SGD uses Opacus' :class:`~opacus.PrivacyEngine` with Poisson sampling (its
default), so each step's sampling matches what the accountant assumes. Given a target
``epsilon`` the noise multiplier is chosen by Opacus' search, which only accepts a
noise whose accounted epsilon is below the target; the epsilon actually spent is then
read back from the accountant after training and reported.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._optional import import_optional
from ..errors import IntegrityError

__all__ = ["TorchFit", "build_net", "fit_torch", "torch_scores", "load_state_dict_bytes", "state_dict_bytes"]


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


def build_net(arch: dict[str, Any]) -> Any:
    """``Linear`` (hidden=[]) or ``Linear-ReLU-...-Linear`` from an architecture dict."""
    torch = _torch()
    nn = torch.nn
    sizes = [int(arch["n_in"]), *[int(h) for h in arch["hidden"]], int(arch["n_out"])]
    layers: list[Any] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


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
) -> TorchFit:
    """Train a torch classifier; with ``dp`` (a :class:`DPSettings`) use DP-SGD via Opacus."""
    torch = _torch()
    torch.manual_seed(seed)
    arch = {"n_in": int(X.shape[1]), "hidden": [int(h) for h in hidden], "n_out": int(n_classes)}
    model = build_net(arch)
    Xt = torch.tensor(np.asarray(X, dtype=np.float32))  # copies: inputs may be read-only views
    yt = torch.tensor(np.asarray(y, dtype=np.int64))
    ds = torch.utils.data.TensorDataset(Xt, yt)
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, generator=gen)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    engine = None
    noise = None
    if dp is not None:
        opacus = import_optional("opacus", "dp")
        with warnings.catch_warnings():
            # Opacus warns that its RNG is not cryptographically secure; secure_mode is
            # much slower and meant for a final production run. Recorded in metadata.
            warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")
            engine = opacus.PrivacyEngine(accountant=dp.accountant)
            if dp.noise_multiplier is None:
                model_p, optimizer, loader = engine.make_private_with_epsilon(
                    module=model, optimizer=optimizer, data_loader=loader,
                    target_epsilon=dp.epsilon, target_delta=dp.delta, epochs=epochs,
                    max_grad_norm=dp.max_grad_norm, poisson_sampling=True,
                )
            else:
                model_p, optimizer, loader = engine.make_private(
                    module=model, optimizer=optimizer, data_loader=loader,
                    noise_multiplier=dp.noise_multiplier, max_grad_norm=dp.max_grad_norm, poisson_sampling=True,
                )
        noise = float(optimizer.noise_multiplier)
    else:
        model_p = model
    loss_fn = torch.nn.CrossEntropyLoss()
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
        raise IntegrityError(f"{where}: refusing to load torch weights: {exc}") from exc
    try:
        net = build_net(arch)
        net.load_state_dict(state, strict=True)
    except Exception as exc:
        raise IntegrityError(f"{where}: weights do not match the saved architecture: {exc}") from exc
    return net
