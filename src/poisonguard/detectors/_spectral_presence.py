"""Presence part of ``backdoor_spectral``: is a candidate cluster a backdoor?

Four parts must hold (see :mod:`._backdoor_spectral` for the method): the cluster's
rows look like another class to a model trained without them once the values they
share are masked (*disagreement*); the disagreeing rows share a value pattern that
other rows (almost) never carry (*shared trigger*); and, with that pattern masked, an
out-of-fold classifier cannot tell them from real rows of the classes they look like
(*source likeness*: a natural sub-population differs in its other features too). The
same classifier on the unmasked rows is reported as evidence.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom, mannwhitneyu

from ._spectral_search import ClusterCandidate, Representation

__all__ = ["SpectralCluster", "SharedPattern", "TriggerModel", "ClusterTest", "PresenceSettings",
           "shared_pattern", "run_presence_test", "TOL"]

#: a feature value counts as shared when within this many standard deviations (encoded columns are standardized)
TOL = 0.05
#: a shared value carried by more than this share of the other rows is background, not a trigger
_COMMON = 0.5
#: share of a candidate cluster that must carry a value before the costlier tests run
_PRESCREEN = 0.5
#: rows of a cluster whose medians give the shared values (evenly spaced beyond it)
_PATTERN_ROWS = 5000
#: rows used to fit each test's model trained without the cluster
_TEST_ROWS = 10000
#: rows sampled for the null rate, the masking fill and each source class
_SAMPLE_ROWS = 5000
_POSITIVE_ROWS = 2000


@dataclass(frozen=True)
class SpectralCluster:
    """A candidate poisoned cluster of one class along one spectral direction."""

    label: int
    direction: int  # rank of the singular direction (0 = top)
    n_rows: int  # rows of the class
    n_cluster: int  # rows in the small component
    bic_gain: float
    n_disagree: int
    null_rate: float
    p_disagree: float
    source_classes: tuple[int, ...]
    auc: float  # out-of-fold AUROC vs the source rows: measured for a cluster that passes parts 1-3, else 0.5
    p_trigger: float
    p_value: float  # max of the p-values: every part must hold
    present: bool
    pattern_features: tuple[int, ...] = ()
    pattern_values: tuple[float, ...] = ()
    pattern_share: float = 0.0
    pattern_rate_others: float = 1.0
    carrier_purity: float = 0.0  # 1 - expected natural carriers in the class / observed carriers
    # out-of-fold AUROC vs the source rows once the pattern's features are masked (0.5 when not measured)
    source_auc: float = 0.5


@dataclass(frozen=True)
class SharedPattern:
    """Features on which a set of rows shares one value (within ``TOL``).

    ``share``: of those rows, the share carrying every value at once; ``rate_others``:
    the same share among the other rows.
    """

    features: np.ndarray
    values: np.ndarray
    share: float
    rate_others: float


@dataclass(frozen=True)
class TriggerModel:
    """The model trained without a cluster, and the masking it is applied with."""

    model: Any  # a fitted LogisticRegression on the representation
    masked: np.ndarray  # features set to ``fill`` before the representation
    fill: np.ndarray

    def p_label(self, values: np.ndarray, Z: np.ndarray, label: int, represent: Representation) -> np.ndarray:
        """The model's probability of ``label`` for rows with representation ``Z`` once the masked
        features (their values: ``values``, the rows' ``X[:, masked]``) are set to ``fill``."""
        hit = self.model.classes_ == label
        if not hit.any():
            return np.zeros(Z.shape[0])
        Zm = represent.transform_masked(values, Z, self.masked, self.fill)
        return self.model.predict_proba(Zm)[:, np.flatnonzero(hit)[0]]


@dataclass(frozen=True)
class ClusterTest:
    """The verdict on one candidate, and the model to score rows with when it is present."""

    cluster: SpectralCluster
    model: TriggerModel | None


@dataclass(frozen=True)
class PresenceSettings:
    """The detector settings the presence test reads."""

    C: float
    min_cluster: int
    min_effect: float
    min_share: float
    max_carrier_rate: float
    max_source_auc: float
    max_fit_rows: int
    random_state: int


def shared_pattern(X: np.ndarray, rows: np.ndarray, others: np.ndarray, *, min_share: float) -> SharedPattern:
    """Features on which ``rows`` share one value, the joint share carrying them all, and the other rows' rate."""
    # the shared values are read off at most _PATTERN_ROWS rows (evenly spaced): a cluster of
    # 10^5 rows gives the same medians, and the median of every column was this test's cost
    sub = rows if rows.size <= _PATTERN_ROWS else rows[np.linspace(0, rows.size - 1, _PATTERN_ROWS).astype(np.int64)]
    Xs = X[sub]
    v = np.median(Xs, axis=0)
    share_f = (np.abs(Xs - v) <= TOL).mean(axis=0)
    feats = np.flatnonzero(share_f >= min_share)
    if feats.size == 0:
        return SharedPattern(feats, v[feats], 0.0, 1.0)
    Xr = X[np.ix_(rows, feats)]  # the shares below are exact, over every row
    keep = (np.abs(Xr - v[feats]) <= TOL).mean(axis=0) >= min_share
    feats, Xr = feats[keep], Xr[:, keep]
    if feats.size == 0:
        return SharedPattern(feats, v[feats], 0.0, 1.0)
    oth = np.flatnonzero(others)
    # only the shared features of the other rows: a copy of every column of all rows
    # was most of this detector's time on a 784-column table
    near_o = np.abs(X[np.ix_(oth, feats)] - v[feats]) <= TOL
    # drop values common among the other rows (background), keep the rare shared ones
    rare = near_o.mean(axis=0) <= _COMMON
    feats, Xr = feats[rare], Xr[:, rare]
    if feats.size == 0:
        return SharedPattern(feats, v[feats], 0.0, 1.0)
    share = float((np.abs(Xr - v[feats]) <= TOL).all(axis=1).mean())
    rate0 = float(near_o[:, rare].all(axis=1).mean())
    return SharedPattern(feats, v[feats], share, rate0)


def _lr(C: float, random_state: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=200, tol=1e-3, random_state=random_state)


def _lr_trigger(random_state: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=300, tol=1e-4, class_weight="balanced", random_state=random_state)


def source_rows(y: np.ndarray, src: np.ndarray, out_mask: np.ndarray, rng: np.random.Generator,
                per_row: int = 4) -> np.ndarray:
    """Real rows of the classes that suspected carriers look like: up to ``per_row`` per carrier,
    drawn from the rows of each class in ``out_mask`` (the negatives of a source-likeness fit)."""
    neg_parts = []
    for s, cnt in zip(*np.unique(src, return_counts=True)):
        avail = np.flatnonzero((y == s) & out_mask)
        take = min(avail.size, per_row * int(cnt))
        if take:
            neg_parts.append(rng.choice(avail, take, replace=False))
    return np.concatenate(neg_parts) if neg_parts else np.array([], dtype=np.int64)


def oof_decision(X: np.ndarray, yt: np.ndarray, folds: int, random_state: int) -> np.ndarray:
    """Out-of-fold decision values of a balanced logistic regression of ``yt`` (carriers 1, sources 0) on ``X``."""
    from sklearn.model_selection import StratifiedKFold

    oof = np.zeros(yt.size)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tr, te in skf.split(X, yt):
            oof[te] = _lr_trigger(random_state).fit(X[tr], yt[tr]).decision_function(X[te])
    return oof


def _trigger_auc(Z, y, pos, src, out_mask, rng, random_state, masked=None) -> tuple[float, float, float] | None:
    """Out-of-fold AUROC and Mann-Whitney p of the disagreeing rows vs real rows of their sources, and the
    same AUROC once the pattern's features are masked (``masked(idx)``: the masked representation)."""
    from sklearn.metrics import roc_auc_score

    neg = source_rows(y, src, out_mask, rng)
    folds = min(3, pos.size, neg.size)
    if folds < 2:
        return None
    yt = np.r_[np.ones(pos.size, dtype=int), np.zeros(neg.size, dtype=int)]
    oof = oof_decision(np.vstack([Z[pos], Z[neg]]), yt, folds, random_state)
    auc = float(roc_auc_score(yt, oof))
    p_trig = float(mannwhitneyu(oof[yt == 1], oof[yt == 0], alternative="greater").pvalue)
    masked_auc = 0.5
    if masked is not None:
        masked_auc = float(roc_auc_score(yt, oof_decision(masked(np.r_[pos, neg]), yt, folds, random_state)))
    return auc, p_trig, masked_auc


def run_presence_test(
    X: np.ndarray, Z: np.ndarray, y: np.ndarray, cand: ClusterCandidate, represent: Representation, *,
    level: float, settings: PresenceSettings, rng: np.random.Generator,
) -> ClusterTest:
    """Run the presence test on one candidate cluster (every part at level ``level``)."""
    st = settings
    c, j, members, rows = cand.label, cand.direction, cand.members, cand.rows
    gain = float(cand.mixture.bic_gain)
    n = Z.shape[0]
    cap = min(st.max_fit_rows, _TEST_ROWS)
    out_mask = np.ones(n, dtype=bool)
    out_mask[members] = False
    pool = np.flatnonzero(out_mask)
    train = pool if pool.size <= cap else np.sort(rng.choice(pool, cap, replace=False))
    empty = SpectralCluster(c, j, int(rows.size), int(members.size), gain, 0, 1.0, 1.0, (), 0.5, 1.0, 1.0, False)
    if np.unique(y[train]).size < 2:
        return ClusterTest(empty, None)
    # pre-screen: without a value pattern shared by at least half the cluster there is no trigger to find
    pre = shared_pattern(X, members, out_mask, min_share=_PRESCREEN).features
    if pre.size == 0:
        return ClusterTest(empty, None)
    # the pattern's features are masked (others' median) so the trigger cannot vouch for the label
    oth = np.flatnonzero(out_mask)
    oth = oth if oth.size <= _SAMPLE_ROWS else rng.choice(oth, _SAMPLE_ROWS, replace=False)
    fill = np.median(X[np.ix_(oth, pre)], axis=0)  # X[oth] would copy every column of a wide table

    def masked(idx: np.ndarray) -> np.ndarray:
        return represent.transform_masked(X[np.ix_(idx, pre)], Z[idx], pre, fill)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = _lr(st.C, st.random_state).fit(Z[train], y[train])
    pred = lr.classes_[np.argmax(lr.predict_proba(masked(members)), axis=1)]
    dis = pred != c
    k1, n1 = int(dis.sum()), int(members.size)
    rest = np.setdiff1d(rows, members)
    rest_s = rest if rest.size <= _SAMPLE_ROWS else rng.choice(rest, _SAMPLE_ROWS, replace=False)
    pr = lr.classes_[np.argmax(lr.predict_proba(masked(rest_s)), axis=1)]
    k0, n0 = int((pr != c).sum()), int(rest_s.size)
    null = (k0 + 1.0) / (n0 + 2.0)
    p_dis = float(binom.sf(k1 - 1, n1, null)) if k1 > 0 else 1.0
    effect = k1 / max(n1, 1) - null
    base = dict(label=c, direction=j, n_rows=int(rows.size), n_cluster=n1, bic_gain=gain,
                n_disagree=k1, null_rate=float(null), p_disagree=p_dis)
    weak = effect < st.min_effect * (1.0 - null)
    if k1 < st.min_cluster or weak or p_dis >= level:
        return ClusterTest(SpectralCluster(**base, source_classes=(), auc=0.5, p_trigger=1.0,
                                           p_value=max(p_dis, 1.0 if weak else p_dis), present=False), None)
    # shared trigger: the disagreeing rows vs real rows of the classes they look like
    pos, src = members[dis], pred[dis]
    if pos.size > _POSITIVE_ROWS:
        keep = rng.choice(pos.size, _POSITIVE_ROWS, replace=False)
        pos, src = pos[keep], src[keep]
    sources = tuple(int(s) for s in np.unique(src))
    pat = shared_pattern(X, members[dis], out_mask, min_share=st.min_share)
    n_other = int(out_mask.sum())
    # one-sided binomial: this many pattern carriers in the cluster if rows carried it at the others' rate
    k_car = int(round(pat.share * pos.size))
    p_pat = (float(binom.sf(k_car - 1, int(pos.size), max(pat.rate_others, 1.0 / max(n_other, 1))))
             if pat.features.size else 1.0)
    pv = max(p_dis, p_pat)
    present = bool(pv < level and pat.features.size > 0 and pat.share >= st.min_share
                   and pat.rate_others <= st.max_carrier_rate)
    # the separation from the source classes (three model fits each, unmasked and masked) is
    # measured only for a cluster that passes the tests above; it still needs enough rows
    auc, p_trig, source_auc = 0.5, 1.0, 0.5
    if present:
        sep = _trigger_auc(Z, y, pos, src, out_mask, rng, st.random_state, masked=masked)
        if sep is None:
            present, pv = False, 1.0
        else:
            auc, p_trig, source_auc = sep
            # poisoned rows are rows of their source classes with a trigger stamped on: once the
            # pattern is masked a classifier cannot tell them from those classes (measured 0.34-0.50
            # on the benchmark's triggers). A natural sub-population that owns a value (modechoice's
            # bus rows with a 53-minute terminal time; a group of one penguin species) still differs in
            # its other features (0.95-0.98): not a backdoor, however exclusive its value
            if source_auc > st.max_source_auc:
                present = False
    purity = 0.0
    if pat.features.size:
        car_c = int((np.abs(X[np.ix_(rows, pat.features)] - pat.values) <= TOL).all(axis=1).sum())
        expected = pat.rate_others * max(rows.size - car_c, 0) + 1.0
        purity = float(np.clip(1.0 - expected / max(car_c, 1), 0.0, 1.0))
    cl = SpectralCluster(**base, source_classes=sources, auc=auc, p_trigger=p_trig, p_value=pv, carrier_purity=purity,
                         source_auc=source_auc,
                         pattern_features=tuple(int(f) for f in pat.features),
                         pattern_values=tuple(float(v) for v in pat.values),
                         pattern_share=float(pat.share), pattern_rate_others=float(pat.rate_others), present=present)
    return ClusterTest(cl, TriggerModel(model=lr, masked=pre, fill=fill))
