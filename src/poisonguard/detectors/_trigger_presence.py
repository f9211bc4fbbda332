"""Presence part of ``backdoor_trigger``: is a group of enriched values a trigger?

The enriched tokens of one class whose carriers overlap form one suspected trigger
(:func:`group_tokens`). A logistic regression fitted on the whole table
(:class:`MaskingModel`) is asked what the class's rows look like with the group's
features masked (set to the median of the non-carriers): a trigger's carriers then
look like their source class, a clean row carrying a class-typical value still looks
like its class. :func:`judge_group` compares the carriers' disagreement with the
class's other rows' (binomial test) and returns a :class:`TokenGroup` with the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from ._trigger_search import NEAR, Token

__all__ = ["TokenGroup", "TokenCluster", "MaskingModel", "ColumnMedians", "fit_masking_model", "group_tokens",
           "judge_group", "core_purity", "softmax"]

#: share of a value's carriers in one class above which a trigger needs half the masking effect
_CONCENTRATED = 0.65
#: rows of the class without the trigger needed to estimate the null disagreement rate; a
#: "trigger" carried by (nearly) the whole class is a trait of it (the empty centre of every
#: "0" on a 28x28 table) and, with no rows to compare, cannot be judged present
_MIN_NULL_ROWS = 20
#: core purity (see :func:`core_purity`) a trigger judged on the weaker, concentrated evidence needs
_MIN_PURITY = 0.5


@dataclass(frozen=True)
class TokenGroup:
    """Enriched tokens of one class whose carriers overlap: one suspected trigger."""

    label: int
    tokens: tuple[int, ...]  # indices into the detector's ``tokens_``
    features: tuple[int, ...]
    fills: tuple[float, ...]  # value each masked feature takes (median of the non-carriers)
    excess: float
    n_carriers: int
    n_disagree: int
    null_rate: float
    p_value: float
    present: bool
    purity: float = 0.0  # see core_purity; 0 when the group fails the test before it is needed


@dataclass(frozen=True)
class TokenCluster:
    """Tokens of one class joined by overlapping carriers, before the presence test."""

    label: int
    members: tuple[int, ...]  # indices into the token list


@dataclass(frozen=True)
class MaskingModel:
    """A linear model's logits ``X @ coef.T + intercept``, one row of ``coef`` per class code."""

    coef: np.ndarray
    intercept: np.ndarray

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef.T + self.intercept

    def masked_logits(self, values: np.ndarray, logits: np.ndarray, feats: np.ndarray, fills: np.ndarray) -> np.ndarray:
        """``logits`` of rows whose columns ``feats`` hold ``values``, as if they were set to ``fills``.

        A linear model: only their part is subtracted, so callers pass ``X[np.ix_(rows, feats)]``
        and never copy whole rows of a wide table.
        """
        return logits - (values - fills) @ self.coef[:, feats].T


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_masking_model(X: np.ndarray, y: np.ndarray, n_classes: int, *, C: float, random_state: int) -> MaskingModel:
    """Logistic regression on the whole table; classes absent from ``y`` get logit -1000."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = LogisticRegression(C=C, max_iter=300, tol=1e-3, random_state=random_state)
        m.fit(X, y)
    coef_m = m.coef_
    if coef_m.shape[0] == 1:  # binary: sklearn keeps one row; expand to two logits
        coef_m = np.vstack([-coef_m / 2, coef_m / 2])
        inter = np.array([-m.intercept_[0] / 2, m.intercept_[0] / 2])
    else:
        inter = m.intercept_
    coef = np.zeros((n_classes, X.shape[1]))
    intercept = np.full(n_classes, -1e3)
    coef[m.classes_] = coef_m
    intercept[m.classes_] = inter
    return MaskingModel(coef=coef, intercept=intercept)


def group_tokens(carries: np.ndarray, tokens: list[Token], *, overlap: float) -> list[TokenCluster]:
    """Per class, connected components of tokens whose carrier sets have Jaccard >= ``overlap``."""
    from scipy.sparse.csgraph import connected_components

    labels = np.array([t.label for t in tokens])
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        C = carries[:, idx].astype(np.float32)  # counts below 2^24: exact
        inter = C.T @ C
        size = np.diag(inter)
        jac = inter / np.maximum(size[:, None] + size[None, :] - inter, 1.0)
        _, comp = connected_components(jac >= overlap, directed=False)
        for g in np.unique(comp):
            out.append(TokenCluster(label=int(c), members=tuple(int(t) for t in idx[comp == g])))
    return out


def judge_group(
    X: np.ndarray, y: np.ndarray, logits: np.ndarray, carries: np.ndarray, cluster: TokenCluster,
    tokens: list[Token], model: MaskingModel, *, level: float, min_count: int, min_effect: float,
    medians: ColumnMedians | None = None,
) -> TokenGroup:
    """The presence test of one suspected trigger (see the module docstring)."""
    c, members = cluster.label, list(cluster.members)
    feats = np.array(sorted({f for t in members for f in tokens[t].features}), dtype=np.int64)
    carrier = carries[:, members].any(axis=1)
    fills = _fill_values(X, carrier, feats) if medians is None else medians.without(carrier, feats)
    rows_c = np.flatnonzero(y == c)
    # the argmax of the logits is the prediction: no softmax needed
    dis = model.masked_logits(X[np.ix_(rows_c, feats)], logits[rows_c], feats, fills).argmax(axis=1) != c
    car = carrier[rows_c]
    k1, n1 = int(dis[car].sum()), int(car.sum())
    k0, n0 = int(dis[~car].sum()), int((~car).sum())
    null = (k0 + 1.0) / (n0 + 2.0)
    pv = float(binom.sf(k1 - 1, n1, null)) if k1 > 0 else 1.0
    # a trigger flips most of its carriers; a class-typical value flips a few more than usual at most
    effect = k1 / max(n1, 1) - null
    conc = max(tokens[t].n_in_class / tokens[t].n_carriers for t in members)
    strong = effect >= min_effect
    testable = pv < level and k1 >= min_count and n0 >= _MIN_NULL_ROWS
    weak_ok = conc >= _CONCENTRATED and effect >= min_effect / 2
    # the purity is needed only by a group that can still be judged present (most groups
    # of a wide table are natural values that fail above; hundreds of them per table)
    purity = core_purity(X, y, c, [tokens[t] for t in members], carrier) if testable and (strong or weak_ok) else 0.0
    # Either way the rows carrying all of the group's values must be foreign to the class
    # (purity): the empty centre of a 28x28 "0" is carried mostly by 0s too, and masking it
    # turns 0s into 8s; a natural strong predictor (a cost column of a travel-mode table:
    # 75 rows at one value, all "not chosen") flips every carrier once masked, yet the
    # class's other rows crowd around that value. A value carried (almost) only by this
    # class needs half the masking evidence.
    present = bool(testable and (strong or weak_ok) and purity >= _MIN_PURITY)
    excess = max(tokens[t].excess for t in members)
    return TokenGroup(
        label=int(c), tokens=tuple(members), features=tuple(int(f) for f in feats),
        fills=tuple(float(f) for f in fills), excess=float(excess), n_carriers=n1, n_disagree=k1,
        null_rate=float(null), p_value=pv, present=present, purity=purity,
    )


#: non-carrier rows whose median is the masking fill (a fixed, evenly spaced subset beyond it: a
#: median over 10^6 rows per suspected trigger costs seconds, and a wide table has hundreds of them)
_FILL_ROWS = 20000


class ColumnMedians:
    """Medians of a column without a few rows, from the column sorted once.

    A wide table has hundreds of suspected triggers, each masked with the median of
    its non-carriers on its features (:func:`_fill_values`); a partition of the column
    per trigger was most of the presence tests' time. With the column sorted once, the
    ``q``-th smallest of the rows left once ``k`` carriers are removed lies at a sorted
    position in ``[q, q + k]``: it is the first value there with more than ``q``
    remaining values at or below it (the column's count minus the carriers'). The
    result is the same number as ``np.median`` over the remaining rows. Columns are
    sorted on first use, and only up to ``_FILL_ROWS`` remaining rows (beyond it the fill
    is the median of an evenly spaced subset, computed directly).
    """

    def __init__(self, X: np.ndarray) -> None:
        self._X = X
        self._sorted: dict[int, np.ndarray] = {}

    def without(self, carrier: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """Median over the rows where ``carrier`` is False, per feature in ``feats``."""
        X = self._X
        idx = np.flatnonzero(carrier)
        k, m = idx.size, X.shape[0] - idx.size
        if m == 0:
            return np.zeros(feats.size)
        if m > _FILL_ROWS:
            return _fill_values(X, carrier, feats)
        q = (m - 1) // 2  # the middle pair of the remaining rows: q and q + 1 - m % 2
        out = np.empty(feats.size, dtype=X.dtype)
        for i, f in enumerate(feats):
            col = self._sorted.get(int(f))
            if col is None:
                col = self._sorted[int(f)] = np.sort(X[:, f])
            gone = np.sort(X[idx, f])
            window = col[q:q + k + 2]
            remaining = np.searchsorted(col, window, side="right") - np.searchsorted(gone, window, side="right")
            lo, hi = window[np.searchsorted(remaining, [q, q + 1 - m % 2], side="right")]
            out[i] = np.mean(np.array([lo, hi], dtype=X.dtype))  # np.median's average of the middle pair
        return out


def _fill_values(X: np.ndarray, carrier: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Median of the non-carriers on ``feats``, over at most ``_FILL_ROWS`` of them (evenly spaced)."""
    rest = np.flatnonzero(~carrier)
    if rest.size == 0:
        return np.zeros(feats.size)
    if rest.size > _FILL_ROWS:  # a median over 10^6 rows per suspected trigger is the cost, not the estimate
        rest = rest[np.linspace(0, rest.size - 1, _FILL_ROWS).astype(np.int64)]
    return np.median(X[np.ix_(rest, feats)], axis=0)


def core_purity(X: np.ndarray, y: np.ndarray, c: int, members: list[Token], carrier: np.ndarray | None = None) -> float:
    """Estimated share of stamped rows among the class's rows carrying every value of a group.

    ``1 - (expected natural carriers + 1) / carriers``. Natural carriers are expected
    in the class at the larger of two rates: how often the other classes carry the
    values, and how often the class's own non-carriers come within ``NEAR`` of them
    (a value typical of the class, such as a pixel level common in "0"s, has many
    near misses; a stamped 99.9th-percentile value of a continuous column has few).
    """
    values: dict[int, float] = {}
    for tok in members:
        for f, v in zip(tok.features, tok.values):
            if values.setdefault(f, v) != v:
                return 0.0  # two values of one feature: no row carries them all
    feats, vals = list(values), np.array(list(values.values()))
    if carrier is None:
        core = np.all(X[:, feats] == vals, axis=1)
    else:  # a row with every value carries every member token: look among the carriers only
        idx = np.flatnonzero(carrier)
        core = np.zeros(X.shape[0], dtype=bool)
        core[idx] = np.all(X[np.ix_(idx, feats)] == vals, axis=1)
    in_c = y == c
    n_core = int((core & in_c).sum())
    if n_core == 0:
        return 0.0
    others = ~in_c
    other_rate = float((core & others).sum() / max(int(others.sum()), 1))
    rest = in_c & ~core
    near = np.all(np.abs(X[np.ix_(rest, feats)] - vals) <= NEAR, axis=1)
    typical = float(near.mean()) if near.size else 0.0
    natural = max(other_rate, typical) * int(in_c.sum())
    return float(np.clip(1.0 - (natural + 1.0) / n_core, 0.0, 1.0))
