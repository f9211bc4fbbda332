"""Built-in example tables: data shipped inside scikit-learn, or generated.

Nothing here downloads anything. Every table is a DataFrame with its feature
columns followed by an integer ``label`` column, so it can be handed straight to
:func:`poisonguard.scan` or to an attack in :mod:`poisonguard.attacks`.

==============  =========  ========  =======  ==========================================
name            rows       features  classes  notes
==============  =========  ========  =======  ==========================================
digits          1 797      64        10       8x8 images, columns ``px0..px63``, 0..16
breast_cancer   569        30        2        Wisconsin diagnostic (sklearn copy)
wine            178        13        3        UCI wine (sklearn copy)
synthetic       10 000     32        4        ``make_classification``, 16 informative;
                                              ``n_rows`` sets the size (100k, 1M...)
==============  =========  ========  =======  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError

__all__ = ["Dataset", "load_dataset", "available_datasets", "LABEL"]

#: Name of the label column of every built-in table.
LABEL = "label"

_NAMES = ("digits", "breast_cancer", "wine", "synthetic")


@dataclass(frozen=True)
class Dataset:
    """A built-in table.

    Attributes
    ----------
    name : str
        The dataset's name, as given to :func:`load_dataset`.
    frame : DataFrame
        Feature columns then the integer ``label`` column; a fresh copy per call.
    features : list of str
        Feature column names, in order.
    label : str
        Name of the label column (always ``"label"``).
    image_shape : tuple of int or None
        ``(8, 8)`` for ``digits`` (pixel columns in row-major order), else ``None``.
    """

    name: str
    frame: pd.DataFrame
    features: list[str]
    label: str = LABEL
    image_shape: tuple[int, int] | None = None

    @property
    def n_rows(self) -> int:
        return int(self.frame.shape[0])


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return list(_NAMES)


def load_dataset(name: str, *, n_rows: int | None = None, seed: int = 0) -> Dataset:
    """Load a built-in table.

    Parameters
    ----------
    name : {"digits", "breast_cancer", "wine", "synthetic"}
        Which table.
    n_rows : int, optional
        For ``synthetic``: how many rows to generate (default 10 000). For the
        others: keep a seeded random subset of this many rows (must not exceed the
        table's size).
    seed : int, default=0
        Seed of the generator (``synthetic``) or of the subset.

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        Unknown name, or an ``n_rows`` that is not a positive integer within range.
    """
    if name not in _NAMES:
        raise InputError(f"unknown dataset {name!r}; choose one of: {', '.join(_NAMES)}")
    if n_rows is not None and (isinstance(n_rows, bool) or int(n_rows) != n_rows or n_rows < 10):
        raise InputError(f"n_rows must be an integer >= 10, got {n_rows!r}")
    if name == "synthetic":
        return _synthetic(n_rows=10_000 if n_rows is None else int(n_rows), seed=seed)

    from sklearn import datasets as skd

    loader = {"digits": skd.load_digits, "breast_cancer": skd.load_breast_cancer, "wine": skd.load_wine}[name]
    bunch = loader()
    X = np.asarray(bunch.data)
    if name == "digits":
        features = [f"px{i}" for i in range(X.shape[1])]
        X = X.astype(np.int64)
        image_shape: tuple[int, int] | None = (8, 8)
    else:
        features = [_column_name(str(c)) for c in bunch.feature_names]
        image_shape = None
    frame = pd.DataFrame(X, columns=features)
    frame[LABEL] = np.asarray(bunch.target, dtype=np.int64)
    if n_rows is not None:
        if n_rows > len(frame):
            raise InputError(f"dataset {name!r} has {len(frame)} rows; n_rows={n_rows} is more")
        keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=int(n_rows), replace=False))
        frame = frame.iloc[keep].reset_index(drop=True)
    return Dataset(name=name, frame=frame, features=features, image_shape=image_shape)


def _column_name(raw: str) -> str:
    """``"mean radius"`` -> ``"mean_radius"``, ``"od280/od315_of_..."`` -> ``"od280_od315_of_..."``."""
    return "".join(ch if ch.isalnum() else "_" for ch in raw.strip()).strip("_")


def _synthetic(*, n_rows: int, seed: int) -> Dataset:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_rows,
        n_features=32,
        n_informative=16,
        n_redundant=4,
        n_classes=4,
        n_clusters_per_class=2,
        class_sep=1.5,
        flip_y=0.0,  # the clean table has no label noise of its own
        random_state=seed,
    )
    features = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=features)
    frame[LABEL] = y.astype(np.int64)
    return Dataset(name="synthetic", frame=frame, features=features)
