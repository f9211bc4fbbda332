"""Spectral backdoor detector: a small cluster per class that carries a shared trigger.

In the style of Spectral Signatures (Tran, Li & Madry 2018) and SPECTRE (Hayase et
al. 2021): rows poisoned towards a target class ``t`` form a small, separate cluster
inside ``t`` along its top singular directions. That alone is not evidence of a
backdoor: label flips make a class bimodal too, and so do natural sub-populations.
So each candidate cluster must pass a **presence test** with three parts:

1. *bimodality*: per class, the rows are projected (PCA-whitened representation,
   centred on the class mean) on the top ``n_directions`` right singular vectors;
   along each, a 1-D two-component Gaussian mixture must beat one Gaussian by
   ``min_bic_gain`` in BIC, with a small component of at least ``min_cluster`` rows
   and at most ``max_cluster_fraction`` of the class. Its members form the candidate.
2. *disagreement*: a logistic regression trained **without** the candidate predicts
   another class for most of its rows once the features on which at least half of
   the cluster shares a value are masked (clusters without such a value stop here) (binomial test against the class's other rows,
   relative effect at least ``min_effect``). Poisoned rows look like their source class; a
   natural sub-population of ``t`` still looks like ``t``.
3. *shared trigger*: the disagreeing rows share one value pattern (features on which
   at least ``min_share`` of them carry the same value, within 0.05 standard
   deviations, values common among other rows dropped) that at most
   ``max_carrier_rate`` of all other rows carry (one-sided binomial test). A trigger
   is stamped on exactly the poisoned rows; flipped rows are ordinary rows of their
   source class, and a natural sub-population shares shapes, not an exclusive
   value. The out-of-fold AUROC of a logistic regression separating the rows from
   real rows of the classes they look like is reported as supporting evidence.

p-values are Bonferroni-corrected over all candidates (classes x directions). Only
classes judged poisoned get non-zero scores, estimates of P(poisoned)
(``score_kind = "probability"``): a row of such a class that carries the pattern gets
the larger of ``1 - p(label)`` under the model trained without the cluster (pattern
features masked) and the carriers' purity ``1 - (expected natural carriers + 1) /
carriers`` (natural carriers expected at the other rows' rate); any other row of the
class gets its posterior in the small mixture component times ``1 - p(label)``.

Limits: a trigger whose exact values are common in clean rows (a 2x2 patch of
maximum ink at the centre of a digit: 3% of clean digits carry it) fails part 3, on
purpose: such a cluster cannot be told from a natural sub-population by this test
(``backdoor_trigger`` finds that patch through the conjunction of its four values).
The representation is the encoded table reduced by PCA (randomized SVD, at most
``n_components`` dimensions, fitted on at most ``max_fit_rows`` rows) and whitened.
Clean-label backdoors (true labels kept) fail part 2 by design.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom, mannwhitneyu

from ..errors import ConfigError
from ._presence import summarize_presence
from ._base import BaseDetector, register

__all__ = ["BackdoorSpectralDetector", "SpectralCluster"]


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
    auc: float
    p_trigger: float
    p_value: float  # max of the p-values: every part must hold
    present: bool
    pattern_features: tuple[int, ...] = ()
    pattern_values: tuple[float, ...] = ()
    pattern_share: float = 0.0
    pattern_rate_others: float = 1.0
    carrier_purity: float = 0.0  # 1 - expected natural carriers in the class / observed carriers


#: smaller mixture weight above which both components are tested
_BOTH_SIDES = 0.3
#: a feature value counts as shared when within this many standard deviations (encoded columns are standardized)
_TOL = 0.05
#: a shared value carried by more than this share of the other rows is background, not a trigger
_COMMON = 0.5
#: share of a candidate cluster that must carry a value before the costlier tests run
_PRESCREEN = 0.5
#: rows used to fit each test's model trained without the cluster
_TEST_ROWS = 10000


def _gmm_1d(z: np.ndarray, random_state: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Two-component 1-D Gaussian mixture: weights, means, variances and the BIC gain over one Gaussian."""
    from sklearn.mixture import GaussianMixture

    x = z.reshape(-1, 1)
    n = x.shape[0]
    # one Gaussian in closed form (maximum likelihood mean and variance, 2 parameters)
    var1 = float(np.var(z)) + 1e-6
    bic1 = n * (np.log(2 * np.pi * var1) + 1.0) + 2.0 * np.log(n)
    # k-means++ seeding without Lloyd iterations: on 1-D data EM does the rest, and full
    # k-means initialisation was 80% of this detector's time at 100k rows
    g2 = GaussianMixture(2, random_state=random_state, n_init=2, reg_covar=1e-4, init_params="k-means++").fit(x)
    gain = float(bic1 - g2.bic(x))
    return g2.weights_.copy(), g2.means_.ravel().copy(), g2.covariances_.ravel().copy(), gain


def _posterior(z: np.ndarray, w: np.ndarray, m: np.ndarray, v: np.ndarray, k: int) -> np.ndarray:
    """Posterior probability of component ``k`` of a 1-D mixture."""
    logp = np.log(w)[None, :] - 0.5 * np.log(2 * np.pi * v)[None, :] - 0.5 * (z[:, None] - m[None, :]) ** 2 / v[None, :]
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p[:, k] / p.sum(axis=1)


@register
class BackdoorSpectralDetector(BaseDetector):
    """A small per-class spectral cluster that looks like other classes and shares a trigger.

    See the module docstring for the method.

    Parameters
    ----------
    n_components : int, default=32
        PCA dimensions of the representation (wide tables are reduced first).
    n_directions : int, default=3
        Top singular directions examined per class.
    max_fit_rows : int, default=20000
        Rows sampled to fit the PCA and the logistic regressions; all rows are scored.
    min_cluster : int, default=5
        Smallest candidate cluster.
    max_cluster_fraction : float, default=0.6
        Largest candidate cluster as a share of its class.
    min_bic_gain : float, default=10.0
        BIC improvement of two Gaussians over one needed for a candidate.
    alpha : float, default=0.01
        Family-wise error of the presence tests.
    min_effect : float, default=0.5
        The cluster's disagreement rate must exceed the class's other rows' rate ``r0``
        by at least ``min_effect * (1 - r0)`` (half the way to total disagreement).
    min_share : float, default=0.9
        Share of the cluster's disagreeing rows that must carry the shared value pattern.
    max_carrier_rate : float, default=0.002
        Largest share of all other rows that may carry the pattern (a trigger is
        (nearly) exclusive to the poisoned rows; a natural shape feature is not).
    C : float, default=0.1
        Inverse regularisation of the logistic regressions.
    random_state : int, default=0
    """

    name = "backdoor_spectral"
    needs_label = True
    family = "backdoor"
    score_kind = "probability"
    summary = "small per-class spectral cluster that looks like other classes and shares a trigger (backdoors)"

    def __init__(
        self,
        *,
        n_components: int = 32,
        n_directions: int = 3,
        max_fit_rows: int = 20000,
        min_cluster: int = 5,
        max_cluster_fraction: float = 0.6,
        min_bic_gain: float = 10.0,
        alpha: float = 0.01,
        min_effect: float = 0.5,
        min_share: float = 0.9,
        max_carrier_rate: float = 0.002,
        C: float = 0.1,
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.n_directions = n_directions
        self.max_fit_rows = max_fit_rows
        self.min_cluster = min_cluster
        self.max_cluster_fraction = max_cluster_fraction
        self.min_bic_gain = min_bic_gain
        self.alpha = alpha
        self.min_effect = min_effect
        self.min_share = min_share
        self.max_carrier_rate = max_carrier_rate
        self.C = C
        self.random_state = random_state

    def _validate_params(self) -> None:
        n = self.name
        if int(self.n_components) < 1:
            raise ConfigError(f"{n}: n_components must be >= 1, got {self.n_components}")
        if int(self.n_directions) < 1:
            raise ConfigError(f"{n}: n_directions must be >= 1, got {self.n_directions}")
        if int(self.max_fit_rows) < 100:
            raise ConfigError(f"{n}: max_fit_rows must be >= 100, got {self.max_fit_rows}")
        if int(self.min_cluster) < 3:
            raise ConfigError(f"{n}: min_cluster must be >= 3, got {self.min_cluster}")
        if not 0 < float(self.max_cluster_fraction) < 1:
            raise ConfigError(f"{n}: max_cluster_fraction must be in (0, 1), got {self.max_cluster_fraction}")
        if float(self.min_bic_gain) < 0:
            raise ConfigError(f"{n}: min_bic_gain must be >= 0, got {self.min_bic_gain}")
        if not 0 < float(self.alpha) < 1:
            raise ConfigError(f"{n}: alpha must be in (0, 1), got {self.alpha}")
        if not 0 <= float(self.min_effect) <= 1:
            raise ConfigError(f"{n}: min_effect must be in [0, 1], got {self.min_effect}")
        if not 0 < float(self.min_share) <= 1:
            raise ConfigError(f"{n}: min_share must be in (0, 1], got {self.min_share}")
        if not 0 <= float(self.max_carrier_rate) < 1:
            raise ConfigError(f"{n}: max_carrier_rate must be in [0, 1), got {self.max_carrier_rate}")
        if float(self.C) <= 0:
            raise ConfigError(f"{n}: C must be > 0, got {self.C}")

    # ----------------------------------------------------------- representation
    def _fit_representation(self, X: np.ndarray, rng: np.random.Generator) -> None:
        from sklearn.utils.extmath import randomized_svd

        n, d = X.shape
        sub = rng.choice(n, size=int(self.max_fit_rows), replace=False) if n > int(self.max_fit_rows) else np.arange(n)
        Xs = X[sub]
        self.mean_ = Xs.mean(axis=0)
        k = max(1, min(int(self.n_components), d, Xs.shape[0] - 1))
        _, s, vt = randomized_svd(Xs - self.mean_, k, n_oversamples=10, n_iter=4, random_state=int(self.random_state))
        sd = s / np.sqrt(max(Xs.shape[0] - 1, 1))
        keep = sd > 1e-8 * max(float(sd.max()), 1e-300)
        if not keep.any():
            keep[:] = True
            sd = np.ones_like(sd)
        self.components_ = vt[keep]
        self.scale_ = sd[keep]

    def _represent(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean_) @ self.components_.T) / self.scale_

    def _lr(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=float(self.C), max_iter=200, tol=1e-3, random_state=int(self.random_state))

    # ------------------------------------------------------------------ fit
    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        assert y is not None
        rng = np.random.default_rng(int(self.random_state))
        K = int(y.max()) + 1
        self.n_classes_ = K
        counts = np.bincount(y, minlength=K)
        self._fit_representation(X, rng)
        Z = self._represent(X)
        m = min(int(self.n_directions), Z.shape[1])
        cands: list[tuple[int, int, np.ndarray, np.ndarray, tuple, np.ndarray]] = []
        self.directions_: dict[int, np.ndarray] = {}
        self.centres_: dict[int, np.ndarray] = {}
        for c in range(K):
            rows = np.flatnonzero(y == c)
            if rows.size < 2 * int(self.min_cluster) + 2:
                continue
            Zc = Z[rows]
            sub = rows if rows.size <= int(self.max_fit_rows) else rng.choice(rows, int(self.max_fit_rows), replace=False)
            centre = Z[sub].mean(axis=0)
            _, _, vt = np.linalg.svd(Z[sub] - centre, full_matrices=False)
            V = vt[:m]
            self.directions_[c] = V
            self.centres_[c] = centre
            proj = (Zc - centre) @ V.T
            for j in range(V.shape[0]):
                z = proj[:, j]
                zs = z if z.size <= 5000 else z[rng.choice(z.size, 5000, replace=False)]
                w, mu, var, gain = _gmm_1d(zs, int(self.random_state))
                if gain < float(self.min_bic_gain):
                    continue
                order = np.argsort(w)
                # when the components are of similar size (heavy poisoning) either may be the poisoned one
                comps = [int(order[0])] + ([int(order[1])] if w.min() >= _BOTH_SIDES else [])
                for small in comps:
                    post = _posterior(z, w, mu, var, small)
                    member = post > 0.5
                    nc = int(member.sum())
                    if nc < int(self.min_cluster) or nc > float(self.max_cluster_fraction) * rows.size:
                        continue
                    cands.append((c, j, rows[member], post, (w, mu, var, small, gain), rows))
        n_tests = max(len(cands), 1)
        level = float(self.alpha) / n_tests
        clusters: list[SpectralCluster] = []
        self.mixtures_: dict[tuple[int, int], tuple] = {}
        self.trigger_models_: dict[tuple[int, int], Any] = {}
        for c, j, members, post, mix, rows in cands:
            cl, model = self._test(X, Z, y, c, j, members, rows, level, K, rng, mix)
            clusters.append(cl)
            if cl.present:
                self.mixtures_[(c, j)] = mix[:4]
                self.trigger_models_[(c, j)] = model
        self.clusters_ = clusters
        self.present_, presence = summarize_presence(
            clusters, counts, statistic_name="spectral cluster AUROC vs source rows", level=level,
            empty_detail="no small bimodal cluster along the top directions",
            best=lambda x: (not x.present, x.p_value, -x.auc),
            describe=lambda b, cs: (
                b.auc, b.n_cluster,
                f"{len(cs)} candidate cluster(s); best: {b.n_cluster} rows along direction {b.direction} "
                f"(BIC gain {b.bic_gain:.0f}); {b.n_disagree} look like another class to a model trained "
                f"without them (other rows: {b.null_rate:.3f}); {len(b.pattern_features)} feature(s) share a value "
                f"in {b.pattern_share:.0%} of them and {b.pattern_rate_others:.2%} of other rows; AUROC vs "
                f"their source rows {b.auc:.3f}",
            ),
        )
        self.presence_ = presence
        self.report_ = {
            "presence": [p.to_dict() for p in presence],
            "poisoned_classes": [int(c) for c in np.flatnonzero(self.present_)],
            "n_candidates": len(clusters),
            "clusters": [
                {"label": x.label, "direction": x.direction, "rows": x.n_cluster, "disagreeing": x.n_disagree,
                 "auc": x.auc, "pattern_features": list(x.pattern_features), "pattern_share": x.pattern_share,
                 "pattern_rate_others": x.pattern_rate_others, "p_value": x.p_value, "present": x.present}
                for x in clusters
            ],
        }

    def _test(self, X, Z, y, c, j, members, rows, level, K, rng, mix) -> tuple[SpectralCluster, Any]:
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold

        n = Z.shape[0]
        cap = min(int(self.max_fit_rows), _TEST_ROWS)
        out_mask = np.ones(n, dtype=bool)
        out_mask[members] = False
        pool = np.flatnonzero(out_mask)
        train = pool if pool.size <= cap else np.sort(rng.choice(pool, cap, replace=False))
        empty = SpectralCluster(c, j, int(rows.size), int(members.size), float(mix[4]), 0, 1.0, 1.0, (), 0.5,
                                1.0, 1.0, False)
        if np.unique(y[train]).size < 2:
            return empty, None
        # pre-screen: without a value pattern shared by at least half the cluster there is no trigger to find
        pre, _, _, _ = self._shared_pattern(X, members, out_mask, min_share=_PRESCREEN)
        if pre.size == 0:
            return empty, None
        # the pattern's features are masked (others' median) so the trigger cannot vouch for the label
        oth = np.flatnonzero(out_mask)
        oth = oth if oth.size <= 5000 else rng.choice(oth, 5000, replace=False)
        fill = np.median(X[oth][:, pre], axis=0)

        def masked(idx: np.ndarray) -> np.ndarray:
            Xm = X[idx].copy()
            Xm[:, pre] = fill
            return self._represent(Xm)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lr = self._lr().fit(Z[train], y[train])
        pred = lr.classes_[np.argmax(lr.predict_proba(masked(members)), axis=1)]
        dis = pred != c
        k1, n1 = int(dis.sum()), int(members.size)
        rest = np.setdiff1d(rows, members)
        rest_s = rest if rest.size <= 5000 else rng.choice(rest, 5000, replace=False)
        pr = lr.classes_[np.argmax(lr.predict_proba(masked(rest_s)), axis=1)]
        k0, n0 = int((pr != c).sum()), int(rest_s.size)
        null = (k0 + 1.0) / (n0 + 2.0)
        p_dis = float(binom.sf(k1 - 1, n1, null)) if k1 > 0 else 1.0
        effect = k1 / max(n1, 1) - null
        base = dict(label=c, direction=j, n_rows=int(rows.size), n_cluster=n1, bic_gain=float(mix[4]),
                    n_disagree=k1, null_rate=float(null), p_disagree=p_dis)
        if k1 < int(self.min_cluster) or effect < float(self.min_effect) * (1.0 - null) or p_dis >= level:
            return SpectralCluster(**base, source_classes=(), auc=0.5, p_trigger=1.0, p_value=max(p_dis, 1.0 if
                                   effect < float(self.min_effect) * (1.0 - null) else p_dis), present=False), None
        # shared trigger: the disagreeing rows vs real rows of the classes they look like
        pos = members[dis]
        src = pred[dis]
        if pos.size > 2000:
            keep = rng.choice(pos.size, 2000, replace=False)
            pos, src = pos[keep], src[keep]
        neg_parts = []
        for s, cnt in zip(*np.unique(src, return_counts=True)):
            avail = np.flatnonzero((y == s) & out_mask)
            take = min(avail.size, 4 * int(cnt))
            if take:
                neg_parts.append(rng.choice(avail, take, replace=False))
        neg = np.concatenate(neg_parts) if neg_parts else np.array([], dtype=np.int64)
        sources = tuple(int(s) for s in np.unique(src))
        folds = min(3, pos.size, neg.size)
        if folds < 2:
            return SpectralCluster(**base, source_classes=sources, auc=0.5, p_trigger=1.0, p_value=1.0,
                                   present=False), None
        Xt = np.vstack([Z[pos], Z[neg]])
        yt = np.r_[np.ones(pos.size, dtype=int), np.zeros(neg.size, dtype=int)]
        oof = np.zeros(yt.size)
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(self.random_state))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for tr, te in skf.split(Xt, yt):
                oof[te] = self._lr_trigger().fit(Xt[tr], yt[tr]).decision_function(Xt[te])
        auc = float(roc_auc_score(yt, oof))
        p_trig = float(mannwhitneyu(oof[yt == 1], oof[yt == 0], alternative="greater").pvalue)
        feats, vals, share, rate0 = self._shared_pattern(X, members[dis], out_mask)
        n_other = int(out_mask.sum())
        # one-sided binomial: this many pattern carriers in the cluster if rows carried it at the others' rate
        k_car = int(round(share * pos.size))
        p_pat = float(binom.sf(k_car - 1, int(pos.size), max(rate0, 1.0 / max(n_other, 1)))) if feats.size else 1.0
        pv = max(p_dis, p_pat)
        present = bool(
            max(p_dis, p_pat) < level and feats.size > 0
            and share >= float(self.min_share) and rate0 <= float(self.max_carrier_rate)
        )
        purity = 0.0
        if feats.size:
            car_c = int((np.abs(X[rows][:, feats] - vals) <= _TOL).all(axis=1).sum())
            expected = rate0 * max(rows.size - car_c, 0) + 1.0
            purity = float(np.clip(1.0 - expected / max(car_c, 1), 0.0, 1.0))
        cl = SpectralCluster(**base, source_classes=sources, auc=auc, p_trigger=p_trig, p_value=pv,
                             carrier_purity=purity,
                             pattern_features=tuple(int(f) for f in feats), pattern_values=tuple(float(v) for v in vals),
                             pattern_share=float(share), pattern_rate_others=float(rate0), present=present)
        return cl, (lr, pre, fill)

    def _shared_pattern(self, X: np.ndarray, rows: np.ndarray, others: np.ndarray, *, min_share: float | None = None):
        """Features on which ``rows`` share one value, the joint share carrying them all, and the other rows' rate."""
        Xr = X[rows]
        v = np.median(Xr, axis=0)
        share_f = (np.abs(Xr - v) <= _TOL).mean(axis=0)
        feats = np.flatnonzero(share_f >= float(self.min_share if min_share is None else min_share))
        if feats.size == 0:
            return feats, v[feats], 0.0, 1.0
        oth = np.flatnonzero(others)
        # drop values common among the other rows (background), keep the rare shared ones
        rate_f = (np.abs(X[oth][:, feats] - v[feats]) <= _TOL).mean(axis=0)
        feats = feats[rate_f <= _COMMON]
        if feats.size == 0:
            return feats, v[feats], 0.0, 1.0
        share = float((np.abs(Xr[:, feats] - v[feats]) <= _TOL).all(axis=1).mean())
        rate0 = float((np.abs(X[oth][:, feats] - v[feats]) <= _TOL).all(axis=1).mean())
        return feats, v[feats], share, rate0

    def _lr_trigger(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, max_iter=300, tol=1e-4, class_weight="balanced",
                                  random_state=int(self.random_state))

    # ---------------------------------------------------------------- score
    def _cluster_scores(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per row: score, index into ``clusters_`` behind it (-1 none), mixture posterior, trigger probability."""
        n = X.shape[0]
        score = np.zeros(n)
        which = np.full(n, -1)
        post_out = np.zeros(n)
        trig_out = np.zeros(n)
        if not self.mixtures_:
            return score, which, post_out, trig_out
        Z = self._represent(X)
        for ci, cl in enumerate(self.clusters_):
            key = (cl.label, cl.direction)
            if not cl.present or key not in self.mixtures_:
                continue
            rows = np.flatnonzero(y == cl.label)
            if rows.size == 0:
                continue
            w, mu, var, small = self.mixtures_[key]
            z = (Z[rows] - self.centres_[cl.label]) @ self.directions_[cl.label][cl.direction]
            post = _posterior(z, w, mu, var, small)
            lr, pre, fill = self.trigger_models_[key]
            Xm = X[rows].copy()
            Xm[:, pre] = fill
            pk = np.zeros(rows.size)
            hit = lr.classes_ == cl.label
            if hit.any():
                pk = lr.predict_proba(self._represent(Xm))[:, np.flatnonzero(hit)[0]]
            trig = 1.0 - pk  # the model trained without the cluster: P(not its label)
            f = np.array(cl.pattern_features, dtype=np.int64)
            carries = (np.abs(X[rows][:, f] - np.array(cl.pattern_values)) <= _TOL).all(axis=1)
            # a carrier of a (nearly) exclusive pattern in the class is poisoned unless it is one of the few
            # natural carriers expected at the other rows' rate
            s = np.where(carries, np.maximum(trig, cl.carrier_purity), post * trig)
            post = np.where(carries, 1.0, post)
            better = s > score[rows]
            r = rows[better]
            score[r] = s[better]
            which[r] = ci
            post_out[r] = post[better]
            trig_out[r] = trig[better]
        return score, which, post_out, trig_out

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        assert y is not None
        return self._cluster_scores(X, y)[0]

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        _, which, post, trig = self._cluster_scores(X[rows], y[rows])
        out = []
        for i in range(len(rows)):
            ci = int(which[i])
            if ci < 0:
                out.append(("not in a spectral cluster of a class judged poisoned", {"cluster": None}))
                continue
            cl = self.clusters_[ci]
            srcs = ", ".join(f"{{label:{s}}}" for s in cl.source_classes[:4])
            out.append((
                f"in a small spectral cluster of {{label:{cl.label}}} ({cl.n_cluster} rows, posterior "
                f"{post[i]:.2f}) whose rows look like {srcs} to a model trained without them (this row: P(not "
                f"{{label:{cl.label}}}) {trig[i]:.2f}) yet share values in "
                + ", ".join(f"{{feature:{f}}}" for f in cl.pattern_features[:4])
                + f" that {cl.pattern_rate_others:.2%} of other rows carry: a shared trigger",
                {"label": cl.label, "direction": cl.direction, "cluster_rows": cl.n_cluster, "posterior": float(post[i]),
                 "p_not_label": float(trig[i]), "auc": cl.auc,
                 "pattern_features": list(cl.pattern_features), "source_classes": list(cl.source_classes)},
            ))
        return out

