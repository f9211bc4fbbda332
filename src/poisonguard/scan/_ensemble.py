"""Calibrate detector scores to one scale, combine them into ``suspicion``, and flag.

Each detector's raw scores become a *strength* in [0, 1]:

* ``probability`` detectors estimate the chance that a row is poisoned; their score
  is the strength. The label-family ones (neighbour vote, confident learning) all
  estimate the same thing, P(label wrong), so they form one group. Their estimates
  of P(label correct) are mixed with weights that maximise the likelihood of the
  table's own labels (EM for mixture weights, :func:`mixture_weights`): the estimator
  that predicts this table's labels better gets more say. The labels are scored
  through a symmetric noise channel (``MIXTURE_NOISE``), so an estimator that is sure
  a flipped row's label is wrong is not punished for it (without the channel, the
  flips of a table moved the weight to whichever estimator doubted every row alike).
* ``anomaly`` detectors (Isolation Forest, class-conditional distance) are compared
  with the bulk of the table: a robust z-score ``z = (s - median) / (1.4826 MAD)``
  becomes ``Phi(z - Z_MID)``, strength ``AUTO_THRESHOLD`` (0.5) at ``Z_MID`` robust standard deviations.
  A robust null is used rather than the table's own ranks, because a rank always
  puts *some* row at the top, even in a clean table.

Presence tests decide, per group, whether there is anything to find at all, before
any row is flagged (the backdoor detectors already work this way):

* **label group, per class** (:func:`label_presence`). A low P(label correct) means
  little in a class that the features explain weakly: the minority class of a fraud or
  insurance table gets low probabilities on every row although no label is wrong. A
  class is judged poisoned only when (a) it is *predictable*: its upper-quartile row
  has P(label correct) >= ``PREDICTABLE_Q75``, so the features do recognise the class,
  and (b) its near-certain errors (P <= ``LABEL_FDR``) form a mode of their own: among
  the class's doubtful rows (P <= ``LABEL_CAP``) they are more than the share a uniform
  spread of the detectors' observed evidence puts there (:func:`~._label_rules.null_share`:
  0.10 at no label noise, 0.17 at the channel rate 0.04; one-sided binomial test,
  Bonferroni over classes, at least
  ``MIN_LABEL_SUSPECTS`` rows), or they are all of its doubtful rows (a cleanly
  separated class with a few flips, where the test has too few rows to reach the level). Natural overlap gives a continuum of doubtful rows with
  few near-certain errors; flips give a separate cluster near 0.
* **anomaly detectors** (:func:`anomaly_presence`), two rules, either suffices:

  - *plateau*: clean tables have a decaying upper tail of robust z-scores (Isolation
    Forest: 0.2-0.3 of the rows above z = 4 are also above z = 6 on the real tables
    measured); injected rows form a plateau: at least half of the rows above
    ``TAIL_LOW`` (4) are above ``TAIL_HIGH`` (6), at least 1% of the rows (>= 3)
    are above 4, and the share is significant against a clean tail's 0.3 (one-sided
    binomial, p <= 0.01, :func:`~._anomaly_rules.plateau_p_value`): with a handful of
    rows above 4 a share of 0.5 is chance (clean statsmodels macrodata and MASS crabs,
    4 of 7 and 5 of 9, had 3.0% and 3.5% of their rows flagged).
  - *excess over the table's own tail* (:func:`tail_excess`): fixed z thresholds miss a
    separated cluster when the table's heavy-tailed columns compress the detector's z
    (injected rows at z 4-6 instead of 20). The null is a generalised Pareto tail over
    the median with shape >= 0 (exponential or heavier, never lighter), fitted to the
    log-survival at the table's own 50%, 55%, ..., 90% quantiles; above q90 the count of
    rows at or above each threshold is compared with the null's expectation (one-sided
    binomial test). Present at p <= 1e-6 (``EXCESS_LOG10P`` = 6) at a threshold holding
    at least twice the expected rows and an excess of at least max(3, 0.5% of the rows).
    Clean tails, light (Isolation Forest on the real tables measured) or heavy
    (lognormal, Pareto), lie at or below the fitted tail.

  A present detector's strength is ``max(Phi(z - Z_PRESENT), 1 - q)`` where ``q`` is the
  row's q-value under the fitted null (the estimated share of null rows at or above its
  score); it flags rows with q <= ``ANOMALY_FDR`` (0.05), at or above the threshold where
  the excess test found its excess, and at robust z >= ``Z_PRESENT_FLAG`` (5) when the
  null expects < ``ROW_EXPECTED_MAX`` (1) rows that far out or q <= ``FAR_FDR`` (0.2)
  (present by the plateau alone: z >= ``TAIL_HIGH`` (6), where the plateau lies, and z >= 5
  only for rows that still reach 5 measured from their class's lower quartile). The
  excess test's most significant threshold is taken on finite p-values: where the exact
  binomial tail underflows, a Chernoff bound ranks the thresholds
  (:func:`~._anomaly_rules.binom_log10_sf`). With labels the null is class-aware:
  each class's own tail beside the table's (see :mod:`._anomaly_rules`). An absent
  detector keeps ``Phi(z - Z_MID)`` and flags at z >= ``Z_MID`` (8) the rows that
  table's own tail does not explain (:func:`~._anomaly_rules._unexplained_far`): the null
  expects < ``ROW_EXPECTED_MAX`` (1) rows at or above the row, or the row lies above a
  gap that the null's shape makes unlikely: the ``k`` rows at or above the gap's upper
  edge all lie there, given that they lie above its lower edge, with probability
  ``(E(upper) / E(lower))^k`` <= ``PLATEAU_ALPHA`` (0.01). A clean heavy tail continues
  past z 8 with rows of its own (MASS crabs: 9.0, 8.3, 8.3, 7.1, 6.4; its tail expects
  1.7-2.2 rows at or above each of the first three), and the plain line flagged them;
  far injected rows sit above a gap (breast_cancer: 6 rows at 11.0-11.6, the next at
  7.0: (2.3 / 7.6)^6 = 8e-4).

Two corrections keep an anomaly detector's flags and the label group's tests from
deleting clean data:

* **a distinct clean class** (:func:`_class_offset`). A small class that the features
  set apart (Shuttle's second class, 7% of the rows) gets high anomaly scores as a
  whole; once injected rows make the detector present, its rule took 80-98% of that
  class. With labels, a class whose *median* row is already past the rule's line
  (``Z_PRESENT_FLAG`` when present, ``Z_MID`` when not), and whose lower quartile already
  lies in the table's tail (robust z >= ``TAIL_LOW``, 4), is measured from its own lower
  quartile: a row of it is flagged when it passes the rule from there, or when it
  stands out within its class (within-class robust z >= ``Z_PRESENT_FLAG``). Classes
  whose median row is not past the line are untouched, and so is a class whose median is
  past it but whose lower quartile is in the bulk: two populations, e.g. a small class
  whose majority is far outliers given its label, not one distinct class.
* **conflicting duplicates** (``duplicates``, :class:`~poisonguard.detectors.RelabelledTwinDetector`)
  have a presence test of their own, on the feature matrix: do the table's twins
  disagree far more often than two rows at the same spot naturally do? Identical rows
  with different labels are the normal state of coarse tables (river's Phishing has
  about 110), where twins disagree at their neighbours' rate; relabelled copies always
  disagree with their source. Only then does the detector reach ``AUTO_THRESHOLD``, and
  only the twin whose label its neighbourhood supports less goes above it; that twin is
  flagged when the label group also finds its label less likely than not
  (:func:`conflict_flags`). In the ranking a conflicting twin of a present test counts
  ``0.5 + 0.5 w``, ``w`` the chance that it, not its twin, is the wrong one given the
  label group's P(label correct); a conflict without presence never counts more than
  the label group's own doubt of the row (:func:`duplicate_strength`), unless the label
  group's own presence test judged a class poisoned: then a conflict is a second sign
  of a wrong label and counts as the noisy-or ``1 - p (1 - c)`` of the doubt and the
  row's share ``c`` of conflicting twins. A twin test that finds a clear excess only
  at ``TWIN_RANK_ALPHA`` puts every conflicting twin at the threshold (ranked, not
  flagged); the duplicates group counts as confirmed when its test fired (some
  strength at the threshold) or the label group is confirmed.
* **rows another group explains** (``explained`` in :func:`label_presence`). Rows that
  an anomaly detector or a backdoor detector flags as injected take no part in the
  label presence tests or in the predictability of their class. A backdoor relabelled
  to the 6% positive class of an insurance table made that class look predictable (the
  carriers share a trigger the label models learn), and its clean positives then looked
  like near-certain errors: the label group flagged 99.1% of them.

``suspicion`` ranks rows in two tiers. A row that a group's auto rule flags gets
``0.5 + 0.5 s``, where ``s`` is the largest strength among the groups that flag it; every
other row gets ``0.5 x`` the largest *weighted* strength of any group, where a group
counts at full strength when a presence test confirmed it on this table (label group:
some class judged poisoned; anomaly detector: its tail test; conflicting duplicates and
backdoor detectors: they flag some row) and at ``UNCONFIRMED_WEIGHT`` (0.5) of it
otherwise. A presence test and flag
rule are the evidence that a group's strengths mean something here, so a flagged row
ranks above every unflagged one, and below the flags a confirmed signal (a present
anomaly detector's rows short of its flag rule) is not buried under doubts that no test backs (the label doubts of a
class the features explain weakly). When no group is confirmed, or all are, the lower
tier is the row-wise maximum of the strengths, as before.

What this does not do: when *no* presence test fires, nothing tells which detector
carries the signal, and the lower tier follows the largest strength, which is usually
the label group's. A blob of injected rows inside the columns' ranges (3% of the rows,
one label) sits at robust z 2-6 on Isolation Forest and ``ecod``, within the tail of
clean tables; the label detectors rank those rows as the *least* suspicious (their
neighbours share their label), so the scan's AUROC on them stays far below the anomaly
detectors' unless the ``cluster`` detector's own presence test finds the blob (its gap or
its dense core; where it does not, e.g. two blobs on one coarse table or a blob of spread
0.2, see benchmarks/results/cluster.md). The same holds for backdoor carriers and
perturbed copies that no presence test confirms (benchmarks/results/backdoor_fusion_diagnosis.md).

The default flag rule ("auto") flags what stands out statistically:

* label group: a *posterior false-discovery rule* over the rows of classes judged
  poisoned. Rows are taken in order of increasing estimated P(label correct) for as
  long as the mean of that probability over the taken rows (the expected share of
  wrongly flagged rows) stays at or under ``LABEL_FDR``, and no row with P(label
  correct) above ``LABEL_CAP`` is taken. Rows of classes judged clean are never
  flagged by the label group.
* anomaly detectors: robust z >= ``Z_MID`` where the table's own tail does not explain the row; when present, robust z >= ``Z_PRESENT_FLAG`` where the null expects < 1 row or q <= 0.2,
  q-value <= ``ANOMALY_FDR``, or the excess found by the tail test.
* every other group: strength >= ``AUTO_THRESHOLD``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..detectors._presence import ClassPresence
from ._anomaly_rules import (
    ANOMALY_FDR,
    EXCESS_LOG10P,
    Z_MID,
    Z_PRESENT,
    Z_PRESENT_FLAG,
    AnomalyPresence,
    TailExcess,
    _std_normal_cdf,
    anomaly_group,
    anomaly_presence,
    robust_z,
    tail_excess,
)
from ._label_rules import (
    LABEL_CAP,
    LABEL_FDR,
    LABEL_GROUP,
    PREDICTABLE_Q75,
    conflict_flags,
    duplicate_strength,
    label_group_flags,
    label_presence,
    mixture_weights,
    posterior_fdr_flags,
)

__all__ = [
    "calibrate",
    "combine",
    "Combined",
    "Z_MID",
    "AUTO_THRESHOLD",
    "LABEL_FDR",
    "LABEL_CAP",
    "robust_z",
    "posterior_fdr_flags",
    "flag_top",
    "LABEL_GROUP",
    "mixture_weights",
    "label_presence",
    "anomaly_presence",
    "AnomalyPresence",
    "PREDICTABLE_Q75",
    "Z_PRESENT",
    "Z_PRESENT_FLAG",
    "tail_excess",
    "TailExcess",
    "EXCESS_LOG10P",
    "ANOMALY_FDR",
    "UNCONFIRMED_WEIGHT",
]

#: the one strength threshold of the auto rule: groups without a rule of their own flag at it,
#: and an anomaly detector's strength reaches it at robust z = Z_MID (or Z_PRESENT)
AUTO_THRESHOLD = 0.5
#: below the flagged rows, a group its presence test did not confirm counts at this share of
#: its strength: an unconfirmed doubt stays under AUTO_THRESHOLD, where a confirmed one can rise
UNCONFIRMED_WEIGHT = AUTO_THRESHOLD


def calibrate(raw: np.ndarray, score_kind: str) -> np.ndarray:
    """Map raw detector scores to strengths in [0, 1] (see module docstring).

    Probabilities already in [0, 1] are returned as they are, not copied (a scan then
    holds one array per detector for both, 8 MiB each at a million rows): treat the
    result as read-only.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if score_kind == "probability":
        if raw.size and float(raw.min()) >= 0.0 and float(raw.max()) <= 1.0:
            return raw
        return np.clip(raw, 0.0, 1.0)
    if score_kind == "anomaly":
        return _std_normal_cdf(robust_z(raw), Z_MID)
    raise ValueError(f"unknown score_kind {score_kind!r}; expected 'probability' or 'anomaly'")


@dataclass(frozen=True)
class Combined:
    """The combined suspicion, the groups, each group's strength and auto flags, and the presence tests.

    ``strengths`` holds each detector's strength as used (an anomaly detector judged
    present ranks on its lower midpoint); ``label_presence`` has one entry per class
    (empty without labels or label detectors); ``anomaly_presence`` one per anomaly detector.
    """

    suspicion: np.ndarray
    groups: dict[str, list[str]]
    group_strength: dict[str, np.ndarray]
    group_flags: dict[str, np.ndarray]
    label_weights: dict[str, float]
    strengths: dict[str, np.ndarray] = field(default_factory=dict)
    label_presence: list[ClassPresence] = field(default_factory=list)
    anomaly_presence: dict[str, AnomalyPresence] = field(default_factory=dict)

    @property
    def auto_flags(self) -> np.ndarray:
        """Rows flagged by any group's auto rule."""
        return np.any(np.stack(list(self.group_flags.values()), axis=1), axis=1)

    def group_of(self, detector: str) -> str:
        return next(g for g, names in self.groups.items() if detector in names)


def combine(
    strengths: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    families: Mapping[str, str],
    *,
    raw: Mapping[str, np.ndarray] | None = None,
    y: np.ndarray | None = None,
    n_classes: int | None = None,
    label_noise_rate: float = 0.0,
) -> Combined:
    """Group the detectors, run the presence tests, flag, and rank (see the module docstring).

    Parameters
    ----------
    strengths : mapping
        Each detector's strength from :func:`calibrate`. ``None`` for an anomaly detector
        whose raw scores are given: its strength is then computed here with its tail
        test (the same values), and the caller holds no copy of its own.
    kinds, families : mapping
        Each detector's ``score_kind`` and ``family``.
    raw : mapping, optional
        Raw scores; with them, anomaly detectors get their tail test (:func:`anomaly_presence`).
    y : ndarray of int, optional
        Class codes; with them, the label group gets its per-class presence test
        (:func:`label_presence`) and flags only rows of classes judged poisoned, and an
        anomaly detector's flags are measured against the row's own class.
        Without them every class counts as judged poisoned (the rule of a single class).
    label_noise_rate : float, default=0
        The noise-channel rate through which the label detectors computed P(label
        correct); it sets the null of the label group's presence tests (:func:`~._label_rules.null_share`).
    """
    if not strengths:
        raise ValueError("no detector scores to combine")
    used = {n: None if v is None else np.asarray(v, dtype=np.float64) for n, v in strengths.items()}
    anomaly: dict[str, AnomalyPresence] = {}
    anomaly_flags: dict[str, np.ndarray] = {}
    for name in used:
        if kinds[name] == "anomaly" and raw is not None and name in raw:
            scored = anomaly_group(np.asarray(raw[name], dtype=np.float64), y)
            anomaly[name] = scored.presence
            anomaly_flags[name] = scored.flags
            if scored.presence.present or used[name] is None:
                # an absent detector's group strength is calibrate's: Phi(z - Z_MID) of the same z
                used[name] = scored.strength
        if used[name] is None:
            raise ValueError(f"no strength for detector {name!r}: only an anomaly detector with raw scores may omit it")
    groups: dict[str, list[str]] = {}
    for name in used:
        key = LABEL_GROUP if (kinds[name] == "probability" and families[name] == "label") else name
        groups.setdefault(key, []).append(name)
    # a group of one is its detector's strength itself (the mean of one array is that array; not copied)
    group_strength = {g: used[names[0]] if len(names) == 1 else np.mean([used[n] for n in names], axis=0)
                      for g, names in groups.items()}
    label_weights: dict[str, float] = {}
    if len(groups.get(LABEL_GROUP, [])) > 1:
        names = groups[LABEL_GROUP]
        P = np.stack([used[n] for n in names], axis=1)
        np.subtract(1.0, P, out=P)  # P(label correct), in place: one (rows x detectors) table, not two
        w = mixture_weights(P, n_classes=_n_classes(y, n_classes))
        label_weights = {n: float(x) for n, x in zip(names, w)}
        group_strength[LABEL_GROUP] = 1.0 - P @ w
        del P  # not needed past here: the rules below have their own temporaries
    n = next(iter(used.values())).shape[0]
    group_flags: dict[str, np.ndarray] = {}
    # groups that say "this row was injected" (anomaly, backdoor) decide first: the rows
    # they explain take no part in the label group's presence tests
    for g, strength in group_strength.items():
        if g == LABEL_GROUP or (y is not None and all(families[m] == "duplicate" for m in groups[g])):
            continue
        group_flags[g] = anomaly_flags[g] if g in anomaly_flags else strength >= AUTO_THRESHOLD
    explained = np.zeros(n, dtype=bool)
    for f in group_flags.values():
        explained |= f
    presence: list[ClassPresence] = []
    p_label = 1.0 - group_strength.get(LABEL_GROUP, np.zeros(n))
    if LABEL_GROUP in group_strength:
        decided = label_group_flags(p_label, y, n_classes=n_classes, explained=explained,
                                    noise_rate=label_noise_rate)
        presence = decided.presence
        group_flags[LABEL_GROUP] = decided.flags
    label_confirmed = _label_confirmed(group_strength, presence, y)
    for g, strength in group_strength.items():
        if g not in group_flags:  # conflicting duplicates: of a pair, the twin the label group doubts
            group_flags[g] = conflict_flags(strength, p_label, threshold=AUTO_THRESHOLD, explained=explained)
            group_strength[g] = duplicate_strength(strength, p_label, threshold=AUTO_THRESHOLD,
                                                   label_confirmed=label_confirmed)
    group_flags = {g: group_flags[g] for g in group_strength}  # the groups' order
    confirmed = _confirmed(group_strength, group_flags, anomaly, groups, families, presence, y, used)
    suspicion = _tiered_suspicion(list(group_strength.values()), list(group_flags.values()),
                                  [confirmed[g] for g in group_strength])
    return Combined(suspicion=suspicion, groups=groups, group_strength=group_strength, group_flags=group_flags,
                    label_weights=label_weights, strengths=used, label_presence=presence, anomaly_presence=anomaly)


def _n_classes(y: np.ndarray | None, n_classes: int | None) -> int:
    """The number of classes (at least 2): given, else from the codes in ``y``."""
    if n_classes:
        return max(int(n_classes), 2)
    return max(int(np.max(y)) + 1, 2) if y is not None and np.size(y) else 2


def _label_confirmed(group_strength: Mapping[str, np.ndarray], presence: list[ClassPresence],
                     y: np.ndarray | None) -> bool:
    """Is there a label group, and did its presence test judge some class poisoned (always without labels)?"""
    return LABEL_GROUP in group_strength and (y is None or not presence or any(c.poisoned for c in presence))


def _confirmed(
    group_strength: Mapping[str, np.ndarray], group_flags: Mapping[str, np.ndarray],
    anomaly: Mapping[str, AnomalyPresence], groups: Mapping[str, list[str]], families: Mapping[str, str],
    presence: list[ClassPresence], y: np.ndarray | None, strengths: Mapping[str, np.ndarray],
) -> dict[str, bool]:
    """Per group: has a presence test confirmed that the group's strength means something here?

    Label group: some class was judged poisoned (always without labels). Anomaly
    detector: its tail test found injected rows. Any other group (conflicting
    duplicates, after their twin presence test; backdoor detectors, whose flags follow
    their own presence tests): it flags some row. With labels, a conflicting-duplicates
    group is also confirmed when its twin test fired (a detector's own strength at
    ``AUTO_THRESHOLD``: ranked, not flagged) or the label group is confirmed (a
    conflict then counts with the label doubt, :func:`duplicate_strength`).
    """
    label_confirmed = _label_confirmed(group_strength, presence, y)
    out: dict[str, bool] = {}
    for g in group_strength:
        if g == LABEL_GROUP:
            # the whole label group, not per class: a flip moves a row *into* a class, and
            # the class the test judges poisoned is often the one it left
            out[g] = bool(label_confirmed)
        elif g in anomaly:
            out[g] = bool(anomaly[g].present)
        elif y is not None and all(families[m] == "duplicate" for m in groups[g]):
            fired = any(bool(np.any(strengths[m] >= AUTO_THRESHOLD)) for m in groups[g])
            out[g] = bool(group_flags[g].any() or label_confirmed or fired)
        else:
            out[g] = bool(group_flags[g].any())
    return out


def _tiered_suspicion(strength: Sequence[np.ndarray], flags: Sequence[np.ndarray],
                      confirmed: Sequence[bool]) -> np.ndarray:
    """Flagged rows in [0.5, 1] by the strongest group that flags them; the rest in [0, 0.5].

    ``strength``, ``flags`` and ``confirmed`` hold one entry per group. A group's flag
    rule (after its presence test) is the evidence that its strength means something on
    this table, so a flagged row ranks by that evidence, above every row that only an
    unconfirmed signal doubts. Below the flagged rows, a group whose presence test
    confirmed it counts at full strength and an unconfirmed one at ``UNCONFIRMED_WEIGHT``
    of it, so a confirmed signal that falls short of the flag rule is not buried under
    doubts that no test backs (label doubts in a class the features explain weakly).
    """
    # group by group with running maxima: (rows x groups) tables cost 8 MiB a group each at 1M rows
    n = np.asarray(strength[0]).shape[0]
    flagged = np.zeros(n, dtype=bool)
    by_flag = np.full(n, -np.inf)
    lower = np.full(n, -np.inf)
    for s, f, ok in zip(strength, flags, confirmed):
        s, f = np.asarray(s, dtype=np.float64), np.asarray(f, dtype=bool)
        flagged |= f
        np.maximum(by_flag, s, out=by_flag, where=f)  # the flagged rows only: no masked copy of s
        np.maximum(lower, s if ok else UNCONFIRMED_WEIGHT * s, out=lower)
    np.clip(lower, 0.0, 1.0, out=lower)
    np.clip(by_flag, 0.0, 1.0, out=by_flag)
    # in place, the values of np.where(flagged, 0.5 + 0.5 * by_flag, 0.5 * lower)
    lower *= 0.5
    by_flag *= 0.5
    by_flag += 0.5
    np.copyto(lower, by_flag, where=flagged)
    return lower


def flag_top(suspicion: np.ndarray, k: int) -> np.ndarray:
    """Flag the ``k`` most suspicious rows (stable order on ties: earlier row first)."""
    order = np.argsort(-suspicion, kind="stable")
    mask = np.zeros(suspicion.shape[0], dtype=bool)
    mask[order[: max(0, min(k, suspicion.shape[0]))]] = True
    return mask
