"""Trigger-feature concentration, confirmed by label disagreement with the trigger masked.

A backdoor trigger is a fixed value (a patch pixel at its maximum, a tabular column
set to a rare value) stamped on rows that are then labelled with one target class.
So the *exact* value ``X[:, j] == v`` turns up in many rows and those rows are far
more often labelled ``t`` than the class prior says. This detector

1. counts every exact feature value ("token") carried by at least ``min_count``
   rows and tests, per class, whether the class is over-represented among the
   carriers (one-sided binomial test against the class prior, Bonferroni over all
   token x class tests);
2. masks the columns of the enriched tokens and fits a model on the rows that carry
   none of them (out of fold, :func:`out_of_fold_proba`); carriers are then asked
   what they look like *without* the trigger. A poisoned row looks like its source
   class and disagrees with its label; a clean row that happens to carry a
   class-typical value still agrees with it;
3. runs a **presence test** per class: are there more disagreeing carriers than the
   masked model's own error rate on clean rows of that class explains (binomial
   test)? Only classes judged poisoned get non-zero scores, so a clean table flags
   close to nothing.

The score of a carrier labelled ``c`` in a class judged poisoned is
``excess * (1 - p_masked(c))``: ``excess`` is the share of the token's class-``c``
carriers not explained by the prior, ``p_masked(c)`` the masked model's probability
of the label. Other rows score 0. It estimates the chance that the row is poisoned
(``score_kind = "probability"``).

Clean-label backdoors (true labels kept) are out of reach of step 2 by design: the
masked row still looks like its label.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from ..errors import ConfigError
from ._base import BaseDetector, register
from ._confident import out_of_fold_proba

__all__ = ["BackdoorTriggerDetector", "ClassPresence", "find_enriched_tokens", "Token"]


@dataclass(frozen=True)
class ClassPresence:
    """Result of a per-class presence test.

    Attributes
    ----------
    label : int
        Class code (``{label:K}`` in reasons).
    n_rows : int
        Rows labelled with the class.
    statistic : float
        The test statistic (detector-specific; see ``statistic_name``).
    statistic_name : str
        What ``statistic`` measures.
    p_value : float
        One-sided p-value of the statistic under the clean null.
    threshold : float
        The p-value below which the class is judged poisoned (Bonferroni-corrected).
    poisoned : bool
        The decision: ``p_value < threshold`` (and the detector's minimum evidence).
    n_suspects : int
        Rows of the class that carry the evidence.
    detail : str
        One human sentence.
    """

    label: int
    n_rows: int
    statistic: float
    statistic_name: str
    p_value: float
    threshold: float
    poisoned: bool
    n_suspects: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Token:
    """An exact feature value enriched in one class."""

    feature: int
    value: float
    label: int
    n_carriers: int
    n_in_class: int
    p_value: float
    excess: float


def find_enriched_tokens(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    min_count: int,
    max_fraction: float,
    alpha: float,
) -> tuple[list[Token], np.ndarray]:
    """Exact feature values over-represented in one class.

    Returns the significant tokens and ``carries``, a boolean ``(n_rows, n_tokens)``
    matrix (row ``i`` carries token ``t``).
    """
    n, d = X.shape
    prior = np.bincount(y, minlength=n_classes) / n
    cand: list[tuple[int, float, np.ndarray, np.ndarray]] = []
    n_tests = 0
    max_count = max(min_count, int(max_fraction * n))
    for j in range(d):
        vals, inv, counts = np.unique(X[:, j], return_inverse=True, return_counts=True)
        ok = (counts >= min_count) & (counts <= max_count)
        if not ok.any():
            continue
        cc = np.bincount(inv * n_classes + y, minlength=vals.size * n_classes).reshape(vals.size, n_classes)
        idx = np.flatnonzero(ok)
        n_tests += idx.size * n_classes
        for v in idx:
            cand.append((j, float(vals[v]), cc[v], counts[v]))
    if not cand:
        return [], np.zeros((n, 0), dtype=bool)
    level = alpha / max(n_tests, 1)
    tokens: list[Token] = []
    for j, v, cc, total in cand:
        # P(at least cc[c] of `total` carriers in class c | carriers drawn by the prior)
        p = binom.sf(cc - 1, total, prior)
        lift_ok = cc >= np.maximum(min_count, 2.0 * prior * total)
        for c in np.flatnonzero((p < level) & lift_ok):
            excess = float(np.clip((cc[c] - prior[c] * total) / cc[c], 0.0, 1.0))
            tokens.append(Token(j, v, int(c), int(total), int(cc[c]), float(p[c]), excess))
    carries = np.zeros((n, len(tokens)), dtype=bool)
    for t, tok in enumerate(tokens):
        carries[:, t] = X[:, tok.feature] == tok.value
    return tokens, carries


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
        Family-wise error of the token tests and of the per-class presence tests.
    n_folds : int, default=5
        Folds of the masked model.
    C : float, default=1.0
        Inverse regularisation of the masked logistic regression.
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
        n_folds: int = 5,
        C: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.min_count = min_count
        self.max_fraction = max_fraction
        self.alpha = alpha
        self.n_folds = n_folds
        self.C = C
        self.random_state = random_state

    def _validate_params(self) -> None:
        if int(self.min_count) < 2:
            raise ConfigError(f"backdoor_trigger: min_count must be >= 2, got {self.min_count}")
        if not 0 < float(self.max_fraction) <= 1:
            raise ConfigError(f"backdoor_trigger: max_fraction must be in (0, 1], got {self.max_fraction}")
        if not 0 < float(self.alpha) < 1:
            raise ConfigError(f"backdoor_trigger: alpha must be in (0, 1), got {self.alpha}")
        if int(self.n_folds) < 2:
            raise ConfigError(f"backdoor_trigger: n_folds must be >= 2, got {self.n_folds}")
        if float(self.C) <= 0:
            raise ConfigError(f"backdoor_trigger: C must be > 0, got {self.C}")

    # ------------------------------------------------------------------ fit
    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        assert y is not None
        n = X.shape[0]
        K = int(y.max()) + 1
        self.n_classes_ = K
        tokens, carries = find_enriched_tokens(
            X, y, K, min_count=int(self.min_count), max_fraction=float(self.max_fraction), alpha=float(self.alpha)
        )
        self.tokens_ = tokens
        self.masked_features_ = np.array(sorted({t.feature for t in tokens}), dtype=np.int64)
        keep = np.setdiff1d(np.arange(X.shape[1]), self.masked_features_)
        self.kept_features_ = keep
        self.models_: list[Any] = []
        self.class_error_ = np.zeros(K)
        presence: list[ClassPresence] = []
        level = float(self.alpha) / K
        # rows carrying an enriched token of their own class
        own = self._own_tokens(carries, y)
        is_carrier = own.any(axis=1)
        clean = ~carries.any(axis=1)
        counts = np.bincount(y, minlength=K)
        can_model = tokens and keep.size > 0 and np.unique(y[clean]).size >= 2 and clean.sum() >= 2 * int(self.n_folds)
        self.carrier_proba_ = np.zeros((n, K))
        if can_model:
            oof, self.models_ = out_of_fold_proba(
                X[clean][:, keep], y[clean], K, n_folds=int(self.n_folds), C=float(self.C),
                random_state=int(self.random_state),
            )
            pred = oof.argmax(axis=1)
            yc = y[clean]
            overall = float((pred != yc).mean())
            for c in range(K):
                m = yc == c
                err = float((pred[m] != c).mean()) if m.any() else overall
                # never trust a near-zero error rate from few rows
                self.class_error_[c] = max(err, overall, 1.0 / max(int(m.sum()), 1))
        carrier_rows = np.flatnonzero(is_carrier)
        if can_model and carrier_rows.size:
            self.carrier_proba_[carrier_rows] = self._masked_proba(X[carrier_rows])
        self.present_ = np.zeros(K, dtype=bool)
        for c in range(K):
            rows_c = carrier_rows[y[carrier_rows] == c]
            if rows_c.size == 0 or not can_model:
                presence.append(
                    ClassPresence(c, int(counts[c]), 0.0, "disagreeing trigger carriers", 1.0, level, False, 0,
                                  "no exact value is enriched in this class")
                )
                continue
            dis = int((self.carrier_proba_[rows_c].argmax(axis=1) != c).sum())
            err = float(self.class_error_[c])
            p = float(binom.sf(dis - 1, rows_c.size, err)) if dis > 0 else 1.0
            poisoned = bool(p < level and dis >= int(self.min_count))
            self.present_[c] = poisoned
            n_tok = sum(1 for t in tokens if t.label == c)
            presence.append(
                ClassPresence(
                    c, int(counts[c]), float(dis), "disagreeing trigger carriers", p, level, poisoned, int(rows_c.size),
                    f"{n_tok} exact value(s) enriched in the class; {dis} of {rows_c.size} carriers look like another "
                    f"class with those features masked (clean error rate {err:.3f})",
                )
            )
        self.presence_ = presence
        self.report_ = {
            "presence": [p.to_dict() for p in presence],
            "poisoned_classes": [int(c) for c in np.flatnonzero(self.present_)],
            "n_enriched_values": len(tokens),
            "masked_features": [int(j) for j in self.masked_features_],
        }
        self.fit_scores_ = self._compute(X, y, carries, self.carrier_proba_)

    def _own_tokens(self, carries: np.ndarray, y: np.ndarray) -> np.ndarray:
        if not self.tokens_:
            return carries
        tok_label = np.array([t.label for t in self.tokens_])
        return carries & (tok_label[None, :] == y[:, None])

    def _masked_proba(self, X: np.ndarray) -> np.ndarray:
        from ._confident import _full_proba

        Xk = X[:, self.kept_features_]
        return np.mean([_full_proba(m, Xk, self.n_classes_) for m in self.models_], axis=0)

    def _carries(self, X: np.ndarray) -> np.ndarray:
        carries = np.zeros((X.shape[0], len(self.tokens_)), dtype=bool)
        for t, tok in enumerate(self.tokens_):
            carries[:, t] = X[:, tok.feature] == tok.value
        return carries

    def _compute(self, X: np.ndarray, y: np.ndarray, carries: np.ndarray, proba: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros(X.shape[0])
        if not self.tokens_ or not self.present_.any() or not self.models_:
            return out
        y = np.minimum(y, self.n_classes_ - 1)
        own = self._own_tokens(carries, y)
        rows = np.flatnonzero(own.any(axis=1) & self.present_[y])
        if rows.size == 0:
            return out
        excess = np.array([t.excess for t in self.tokens_])
        best = np.where(own[rows], excess[None, :], 0.0).max(axis=1)
        p = self._masked_proba(X[rows]) if proba is None else proba[rows]
        out[rows] = best * (1.0 - p[np.arange(rows.size), y[rows]])
        return out

    # ---------------------------------------------------------------- score
    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        assert y is not None
        if is_fit_data:
            return self.fit_scores_.copy()
        return self._compute(X, y, self._carries(X))

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        out = []
        sub = X[rows]
        carries = self._carries(sub)
        own = self._own_tokens(carries, np.minimum(y[rows], self.n_classes_ - 1))
        proba = self._masked_proba(sub) if self.models_ else np.zeros((len(rows), self.n_classes_))
        for i, r in enumerate(rows):
            c = int(y[r])
            toks = [self.tokens_[t] for t in np.flatnonzero(own[i])]
            if not toks or scores[r] <= 0:
                out.append(("carries no value enriched in a class judged poisoned", {"tokens": []}))
                continue
            toks.sort(key=lambda t: t.p_value)
            shown = ", ".join(f"{{feature:{t.feature}}}" for t in toks[:4]) + (" ..." if len(toks) > 4 else "")
            t0 = toks[0]
            pred = int(np.argmax(proba[i]))
            out.append(
                (
                    f"carries the exact value(s) of {shown}; {t0.n_in_class} of the {t0.n_carriers} rows with that "
                    f"value are labelled {{label:{c}}} (p={t0.p_value:.1e}); with those features masked a model "
                    f"predicts {{label:{pred}}} ({proba[i, pred]:.2f}), not {{label:{c}}} ({proba[i, c]:.2f})",
                    {
                        "features": [t.feature for t in toks],
                        "n_carriers": t0.n_carriers,
                        "n_in_class": t0.n_in_class,
                        "p_value": t0.p_value,
                        "masked_prediction": pred,
                        "p_label_masked": float(proba[i, c]),
                    },
                )
            )
        return out
