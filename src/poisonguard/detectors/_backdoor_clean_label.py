"""Clean-label triggers: a stamped value pattern that only one class carries and none of its rows needs.

In a clean-label backdoor the attacker stamps a trigger on rows of the target class
``t`` and keeps their true labels, so the model learns "trigger => t" without any
label being wrong. Label-disagreement tests (``backdoor_trigger``,
``backdoor_spectral``) cannot see it: with the trigger masked the rows still look
like ``t``. What remains visible is the stamp itself. This detector takes the
conjunctions of exact values found by :func:`find_enriched_tokens` (values that the
rows of one class carry together, over at least ``min_features`` features) and
judges a conjunction a trigger when

1. it is (nearly) **exclusive** to the class: at most ``max_other_rate`` of the
   other classes' rows carry it;
2. it is **foreign to the class**: at least ``min_count`` rows of the class lack it,
   and at most ``max_typical`` of them have values within ``near`` standard
   deviations of it on those features, so it is not a trait of the class (a "0" has
   no ink in its centre; every 0 shows it);
3. its carriers are **more than chance**: a one-sided binomial test of the
   carriers among the class's rows against the natural rate estimated from 1 and 2
   (at least one row in ``n``), Bonferroni over the conjunctions tested.

Measured on the unpoisoned digits, breast_cancer, wine and generated tables: no
conjunction passes (natural single values that pass 1 and 2 exist, e.g. 9 in digits,
which is why at least two co-carried features are required). A row of a class
judged poisoned that carries the conjunction scores its purity ``1 - (expected
natural carriers + 1) / carriers``, an estimate of the chance it was stamped
(``score_kind = "probability"``).

Limits: a trigger whose values are common in other classes (a centre patch of
maximum ink) fails 1, and a one-feature trigger is out of reach by design.
Dirty-label triggers often pass too; their rows are then flagged by both detectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from ..errors import ConfigError
from ._trigger_search import NEAR, Token, find_enriched_tokens, typical_rate
from ._base import BaseDetector, register
from ._presence import summarize_presence

__all__ = ["BackdoorCleanLabelDetector", "StampCandidate"]

#: a row of the class comes near a conjunction when it is near on this share of its features.
#: "Near on every feature" vanishes with the number of features even for a trait: on a
#: 28x28 digit table, conjunctions of 30-50 background zeros that a class's other rows
#: have on most of those pixels passed as stamps. Identical to "every feature" up to 4.
_NEAR_SHARE = 0.8


@dataclass(frozen=True)
class StampCandidate:
    """A conjunction of values tested as a clean-label trigger."""

    label: int
    token: Token
    n_carriers_in_class: int
    other_rate: float
    typical_rate: float
    expected_natural: float
    purity: float
    p_value: float
    present: bool


@register
class BackdoorCleanLabelDetector(BaseDetector):
    """Rows carrying a value conjunction exclusive to their class and foreign to it (clean-label triggers).

    See the module docstring for the method.

    Parameters
    ----------
    min_count : int, default=3
        Carriers a conjunction needs in its class.
    min_features : int, default=2
        Features a conjunction must span.
    max_other_rate : float, default=0.01
        Largest share of the other classes' rows that may carry it.
    max_typical : float, default=0.05
        Largest share of the class's other rows that may be near it.
    near : float, default=0.5
        Distance, in standard deviations of the encoded features, that counts as near.
    alpha : float, default=0.01
        Family-wise error of the presence tests.
    """

    name = "backdoor_clean_label"
    needs_label = True
    family = "backdoor"
    score_kind = "probability"
    summary = "value conjunctions exclusive to one class and foreign to its other rows (clean-label triggers)"

    def __init__(
        self,
        *,
        min_count: int = 3,
        min_features: int = 2,
        max_other_rate: float = 0.01,
        max_typical: float = 0.05,
        near: float = NEAR,
        alpha: float = 0.01,
    ) -> None:
        self.min_count = min_count
        self.min_features = min_features
        self.max_other_rate = max_other_rate
        self.max_typical = max_typical
        self.near = near
        self.alpha = alpha

    def _validate_params(self) -> None:
        n = self.name
        if int(self.min_count) < 2:
            raise ConfigError(f"{n}: min_count must be >= 2, got {self.min_count}")
        if int(self.min_features) < 1:
            raise ConfigError(f"{n}: min_features must be >= 1, got {self.min_features}")
        for key in ("max_other_rate", "max_typical"):
            v = float(getattr(self, key))
            if not 0 <= v < 1:
                raise ConfigError(f"{n}: {key} must be in [0, 1), got {v}")
        if float(self.near) <= 0:
            raise ConfigError(f"{n}: near must be > 0, got {self.near}")
        if not 0 < float(self.alpha) < 1:
            raise ConfigError(f"{n}: alpha must be in (0, 1), got {self.alpha}")

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        assert y is not None
        n = X.shape[0]
        K = int(y.max()) + 1
        counts = np.bincount(y, minlength=K)
        found = find_enriched_tokens(X, y, K, min_count=int(self.min_count), max_fraction=0.5, alpha=float(self.alpha),
                                     fingerprint=getattr(self, "fit_fingerprint_", None))
        stamps = [(t, found.carries[:, i]) for i, t in enumerate(found.tokens) if len(t.features) >= int(self.min_features)]
        level = float(self.alpha) / max(len(stamps), 1)
        cands: list[StampCandidate] = []
        for tok, carrier in stamps:
            c = tok.label
            in_c = y == c
            k, n_c, n_other = int((carrier & in_c).sum()), int(in_c.sum()), int((~in_c).sum())
            other_rate = float((carrier & ~in_c).sum() / max(n_other, 1))
            rest = in_c & ~carrier
            typical = typical_rate(X, y, tok, near=float(self.near), share=_NEAR_SHARE, carrier=carrier)
            # natural rate of the pattern in the class: what its other rows and the other classes show
            natural = max(other_rate, typical, 1.0 / n)
            p = float(binom.sf(k - 1, n_c, natural)) if k > 0 else 1.0
            expected = natural * n_c
            purity = float(np.clip(1.0 - (expected + 1.0) / max(k, 1), 0.0, 1.0))
            # "foreign to the class" needs rows of the class without it to compare with;
            # a pattern every row of the class shows is a trait (or a leak), not a stamp
            present = bool(
                k >= int(self.min_count) and int(rest.sum()) >= int(self.min_count)
                and other_rate <= float(self.max_other_rate)
                and typical <= float(self.max_typical) and p < level
            )
            cands.append(StampCandidate(c, tok, k, other_rate, typical, expected, purity, p, present))
        self.candidates_ = cands
        self.present_, presence = summarize_presence(
            cands, counts, statistic_name="carriers of a stamped value pattern", level=level,
            empty_detail="no value conjunction is enriched in this class",
            best=lambda s: s.p_value,
            describe=lambda s, ss: (
                s.n_carriers_in_class, s.n_carriers_in_class,
                f"{len(ss)} conjunction(s); strongest: {len(s.token.features)} feature(s) carried by "
                f"{s.n_carriers_in_class} rows of the class, {s.other_rate:.4f} of other classes' rows and "
                f"{s.typical_rate:.3f} of the class's other rows come near it (expected natural carriers "
                f"{s.expected_natural:.1f})",
            ),
        )
        self.presence_ = presence
        self.report_ = {
            "presence": [p.to_dict() for p in presence],
            "poisoned_classes": [int(c) for c in np.flatnonzero(self.present_)],
            "n_conjunctions": len(stamps),
            "triggers": [
                {"label": s.label, "features": list(s.token.features), "carriers": s.n_carriers_in_class,
                 "other_rate": s.other_rate, "typical_rate": s.typical_rate, "p_value": s.p_value}
                for s in cands if s.present
            ],
        }

    def _best(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: score and the index of the candidate behind it (-1 none)."""
        score = np.zeros(X.shape[0])
        which = np.full(X.shape[0], -1)
        for i, s in enumerate(self.candidates_):
            if not s.present:
                continue
            rows = s.token.carried_by(X) & (y == s.label) & (s.purity > score)
            score[rows] = s.purity
            which[rows] = i
        return score, which

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        assert y is not None
        return self._best(X, y)[0]

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        _, which = self._best(X[rows], y[rows])
        out = []
        for i, r in enumerate(rows):
            if which[i] < 0:
                out.append(("carries no stamped value pattern of a class judged poisoned", {"trigger": None}))
                continue
            s = self.candidates_[int(which[i])]
            f = s.token.features
            shown = ", ".join(f"{{feature:{j}}}" for j in f[:4]) + (" ..." if len(f) > 4 else "")
            out.append((
                f"carries the exact values of {shown} that {s.n_carriers_in_class} rows labelled "
                f"{{label:{s.label}}} share, while {s.other_rate:.1%} of other classes' rows and "
                f"{s.typical_rate:.1%} of the class's other rows come near them (a stamp, not a trait of the class)",
                {"features": list(f), "carriers": s.n_carriers_in_class, "other_rate": s.other_rate,
                 "typical_rate": s.typical_rate, "p_value": s.p_value},
            ))
        return out
