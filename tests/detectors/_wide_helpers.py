"""Generated wide tables: 28x28 digit images and model-like embeddings (no download).

No installed package ships a real 28x28 image table (the MNIST packages on the
registry's name list were not installed or checked for bundled data), so the
784-column table is made from scikit-learn's 8x8 digits: two digits of one class blended with a random weight,
upsampled 3.5x to 28x28, shifted by up to 1.5 pixels, given noise on the ink, and
quantised to 0-255 with exact zeros for the background, as MNIST has. Every row is a
new image (no copies), so exact value ties come from the background and saturation,
not from duplicated rows. ``benchmarks/bench_wide.py`` uses the same generators.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["digits784", "embeddings"]


def digits784(n_rows: int = 5000, *, seed: int = 0) -> pd.DataFrame:
    """``n_rows`` generated 28x28 digits: columns ``px0..px783`` (0-255 integers) and ``label``."""
    from scipy.ndimage import shift, zoom
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n_rows)
    by_class = [np.flatnonzero(d.target == c) for c in range(10)]
    out = np.empty((n_rows, 28, 28))
    for i, c in enumerate(labels):
        a, b = rng.choice(by_class[c], 2, replace=False)
        w = rng.uniform(0.2, 0.8)
        im = zoom((w * d.images[a] + (1 - w) * d.images[b]) / 16.0, 3.5, order=1)
        im = shift(im, rng.uniform(-1.5, 1.5, 2), order=1)
        im = im + rng.normal(0, 0.05, im.shape) * (im > 0.05)
        out[i] = np.where(im < 0.1, 0.0, im)
    px = np.clip(np.round(out * 255), 0, 255).reshape(n_rows, 784).astype(np.int64)
    frame = pd.DataFrame(px, columns=[f"px{i}" for i in range(784)])
    frame["label"] = labels
    return frame


def embeddings(n_rows: int = 2000, dim: int = 2048, *, n_classes: int = 10, seed: int = 0) -> pd.DataFrame:
    """Model-like float32 embeddings: class clusters in a 64-d latent space, a random ReLU layer to ``dim``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    means = rng.normal(0.0, 1.5, (n_classes, 64))
    z = means[y] + rng.normal(size=(n_rows, 64))
    W = rng.normal(0.0, 1.0 / 8.0, (64, dim))
    E = np.maximum(z @ W + rng.normal(0.0, 0.1, (n_rows, dim)), 0.0).astype(np.float32)
    frame = pd.DataFrame(E, columns=[f"e{i}" for i in range(dim)])
    frame["label"] = y
    return frame
