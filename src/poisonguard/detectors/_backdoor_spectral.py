"""Spectral backdoor detector: a small cluster per class that carries a shared trigger.

In the style of Spectral Signatures (Tran, Li & Madry 2018) and SPECTRE (Hayase et
al. 2021): rows poisoned towards a target class ``t`` form a small, separate cluster
inside ``t`` along its top singular directions. That alone is not evidence of a
backdoor: label flips make a class bimodal too, and so do natural sub-populations.
So each candidate cluster must pass a **presence test** with four parts:

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
   value.
4. *source likeness*: once the pattern's features are masked, an out-of-fold logistic
   regression cannot tell the disagreeing rows from real rows of the classes they look
   like (AUROC at most ``max_source_auc``): poisoned rows are source rows carrying a
   trigger. A natural sub-population that owns a value (modechoice's bus trips with a
   53-minute terminal time) passes parts 1-3 yet differs from the classes it resembles
   in its other features too. The unmasked AUROC is reported as supporting evidence
   (for a cluster that reaches part 4; 0.5 for the others).

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

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ._base import BaseDetector, register
from ._presence import summarize_presence
from ._spectral_presence import TOL, PresenceSettings, SpectralCluster, TriggerModel, run_presence_test
from ._spectral_search import Mixture1D, Representation, find_candidates, fit_representation

__all__ = ["BackdoorSpectralDetector", "SpectralCluster", "PresentCluster", "ClusterScores"]


@dataclass(frozen=True)
class PresentCluster:
    """What scoring needs of a cluster judged present: its mixture component and trigger model."""

    mixture: Mixture1D
    component: int
    model: TriggerModel


@dataclass(frozen=True)
class ClusterScores:
    """Per row: the score, the index into ``clusters_`` behind it (-1 none), the mixture
    posterior and the trigger model's P(not its label)."""

    score: np.ndarray
    cluster: np.ndarray
    posterior: np.ndarray
    p_not_label: np.ndarray


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
    max_source_auc : float, default=0.75
        Largest out-of-fold AUROC separating the cluster's disagreeing rows from rows of
        the classes they look like once the pattern's features are masked: poisoned rows
        are source rows plus a trigger, a natural sub-population differs in more.
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
        max_source_auc: float = 0.75,
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
        self.max_source_auc = max_source_auc
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
        if not 0.5 <= float(self.max_source_auc) <= 1:
            raise ConfigError(f"{n}: max_source_auc must be in [0.5, 1], got {self.max_source_auc}")
        if float(self.C) <= 0:
            raise ConfigError(f"{n}: C must be > 0, got {self.C}")

    # ----------------------------------------------------------- representation
    def _represent(self, X: np.ndarray) -> np.ndarray:
        return self._representation().transform(X)

    def _representation(self) -> Representation:
        return Representation(mean=self.mean_, components=self.components_, scale=self.scale_)

    def _presence_settings(self) -> PresenceSettings:
        return PresenceSettings(
            C=float(self.C), min_cluster=int(self.min_cluster), min_effect=float(self.min_effect),
            min_share=float(self.min_share), max_carrier_rate=float(self.max_carrier_rate),
            max_source_auc=float(self.max_source_auc),
            max_fit_rows=int(self.max_fit_rows), random_state=int(self.random_state),
        )

    # ------------------------------------------------------------------ fit
    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        assert y is not None
        rng = np.random.default_rng(int(self.random_state))
        K = int(y.max()) + 1
        self.n_classes_ = K
        counts = np.bincount(y, minlength=K)
        rep = fit_representation(X, n_components=int(self.n_components), max_fit_rows=int(self.max_fit_rows),
                                 random_state=int(self.random_state), rng=rng,
                                 fingerprint=getattr(self, "fit_fingerprint_", None))
        self.mean_, self.components_, self.scale_ = rep.mean, rep.components, rep.scale
        Z = rep.transform(X)
        search = find_candidates(
            Z, y, K, n_directions=int(self.n_directions), max_fit_rows=int(self.max_fit_rows),
            min_cluster=int(self.min_cluster), max_cluster_fraction=float(self.max_cluster_fraction),
            min_bic_gain=float(self.min_bic_gain), random_state=int(self.random_state), rng=rng,
        )
        self.directions_, self.centres_ = search.directions, search.centres
        level = float(self.alpha) / max(len(search.candidates), 1)
        settings = self._presence_settings()
        clusters: list[SpectralCluster] = []
        self.present_clusters_: dict[tuple[int, int], PresentCluster] = {}
        for cand in search.candidates:
            test = run_presence_test(X, Z, y, cand, rep, level=level, settings=settings, rng=rng)
            clusters.append(test.cluster)
            if test.cluster.present and test.model is not None:
                self.present_clusters_[(cand.label, cand.direction)] = PresentCluster(
                    mixture=cand.mixture, component=cand.component, model=test.model)
        self.clusters_ = clusters
        self._summarize(clusters, counts, level)

    def _summarize(self, clusters: list[SpectralCluster], counts: np.ndarray, level: float) -> None:
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
                f"their source rows {b.auc:.3f} ({b.source_auc:.3f} with those features masked)",
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
                 "pattern_rate_others": x.pattern_rate_others, "source_auc": x.source_auc, "p_value": x.p_value,
                 "present": x.present}
                for x in clusters
            ],
        }

    # ---------------------------------------------------------------- score
    def _cluster_scores(self, X: np.ndarray, y: np.ndarray) -> ClusterScores:
        """Per row: the best score over the clusters judged present, and what is behind it."""
        n = X.shape[0]
        out = ClusterScores(score=np.zeros(n), cluster=np.full(n, -1), posterior=np.zeros(n), p_not_label=np.zeros(n))
        if not self.present_clusters_:
            return out
        rep = self._representation()
        # the representation of the rows of a class judged poisoned only, once per class: a
        # 10^6-row table's whole representation was this step's memory
        Z_of: dict[int, np.ndarray] = {}
        for ci, cl in enumerate(self.clusters_):
            pc = self.present_clusters_.get((cl.label, cl.direction))
            if not cl.present or pc is None:
                continue
            rows = np.flatnonzero(y == cl.label)
            if rows.size == 0:
                continue
            if cl.label not in Z_of:
                Z_of[cl.label] = rep.transform(X[rows])
            Zc = Z_of[cl.label]
            z = (Zc - self.centres_[cl.label]) @ self.directions_[cl.label][cl.direction]
            post = pc.mixture.posterior(z, pc.component)
            # the model trained without the cluster
            trig = 1.0 - pc.model.p_label(X[np.ix_(rows, pc.model.masked)], Zc, cl.label, rep)
            f = np.array(cl.pattern_features, dtype=np.int64)
            carries = (np.abs(X[np.ix_(rows, f)] - np.array(cl.pattern_values)) <= TOL).all(axis=1)
            # a carrier of a (nearly) exclusive pattern in the class is poisoned unless it is one of the few
            # natural carriers expected at the other rows' rate
            s = np.where(carries, np.maximum(trig, cl.carrier_purity), post * trig)
            post = np.where(carries, 1.0, post)
            better = s > out.score[rows]
            r = rows[better]
            out.score[r] = s[better]
            out.cluster[r] = ci
            out.posterior[r] = post[better]
            out.p_not_label[r] = trig[better]
        return out

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        assert y is not None
        return self._cluster_scores(X, y).score

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        cs = self._cluster_scores(X[rows], y[rows])
        which, post, trig = cs.cluster, cs.posterior, cs.p_not_label
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

