"""Trigger-feature concentration, confirmed by label disagreement with the trigger masked.

A backdoor trigger is a fixed value (a patch pixel at its maximum, a tabular column
set to a rare value) stamped on rows that are then labelled with one target class.
So the *exact* value ``X[:, j] == v`` turns up in many rows and those rows are far
more often labelled ``t`` than the class prior says. This detector

1. counts every exact feature value ("token") carried by at least ``min_count``
   rows and tests, per class, whether the class is over-represented among the
   carriers (one-sided binomial test against the class prior, Bonferroni over the
   token x class tests that could reach the level at all, Tarone's correction:
   :func:`tarone_level`), or whether the same few rows, all of one class, tie on
   exact values in two or more columns (co-stamping, see
   :func:`find_enriched_tokens`); values that the rows of one class carry together
   are also tested as one conjunction (a patch whose single pixels are common); and pairs
   of the most enriched values of a class are tested for an *interaction*: their joint
   carriers in the class against the share a main-effects model of the two values
   predicts (a trigger of three common values, each with hundreds of natural carriers;
   the pair is joined with the further values of the stamp; see
   :func:`~._trigger_search._interaction_conjunctions`);
2. groups the enriched tokens of a class whose carriers overlap (one suspected
   trigger: e.g. the four pixels of a patch), masks the group's columns (set to the
   median of the non-carriers; a level of a one-hot coded column is masked with all the
   column's dummies) in a logistic regression fitted on the whole table,
   and asks what the carriers look like *without* the trigger. A poisoned row looks
   like its source class and disagrees with its label; a clean row that carries a
   class-typical value still agrees with it;
3. runs a **presence test** per suspected trigger: do the carriers disagree more
   often than the class's other rows do under the same masking (binomial test,
   Tarone-Bonferroni over the groups that could pass with every carrier disagreeing)?
   A one-feature group that passes must also be *source-like*: with its value (and any other
   value its disagreeing carriers share) masked, an out-of-fold classifier must not
   tell those carriers from real rows of the classes they look like (lower 95% bound
   of the AUROC at most 0.75, :func:`source_likeness`), neither from rows drawn at random
   nor from rows the masked model also assigns to those classes (the carriers were
   selected by that prediction); stamped rows are source rows, a natural sub-population
   that owns a value differs in its other features too. Before that, its value must be
   *isolated*: more enriched in the class than the rows nearest to it in its column
   (:func:`neighbourhood`); a stamped value is foreign to its column, a graded natural
   determinant (a count of credit reports) enriches its neighbours as well.
   A single value that no row of another class carries (**label-pure**) may pass without
   reaching the test's level where the masked model separates the classes weakly (a
   small table, overlapping classes): its carriers must flip more often than the class's
   other rows and not significantly less often than the other classes' rows do once
   masked, which is what stamped rows of those classes would show; isolation, purity and
   source likeness still apply (see :func:`~._trigger_presence.judge_group`).
   A group that one level of a one-hot coded column explains is not present when the
   level is no more concentrated in its class than the column's other levels
   (:func:`~._trigger_presence.column_nature`): the column determines the label.
   A group with such an interaction conjunction, on a class the masked model mostly
   misses (its null rate leaves no room for the effect), may instead show that its
   carriers flip significantly more often than the class's other rows and not
   significantly less often than rows of the other classes; it then also needs source
   likeness.
   Only triggers judged present give non-zero scores, so
   a clean table flags close to nothing.

The score of a carrier of a trigger judged present is ``1 - p_masked(c)``, the masked
model's probability that the row is *not* of its label ``c``; a row carrying all of
the trigger's values scores at least their purity ``1 - (expected natural carriers + 1)
/ carriers`` (natural carriers expected in the class at the rate the other classes
carry all the values, or the rate at which the class's other rows come near them,
whichever is larger). Other rows score 0. It estimates the chance that the row is poisoned
(``score_kind = "probability"``).

Clean-label backdoors (true labels kept) are out of reach of step 2 by design: the
masked row still looks like its label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ._base import BaseDetector, register
from ._presence import ClassPresence, summarize_presence
from ._trigger_presence import (
    ColumnMedians, MaskingModel, TokenGroup, fit_masking_model, group_tokens, judge_group, masked_disagreement, softmax,
)
from ._trigger_search import (
    NEAR, Token, TokenSearch, _tie_probability, find_enriched_tokens, tarone_level, typical_rate,
)

__all__ = [
    "BackdoorTriggerDetector", "ClassPresence", "find_enriched_tokens", "typical_rate", "Token", "TokenGroup",
    "TokenSearch", "TriggerScores", "NEAR",
]


@dataclass(frozen=True)
class TriggerScores:
    """Per row: the score, the index into ``groups_`` behind it (-1 none), and the masked
    model's prediction and probability of the row's label (-1 and 1 where no group applies)."""

    score: np.ndarray
    group: np.ndarray
    masked_prediction: np.ndarray
    p_label_masked: np.ndarray


@register
class BackdoorTriggerDetector(BaseDetector):
    """Rows carrying a class-enriched exact value that disagree with their label once it is masked.

    See the module docstring for the method.

    Parameters
    ----------
    min_count : int, default=3
        A value must be carried by at least this many rows of one class to be a
        trigger candidate (fewer poisoned rows are out of statistical reach).
    max_fraction : float, default=0.5
        Values carried by more than this share of all rows are not candidates.
    alpha : float, default=0.01
        Family-wise error of the token tests and of the presence tests.
    min_effect : float, default=0.5
        A suspected trigger is judged present only when the share of its carriers
        that disagree with their label once it is masked exceeds the class's other
        rows' share by at least this much (a trigger flips nearly all its carriers;
        a naturally class-typical value flips a few). Half of it suffices for a
        value whose carriers are at least 65% in the class.
    overlap : float, default=0.5
        Tokens of one class whose carrier sets have at least this Jaccard overlap
        form one suspected trigger and are masked together.
    C : float, default=1.0
        Inverse regularisation of the logistic regression used for masking.
    interactions : bool, default=False
        Also judge the conjunctions of the interaction search (value pairs and triples
        concentrated in one class beyond what each value predicts; see the module
        docstring). Off by default: it finds stamps no single value shows (held-out
        fair's three-column 90th-percentile stamp: scan AUROC 0.360 -> 1.000), but on
        the clean held-out image_segments table it flagged 42 rows, 12.7% of a class
        (benchmarks/results/trigger_pairs.md). A defence that deletes good data is
        worse than a missed stamp; turn it on where a stamp of common values is feared.
    random_state : int, default=0
    """

    name = "backdoor_trigger"
    needs_label = True
    family = "backdoor"
    score_kind = "probability"
    summary = "exact values concentrated in one class that disagree with the label once masked (backdoor triggers)"

    def __init__(
        self,
        *,
        min_count: int = 3,
        max_fraction: float = 0.5,
        alpha: float = 0.01,
        min_effect: float = 0.5,
        overlap: float = 0.5,
        C: float = 1.0,
        interactions: bool = False,
        random_state: int = 0,
    ) -> None:
        self.min_count = min_count
        self.max_fraction = max_fraction
        self.alpha = alpha
        self.min_effect = min_effect
        self.overlap = overlap
        self.C = C
        self.interactions = interactions
        self.random_state = random_state

    def _validate_params(self) -> None:
        if int(self.min_count) < 2:
            raise ConfigError(f"backdoor_trigger: min_count must be >= 2, got {self.min_count}")
        if not 0 < float(self.max_fraction) <= 1:
            raise ConfigError(f"backdoor_trigger: max_fraction must be in (0, 1], got {self.max_fraction}")
        if not 0 < float(self.alpha) < 1:
            raise ConfigError(f"backdoor_trigger: alpha must be in (0, 1), got {self.alpha}")
        if not 0 <= float(self.min_effect) <= 1:
            raise ConfigError(f"backdoor_trigger: min_effect must be in [0, 1], got {self.min_effect}")
        if not 0 < float(self.overlap) <= 1:
            raise ConfigError(f"backdoor_trigger: overlap must be in (0, 1], got {self.overlap}")
        if float(self.C) <= 0:
            raise ConfigError(f"backdoor_trigger: C must be > 0, got {self.C}")

    # ------------------------------------------------------------------ fit
    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        assert y is not None
        K = int(y.max()) + 1
        self.n_classes_ = K
        counts = np.bincount(y, minlength=K)
        found = find_enriched_tokens(
            X, y, K, min_count=int(self.min_count), max_fraction=float(self.max_fraction), alpha=float(self.alpha),
            fingerprint=getattr(self, "fit_fingerprint_", None), interactions=bool(self.interactions),
        )
        tokens, carries = found.tokens, found.carries
        if found.interactions:  # conjunctions of the interaction search: judged with the rest
            tokens = tokens + list(found.interactions)
            carries = np.concatenate([carries, found.interaction_carries], axis=1)
        self.tokens_ = tokens
        self.coef_ = np.zeros((K, X.shape[1]))
        self.intercept_ = np.zeros(K)
        groups: list[TokenGroup] = []
        if tokens:
            model = fit_masking_model(X, y, K, C=float(self.C), random_state=int(self.random_state))
            self.coef_, self.intercept_ = model.coef, model.intercept
            logits = model.logits(X)
            clusters = group_tokens(carries, tokens, overlap=float(self.overlap))
            medians = ColumnMedians(X)  # the masking fills of hundreds of groups from columns sorted once
            masked = [masked_disagreement(X, y, logits, carries, cl, tokens, model, medians=medians) for cl in clusters]
            # Tarone over the groups, as over the values: a group that could not pass even with
            # every carrier disagreeing (a few carriers, a class the model mostly misses) does
            # not dilute the level, so one more natural value proposed by the search does not
            # cost a real trigger its presence
            self.presence_level_ = tarone_level(np.array([m.min_p_value(int(self.min_count)) for m in masked]),
                                                float(self.alpha))
            for cl, m in zip(clusters, masked):
                groups.append(judge_group(X, y, logits, carries, cl, tokens, model, level=self.presence_level_,
                                          min_count=int(self.min_count), min_effect=float(self.min_effect),
                                          masked=m, random_state=int(self.random_state)))
        else:
            self.presence_level_ = float(self.alpha)
        self.groups_ = groups
        level = self.presence_level_
        self.present_, presence = summarize_presence(
            groups, counts, statistic_name="disagreeing trigger carriers", level=level,
            empty_detail="no exact value is enriched in this class",
            best=lambda g: g.p_value,
            describe=lambda g, gs: (
                g.n_disagree, g.n_carriers,
                f"{len(gs)} suspected trigger(s); strongest: {len(g.features)} feature(s), {g.n_disagree} of "
                f"{g.n_carriers} carriers look like another class with them masked (clean rows of the class: "
                f"{g.null_rate:.3f})",
            ),
        )
        self.presence_ = presence
        self.report_ = {
            "presence": [p.to_dict() for p in presence],
            "poisoned_classes": [int(c) for c in np.flatnonzero(self.present_)],
            "n_enriched_values": len(tokens),
            "triggers": [
                {"label": g.label, "features": self._own_features(g), "masked_features": list(g.features), "carriers": g.n_carriers,
                 "disagreeing": g.n_disagree, "p_value": g.p_value, "source_auc": g.source_auc, "route": g.route}
                for g in groups if g.present
            ],
            # groups that passed every part but the column's nature, isolation or source likeness: a natural value
            "natural_values": [
                {"label": g.label, "features": self._own_features(g), "carriers": g.n_carriers, "judged_by": g.natural,
                 "column_levels": g.column_levels, "column_alike": g.column_alike,
                 "column_p": g.column_p, "neighbour_share": g.neighbour_share, "neighbour_p": g.neighbour_p,
                 "source_auc": g.source_auc, "source_auc_lower": g.source_auc_lower,
                 "source_auc_all": g.source_auc_all, "source_auc_matched": g.source_auc_matched}
                for g in groups if g.natural
            ],
        }

    def _own_features(self, g: TokenGroup) -> list[int]:
        """The features of a group's values (``g.features`` adds the other dummies of a level's column)."""
        return sorted({int(f) for t in g.tokens for f in self.tokens_[t].features})

    # ---------------------------------------------------------------- score
    def _group_scores(self, X: np.ndarray, y: np.ndarray) -> TriggerScores:
        """Per row: the best score over the groups judged present, and what is behind it."""
        n = X.shape[0]
        out = TriggerScores(score=np.zeros(n), group=np.full(n, -1), masked_prediction=np.full(n, -1),
                            p_label_masked=np.ones(n))
        model = MaskingModel(coef=self.coef_, intercept=self.intercept_)
        logits = None
        for gi, g in enumerate(self.groups_):
            if not g.present:
                continue
            each = np.stack([self.tokens_[t].carried_by(X) for t in g.tokens], axis=1)
            rows = np.flatnonzero(each.any(axis=1) & (y == g.label))
            if rows.size == 0:
                continue
            if logits is None:
                logits = model.logits(X)
            feats = np.array(g.features, dtype=np.int64)
            p = softmax(model.masked_logits(X[np.ix_(rows, feats)], logits[rows], feats, np.array(g.fills)))
            # A core carrier whose masked row still looks like its label is not cleared by
            # that: once the trigger is judged present, the share of core carriers that are
            # stamped (purity) is the chance for any of them (centre patch at 6%: 6 of 75
            # poisoned rows looked like a "0" once masked and stayed in the table). Rows
            # with only some of the group's values keep the masked model's verdict.
            s = 1.0 - p[:, g.label]
            s = np.where(each[rows].all(axis=1), np.maximum(s, g.purity), s)
            better = s > out.score[rows]
            r = rows[better]
            out.score[r] = s[better]
            out.group[r] = gi
            out.masked_prediction[r] = p[better].argmax(axis=1)
            out.p_label_masked[r] = p[better, g.label]
        return out

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        assert y is not None
        return self._group_scores(X, y).score

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        gs = self._group_scores(X[rows], y[rows])
        out = []
        for i, r in enumerate(rows):
            gi = int(gs.group[i])
            if gi < 0:
                out.append(("carries no suspected trigger of a class judged poisoned", {"trigger": None}))
                continue
            g = self.groups_[gi]
            c = int(y[r])
            own = self._own_features(g)
            shown = ", ".join(f"{{feature:{f}}}" for f in own[:4]) + (" ..." if len(own) > 4 else "")
            t0 = min((self.tokens_[t] for t in g.tokens), key=lambda t: t.p_value)
            pred, pl = int(gs.masked_prediction[i]), float(gs.p_label_masked[i])
            out.append(
                (
                    f"carries a suspected trigger value in {shown} ({t0.n_in_class} of the {t0.n_carriers} rows with "
                    f"that value are labelled {{label:{c}}}, p={t0.p_value:.1e}); with it masked a model predicts "
                    f"{{label:{pred}}}, giving {{label:{c}}} only {pl:.2f}",
                    {"features": own, "n_carriers": t0.n_carriers, "n_in_class": t0.n_in_class,
                     "p_value": t0.p_value, "masked_prediction": pred, "p_label_masked": pl},
                )
            )
        return out
