"""Presence part of ``backdoor_trigger``: is a group of enriched values a trigger?

The enriched tokens of one class whose carriers overlap form one suspected trigger
(:func:`group_tokens`). A logistic regression fitted on the whole table
(:class:`MaskingModel`) is asked what the class's rows look like with the group's
features masked (set to the median of the non-carriers; a level of a one-hot coded
column with all its dummies): a trigger's carriers then
look like their source class, a clean row carrying a class-typical value still looks
like its class. :func:`judge_group` compares the carriers' disagreement with the
class's other rows' (binomial test) and returns a :class:`TokenGroup` with the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from ._trigger_search import NEAR, Token

__all__ = ["TokenGroup", "TokenCluster", "MaskingModel", "MaskedDisagreement", "SourceLikeness", "SourceComparison",
           "Neighbourhood", "ColumnMedians", "OneHotColumn", "onehot_column",
           "ColumnNature", "fit_masking_model", "group_tokens", "masked_disagreement", "judge_group", "source_likeness",
           "core_purity", "softmax", "neighbourhood", "column_nature", "onehot_levels", "MAX_SOURCE_AUC",
           "MAX_NEIGHBOUR_P", "MAX_COLUMN_P"]

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
    source_auc: float = 0.5  # see source_likeness; 0.5 when not measured (the group failed before)
    source_auc_lower: float = 0.0
    source_auc_all: float = 0.5  # the two comparisons behind source_auc (see SourceLikeness)
    source_auc_matched: float = 0.5
    neighbour_share: float = 0.0  # see neighbourhood; 0 and p 0 when not measured
    neighbour_p: float = 0.0
    column_levels: int = 0  # see column_nature; 0 and p 0 when not measured
    column_alike: int = 0
    column_p: float = 0.0
    natural: str = ""  # the part that judged the group a natural value ("column", "neighbourhood", "source"), or ""
    #: what carried the masking evidence of a group judged present: "masked", "interaction" or "label-pure"
    route: str = ""


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


@dataclass(frozen=True)
class MaskedDisagreement:
    """How often a suspected trigger's carriers, and the class's other rows, look like another class once masked."""

    cluster: TokenCluster
    features: np.ndarray
    fills: np.ndarray
    n_carriers: int  # carriers in the class
    n_disagree: int  # of them, predicted as another class once masked
    n_rest: int  # the class's other rows
    null_rate: float  # their disagreement rate, +1/+2 smoothed
    disagreeing: np.ndarray  # row indices of the carriers that look like another class
    predicted: np.ndarray  # the class each of them looks like

    def min_p_value(self, min_count: int) -> float:
        """The smallest p-value the presence test could give (every carrier disagreeing); 1 when it cannot run."""
        if self.n_carriers < min_count or self.n_rest < _MIN_NULL_ROWS:
            return 1.0
        return float(self.null_rate ** self.n_carriers)


def masked_disagreement(
    X: np.ndarray, y: np.ndarray, logits: np.ndarray, carries: np.ndarray, cluster: TokenCluster,
    tokens: list[Token], model: MaskingModel, *, medians: ColumnMedians | None = None,
) -> MaskedDisagreement:
    """Mask a suspected trigger's features and count who looks like another class (see the module docstring)."""
    c, members = cluster.label, list(cluster.members)
    # A level of a categorical column is masked with its whole column: a stamped level replaced
    # the row's own level, so what its carriers lost is the column, not one dummy. The rows they
    # are compared with (the class's other rows, the other classes' rows in the label-pure
    # route) must lose it too: with only the stamped dummy masked, those rows kept their own
    # level, the main evidence of their class where the column predicts the label, and the
    # carriers looked unlike the other classes' rows (a new occupation on 16 men relabelled
    # women: 5 of them look male once masked, 71% of men with their occupation and 53%
    # without it: the first rejects the stamp, the second does not).
    own = {f for t in members for f in tokens[t].features}
    feats = np.array(sorted(own | _level_columns(X, [tokens[t] for t in members])), dtype=np.int64)
    carrier = carries[:, members].any(axis=1)
    fills = _fill_values(X, carrier, feats) if medians is None else medians.without(carrier, feats)
    rows_c = np.flatnonzero(y == c)
    # the argmax of the logits is the prediction: no softmax needed
    pred = model.masked_logits(X[np.ix_(rows_c, feats)], logits[rows_c], feats, fills).argmax(axis=1)
    dis = pred != c
    car = carrier[rows_c]
    k0, n0 = int(dis[~car].sum()), int((~car).sum())
    return MaskedDisagreement(cluster=cluster, features=feats, fills=np.asarray(fills), n_carriers=int(car.sum()),
                              n_disagree=int(dis[car].sum()), n_rest=n0, null_rate=(k0 + 1.0) / (n0 + 2.0),
                              disagreeing=rows_c[car & dis], predicted=pred[car & dis])


def judge_group(
    X: np.ndarray, y: np.ndarray, logits: np.ndarray, carries: np.ndarray, cluster: TokenCluster,
    tokens: list[Token], model: MaskingModel, *, level: float, min_count: int, min_effect: float,
    medians: ColumnMedians | None = None, masked: MaskedDisagreement | None = None, random_state: int = 0,
) -> TokenGroup:
    """The presence test of one suspected trigger (see the module docstring).

    ``masked``: the group's :func:`masked_disagreement` when the caller has it (it needs
    every group's to choose the level).
    """
    if masked is None:
        masked = masked_disagreement(X, y, logits, carries, cluster, tokens, model, medians=medians)
    c, members = cluster.label, list(cluster.members)
    feats, fills = masked.features, masked.fills
    # the group's own features (``feats`` adds the other dummies of a level's column, masked with it)
    n_own = len({f for t in members for f in tokens[t].features})
    carrier = carries[:, members].any(axis=1)
    k1, n1, n0, null = masked.n_disagree, masked.n_carriers, masked.n_rest, masked.null_rate
    pv = float(binom.sf(k1 - 1, n1, null)) if k1 > 0 else 1.0
    # a trigger flips most of its carriers; a class-typical value flips a few more than usual at most
    effect = k1 / max(n1, 1) - null
    conc = max(tokens[t].n_in_class / tokens[t].n_carriers for t in members)
    strong = effect >= min_effect
    testable = pv < level and k1 >= min_count and n0 >= _MIN_NULL_ROWS
    weak_ok = conc >= _CONCENTRATED and effect >= min_effect / 2
    masked_ok = testable and (strong or weak_ok)
    # A value that no row of another class carries, in one column: the label enrichment is
    # already significant (prior ** carriers), so what is left to tell is a stamp from a
    # natural determinant of the class. Where the masked model tells the classes apart
    # weakly (a small table, overlapping classes), the test above cannot reach its level or
    # its effect even for a stamp (10 carriers of a 200-row table, class null rate 0.5:
    # 7 of 10 flipping gives p = 0.17). Such a value is judged on both hypotheses instead:
    # its carriers must flip more often than the class's other rows (not a class trait),
    # and not significantly less often (one-sided binomial at the presence level) than rows
    # of the other classes do once masked: a stamp's carriers are rows of those classes; a
    # natural code whose carriers still look like their class (1 of 52 flipping where the
    # other classes flip at 100%) is rejected. Purity, isolation and source likeness below
    # still apply.
    # A conjunction of the interaction search on a class the masked model mostly misses:
    # the carriers of a stamp flip at the rate of its source rows, which may be only a few
    # points above the class's own rate (a class with 28% of the rows, 76% of whose rows
    # look like the other class once masked: no stamp reaches the effect above). Such a
    # conjunction is judged on both hypotheses, as a label-pure value is below: its carriers
    # flip significantly more often than the class's other rows (the test above at its
    # level) and not significantly less often than the other classes' rows do once masked.
    # Purity and source likeness still apply.
    inter = any(tokens[t].kind == "interaction" for t in members)
    inter_ok = (not masked_ok and inter and testable and conc >= _CONCENTRATED and effect > 0
                and float(binom.cdf(k1, n1, _source_flip_rate(X, y, logits, carrier, c, feats, fills, model)))
                >= level)
    masked_ok = masked_ok or inter_ok
    # A conjunction of the interaction search is not admitted by this route even when no row
    # of another class carries it: rows repeated per entity (the courses of one lecturer on a
    # teaching-ratings table, 13 rows sharing four exact values, one gender; the prices of
    # one fishing trip) are label-pure conjunctions too, and on a small table nothing here
    # tells them from a stamp (measured: 3 pairs of the clean sweep, 113 rows, took that route).
    pure = (not masked_ok and effect > 0 and _label_pure_value(tokens, members, n1, n0, min_count)
            and float(binom.cdf(k1, n1, _source_flip_rate(X, y, logits, carrier, c, feats, fills, model))) >= level)
    # the purity is needed only by a group that can still be judged present (most groups
    # of a wide table are natural values that fail above; hundreds of them per table)
    purity = core_purity(X, y, c, [tokens[t] for t in members], carrier) if masked_ok or pure else 0.0
    # Either way the rows carrying all of the group's values must be foreign to the class
    # (purity): the empty centre of a 28x28 "0" is carried mostly by 0s too, and masking it
    # turns 0s into 8s; a natural strong predictor (a cost column of a travel-mode table:
    # 75 rows at one value, all "not chosen") flips every carrier once masked, yet the
    # class's other rows crowd around that value. A value carried (almost) only by this
    # class needs half the masking evidence.
    present = bool((masked_ok or pure) and purity >= _MIN_PURITY)
    # Last, source likeness (as backdoor_spectral's): stamped rows are rows of their source
    # classes, so once the trigger is masked a classifier cannot tell the carriers that look
    # like another class from real rows of it. A value that a natural sub-population of the
    # class owns passes every part above when the classes are coded by it (mutually exclusive
    # health dummies of an insurance table, the label one of them: 1,560 carriers of "fair
    # health" are all "not good health" and 40% of them look "good" without it), yet they
    # still differ from the "good" rows in their other features.
    # Only for a one-feature group: a trigger over many features (a blend alters every pixel)
    # changes its carriers outside the masked values too, so the masked carriers are told from
    # their sources whatever they are (digits blend, 16 features: 0.955); the natural cases are
    # one coded value (each natural group measured had a single feature).
    # Before it, isolation (one-feature groups too): a stamped value is foreign to its column,
    # so the class is over-represented at the value itself, not around it; a graded natural
    # determinant (a count of derogatory credit reports: 83% of the rows at 3 reports are
    # refused, 79% of those at 2 or 4) enriches its neighbourhood as much as the value.
    source = SourceLikeness(auc=0.5, lower=0.0, n_carriers=0, n_source=0)
    hood = Neighbourhood(share=0.0, p_value=0.0, n_rows=0)
    column = _NO_COLUMN
    natural = ""
    # First, the column's nature (groups of any size: a brand level joined with the engine
    # size its cars share, or a van class joined with the one brand that makes them): a
    # group whose label association is one level of a one-hot coded column, a level no more
    # concentrated in its class than the column's other levels are in theirs, is that
    # column's nature, not a stamp (see column_nature).
    if present:
        column = column_nature(X, y, c, [tokens[t] for t in members], carrier, min_count=min_count)
        if column.p_value >= MAX_COLUMN_P and column.n_alike >= _MIN_NATURAL_LEVELS:
            present, natural = False, "column"
    # A group admitted by the interaction route, or made of conjunctions of the interaction
    # search only, gets source likeness whatever its size: its values are a few exact ones
    # (not a blend that alters every feature), and a natural interaction is a sub-population
    # of the class that differs in its other features (on a travel-mode table with a stamp
    # of three columns, 43 car trips at zero terminal time and one party size, all "car":
    # the stamp took most rows of that party size to another class, so the pair's class
    # share looked far beyond what its values predict, and masking both flipped 28 of 43).
    # A group that another search proposed too keeps the rule above (a two-column stamp
    # that also shifts two other columns is told from its sources, and is a trigger).
    only_inter = all(tokens[t].kind == "interaction" for t in members)
    if present and (n_own <= _SOURCE_MAX_FEATURES or inter_ok or only_inter):
        hood = neighbourhood(X, y, c, [tokens[t] for t in members])
        if hood.p_value >= MAX_NEIGHBOUR_P:
            present, natural = False, "neighbourhood"
        else:
            source = source_likeness(X, y, masked, carrier, random_state=random_state, model=model, logits=logits)
            present = source.lower <= MAX_SOURCE_AUC
            natural = "" if present else "source"
    excess = max(tokens[t].excess for t in members)
    return TokenGroup(
        label=int(c), tokens=tuple(members), features=tuple(int(f) for f in feats),
        fills=tuple(float(f) for f in fills), excess=float(excess), n_carriers=n1, n_disagree=k1,
        null_rate=float(null), p_value=pv, present=present, purity=purity, source_auc=source.auc,
        source_auc_lower=source.lower, source_auc_all=source.all_sources.auc,
        source_auc_matched=source.matched.auc, neighbour_share=hood.share, neighbour_p=hood.p_value,
        column_levels=column.n_levels, column_alike=column.n_alike, column_p=column.p_value,
        natural=natural,
        route=("interaction" if inter_ok else "masked" if masked_ok else "label-pure") if present else "",
    )


def _label_pure_value(tokens: list[Token], members: list[int], n_carriers: int, n_rest: int, min_count: int) -> bool:
    """One exact value in one column, every row carrying it labelled with the group's class."""
    if len(members) != 1:
        return False
    t = tokens[members[0]]
    return len(t.features) == 1 and t.n_in_class == t.n_carriers and n_carriers >= min_count and n_rest >= _MIN_NULL_ROWS


def _source_flip_rate(X: np.ndarray, y: np.ndarray, logits: np.ndarray, carrier: np.ndarray, c: int,
                      feats: np.ndarray, fills: np.ndarray, model: MaskingModel) -> float:
    """Share of the other classes' rows (not carrying the group) that the masked model does not assign to ``c``.

    What a stamp's carriers, rows of those classes, would show once masked; +1/+2 smoothed.
    At most ``_FILL_ROWS`` rows, evenly spaced.
    """
    rows = np.flatnonzero((y != c) & ~carrier)
    if rows.size > _FILL_ROWS:
        rows = rows[np.linspace(0, rows.size - 1, _FILL_ROWS).astype(np.int64)]
    pred = model.masked_logits(X[np.ix_(rows, feats)], logits[rows], feats, fills).argmax(axis=1)
    return (float((pred != c).sum()) + 1.0) / (rows.size + 2.0)


#: a group explained by one level of a one-hot coded column is that column's nature when the
#: level is not more concentrated in its class than its sibling levels at this one-sided level
#: (as :data:`MAX_NEIGHBOUR_P` for the rows nearest to a value; see :func:`column_nature`)
MAX_COLUMN_P = 0.05
#: ... and at least this many siblings alone make it plausible: one other concentrated level
#: could be a second stamp; a column that determines the label shows it in several levels
_MIN_NATURAL_LEVELS = 2
#: columns searched on each side of a level for the rest of its one-hot column (the scan's
#: encoder one-hot codes at most 20 levels, plus a missing-value indicator)
_ONEHOT_WINDOW = 64


@dataclass(frozen=True)
class ColumnNature:
    """Whether a group's level is more concentrated in its class than the other levels of its column.

    ``feature``: the level (column of ``X``) that explains the group, -1 when none does;
    ``n_levels``: its sibling levels with at least ``min_count`` rows; ``n_alike``: those
    alone under whose class share the level's count is not significant (one-sided binomial
    p-value at least :data:`MAX_COLUMN_P`); ``p_value``: that p-value averaged over the
    siblings (the level's count if its share were drawn from its column's levels), 0 when
    not measured.
    """

    feature: int
    n_levels: int
    n_alike: int
    p_value: float


_NO_COLUMN = ColumnNature(feature=-1, n_levels=0, n_alike=0, p_value=0.0)


def _binary_on(X: np.ndarray, j: int) -> np.ndarray | None:
    """Rows at the larger of a column's two values (a dummy's "on" rows), or None if it has not exactly two."""
    col = X[:, j]
    lo, hi = col.min(), col.max()
    if not lo < hi:  # constant, or NaN
        return None
    on = col == hi
    if not (on | (col == lo)).all():
        return None
    return on


@dataclass(frozen=True)
class OneHotColumn:
    """The dummies of one categorical column: their columns of ``X`` and each level's rows.

    ``levels[0]`` is the level asked about; with ``reference`` the last level is the rows in
    none of the dummies (a level the coding left out).
    """

    columns: tuple[int, ...]
    levels: list[np.ndarray]
    reference: bool


def onehot_column(X: np.ndarray, f: int) -> OneHotColumn | None:
    """The one-hot coded column that column ``f`` of ``X`` is a dummy of; None when it is not one.

    Inferred from ``X`` alone: the dummies of one categorical column are binary, mutually
    exclusive, and together cover every row (the scan's encoder codes a missing value as a
    dummy of its own), or every row but those of a reference level that was left out.
    Encoders place a column's dummies side by side, so the dummies are the contiguous run of
    binary columns around ``f`` that partitions the rows; without one, the widest run of
    mutually exclusive binary columns grown from ``f`` (at least two), the rows in none of
    them being the reference level.
    """
    d = X.shape[1]
    on_f = _binary_on(X, f)
    if on_f is None:
        return None
    n = X.shape[0]
    lo, hi = f, f  # the run of binary columns around f, at most _ONEHOT_WINDOW each side
    ons: dict[int, np.ndarray] = {f: on_f}
    while lo - 1 >= max(0, f - _ONEHOT_WINDOW) and (o := _binary_on(X, lo - 1)) is not None:
        lo -= 1
        ons[lo] = o
    while hi + 1 <= min(d - 1, f + _ONEHOT_WINDOW) and (o := _binary_on(X, hi + 1)) is not None:
        hi += 1
        ons[hi] = o
    cnt = {j: int(o.sum()) for j, o in ons.items()}
    # a partition: a contiguous sub-run around f whose dummies' rows add up to every row exactly once
    for a in range(f, lo - 1, -1):
        total = sum(cnt[j] for j in range(a, f + 1))
        for b in range(f, hi + 1):
            if b > f:
                total += cnt[b]
            if total > n:
                break
            if total == n and b > a:
                cover = np.zeros(n, dtype=np.int64)
                for j in range(a, b + 1):
                    cover += ons[j]
                if (cover == 1).all():
                    cols = (f, *(j for j in range(a, b + 1) if j != f))
                    return OneHotColumn(columns=cols, levels=[ons[j] for j in cols], reference=False)
    # no partition: mutually exclusive dummies grown from f, the rows in none being the reference level
    taken = on_f.copy()
    cols_run = [f]
    for step in (-1, 1):
        j = f + step
        while lo <= j <= hi and not (ons[j] & taken).any():
            cols_run.append(j)
            taken |= ons[j]
            j += step
    if len(cols_run) < 2 or taken.all():
        return None
    return OneHotColumn(columns=tuple(cols_run), levels=[ons[j] for j in cols_run] + [~taken], reference=True)


def onehot_levels(X: np.ndarray, f: int) -> list[np.ndarray] | None:
    """Each level's rows of the one-hot coded column of dummy ``f`` (``f``'s first; see :func:`onehot_column`)."""
    col = onehot_column(X, f)
    return None if col is None else col.levels


def _level_columns(X: np.ndarray, tokens: list[Token]) -> set[int]:
    """Every dummy of the fully coded one-hot columns that the tokens set a level of (at a dummy's "on" value).

    Fully coded only: with a reference level left out, all dummies off *is* that level, so
    masking the column would assert a level instead of removing it. And only a level that no
    row of another class carries (a stamped level is written on rows relabelled to the
    class; a new level has no other carriers): a level the other classes share is a level
    of the table, and masking its whole column compares the class's rows with rows that
    lost their own level too. On rpart's solder experiment (a designed table, mask ``A6``
    on 60 "M" and 30 "S" rows, none "L") that took 43 of the 60 for a stamp and flagged
    all 60 (20% of the class).
    """
    out: set[int] = set()
    for t in tokens:
        if t.n_in_class < t.n_carriers:
            continue
        for f, v in zip(t.features, t.values):
            if f not in out and v == X[:, f].max() and (col := onehot_column(X, f)) is not None and not col.reference:
                out |= set(col.columns)
    return out


def column_nature(
    X: np.ndarray, y: np.ndarray, c: int, members: list[Token], carrier: np.ndarray, *, min_count: int,
) -> ColumnNature:
    """Is a group's label association the nature of a one-hot coded column it is a level of?

    A written trigger is one value an attacker adds to rows of other classes: a new or rare
    level of a column, as foreign to the column as a stamped number is to a numeric one. A
    level that is pure in a class because the column determines the label (a car brand
    that makes only four-wheel drives, in a column where most brands make one kind of
    drive) is what the column's levels are. So, as :func:`neighbourhood` asks whether a
    value is more enriched than the values nearest to it, this asks whether a level is
    more concentrated than its sibling levels. A group is explained by a level ``L`` (a
    dummy of a one-hot coded column at its "on" value, see :func:`onehot_levels`) when
    ``L``'s rows carry most (``_SHARED``) of the group's carriers in the class and are either
    at least as concentrated in the class as any of the group's values or mostly the
    group's carriers (10 of the 11 vans of one brand, once a stamp took the eleventh: the
    group is the level). Each sibling
    with at least ``min_count`` rows has a class share ``s`` (its largest class, any class:
    the column's nature; +1/+2 smoothed), and ``L``'s ``k`` of ``n`` rows in the class get the
    p-value ``P(Bin(n, s) >= k)``. Averaged over the siblings (``L``'s share drawn from its
    column's levels), a p-value of at least :data:`MAX_COLUMN_P`, with at least two siblings
    reaching it alone, makes the group the column's nature. A new level stamped into a
    column that mixes the classes stays far beyond its siblings; one stamped into a column
    whose levels are mostly pure is indistinguishable from them by its labels and is not
    claimed.
    """
    in_c = y == c
    group_c = carrier & in_c
    n_group = int(group_c.sum())
    if n_group == 0:
        return _NO_COLUMN
    share_needed = max(t.n_in_class / t.n_carriers for t in members)
    K = int(y.max()) + 1
    best = _NO_COLUMN
    seen: set[int] = set()
    for t in members:
        for f, v in zip(t.features, t.values):
            if f in seen:
                continue
            seen.add(f)
            if v != X[:, f].max():
                continue  # a dummy's "off" value is carried by every other level
            on = X[:, f] == v
            n_on, k_on = int(on.sum()), int((on & in_c).sum())
            in_level = int((group_c & on).sum())
            if in_level < _SHARED * n_group:
                continue  # the group reaches beyond the level
            if k_on < share_needed * n_on - 1e-9 and in_level < _SHARED * n_on:
                continue  # a purer slice of a mixed level (values stamped on some of its rows)
            pv: list[float] = []
            levels = onehot_levels(X, f)
            if levels is None:
                continue
            for lv in levels[1:]:
                n_s = int(lv.sum())
                if n_s >= min_count:
                    share = (float(np.bincount(y[lv], minlength=K).max()) + 1.0) / (n_s + 2.0)
                    pv.append(float(binom.sf(k_on - 1, n_on, share)))
            if not pv:
                continue
            nat = ColumnNature(feature=int(f), n_levels=len(pv), n_alike=int(sum(p >= MAX_COLUMN_P for p in pv)),
                               p_value=float(np.mean(pv)))
            if nat.p_value > best.p_value:
                best = nat
    return best


#: the masked carriers must not be told from real rows of their source classes with an
#: out-of-fold AUROC whose one-sided 95% lower bound exceeds this (backdoor_spectral's default
#: ``max_source_auc``). The bound, not the estimate: five carriers of a two-column trigger on
#: a 178-row table gave 0.74 +- 0.14, natural sub-populations 0.83-0.93 on hundreds of rows
MAX_SOURCE_AUC = 0.75
#: groups of up to this many features get the source-likeness part (see judge_group)
_SOURCE_MAX_FEATURES = 1
#: carriers (sampled beyond it) and source rows per carrier in the source-likeness fit
_SOURCE_POSITIVES = 500
_SOURCE_PER_CARRIER = 4
#: a value the disagreeing carriers share (>= this share of them, within TOL) is masked too:
#: a second trigger column the search did not join (its value also carried naturally)
_SHARED = 0.9


@dataclass(frozen=True)
class SourceComparison:
    """Out-of-fold AUROC of the masked carriers against one sample of source rows."""

    auc: float
    lower: float  # one-sided 95% lower bound (Hanley-McNeil standard error); 0 when not measured
    n_source: int


_UNMEASURED = SourceComparison(auc=0.5, lower=0.0, n_source=0)


@dataclass(frozen=True)
class SourceLikeness:
    """How far the masked, disagreeing carriers are from real rows of the classes they look like.

    Two comparisons: against rows of those classes drawn at random (``all_sources``), and
    against rows of those classes that the masked model *also* assigns to them
    (``matched``). The carriers were selected by that prediction, so stamped rows are
    distributed like the matched rows whatever the classes' overlap; the matched
    comparison has no selection effect to absorb. ``auc``/``lower`` are those of the
    comparison with the larger lower bound: a group is source-like only when neither
    tells it from its sources.
    """

    auc: float
    lower: float
    n_carriers: int
    n_source: int
    all_sources: SourceComparison = _UNMEASURED
    matched: SourceComparison = _UNMEASURED


def source_likeness(
    X: np.ndarray, y: np.ndarray, masked: MaskedDisagreement, carrier: np.ndarray, *, random_state: int,
    model: MaskingModel | None = None, logits: np.ndarray | None = None,
) -> SourceLikeness:
    """Can a classifier tell the masked, disagreeing carriers from rows of their source classes?

    The group's features, and any other value that >= 90% of those carriers share and at
    most half of the other rows carry, are set to the non-carriers' median; a balanced
    logistic regression then scores carriers against up to four rows per carrier of the
    classes the masked model assigns them (3-fold, out of fold), once with source rows
    drawn at random and, given ``model`` and its ``logits``, once with source rows that
    the masked model assigns to their own class, as it assigned the carriers to it (see
    :class:`SourceLikeness`). Too few rows for the folds gives AUROC 0.5 with lower bound 0
    (no evidence against a trigger).
    """
    from ._spectral_presence import shared_pattern, source_rows

    rng = np.random.default_rng(random_state)
    pos, src = masked.disagreeing, masked.predicted
    if pos.size > _SOURCE_POSITIVES:
        keep = np.sort(rng.choice(pos.size, _SOURCE_POSITIVES, replace=False))
        pos, src = pos[keep], src[keep]
    feats = masked.features
    extra = np.setdiff1d(shared_pattern(X, pos, ~carrier, min_share=_SHARED).features, feats) if pos.size else feats[:0]
    mf = np.r_[feats, extra].astype(np.int64)
    rest = np.flatnonzero(~carrier)
    fills = np.r_[masked.fills, np.median(X[np.ix_(rest, extra)], axis=0)] if extra.size else masked.fills
    neg = source_rows(y, src, ~carrier, rng, per_row=_SOURCE_PER_CARRIER)
    every = _compare(X, pos, neg, mf, fills, random_state)
    matched = _UNMEASURED
    if model is not None and logits is not None and pos.size:
        # the source rows the masked model assigns to their own class: the same selection as the carriers'
        pool = np.flatnonzero(np.isin(y, np.unique(src)) & ~carrier)
        pred = model.masked_logits(X[np.ix_(pool, feats)], logits[pool], feats, masked.fills).argmax(axis=1)
        agree = np.zeros(y.size, dtype=bool)
        agree[pool[pred == y[pool]]] = True
        matched = _compare(X, pos, source_rows(y, src, agree, rng, per_row=_SOURCE_PER_CARRIER), mf, fills,
                           random_state)
    top = max((every, matched), key=lambda cmp: cmp.lower)
    return SourceLikeness(auc=top.auc, lower=top.lower, n_carriers=int(pos.size), n_source=top.n_source,
                          all_sources=every, matched=matched)


def _compare(X: np.ndarray, pos: np.ndarray, neg: np.ndarray, mf: np.ndarray, fills: np.ndarray,
             random_state: int) -> SourceComparison:
    """Out-of-fold AUROC of ``pos`` against ``neg`` with columns ``mf`` set to ``fills``, and its lower bound."""
    from sklearn.metrics import roc_auc_score

    from ._spectral_presence import oof_decision

    folds = min(3, pos.size, neg.size)
    if folds < 2:
        return SourceComparison(auc=0.5, lower=0.0, n_source=int(neg.size))
    idx = np.r_[pos, neg]
    Z = np.array(X[idx], dtype=np.float64)  # only these rows are copied
    Z[:, mf] = fills
    yt = np.r_[np.ones(pos.size, dtype=int), np.zeros(neg.size, dtype=int)]
    oof = oof_decision(Z, yt, folds, random_state)
    auc = float(roc_auc_score(yt, oof))
    n1, n0 = int(pos.size), int(neg.size)
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    se = np.sqrt(max(auc * (1 - auc) + (n1 - 1) * (q1 - auc * auc) + (n0 - 1) * (q2 - auc * auc), 0.0) / (n1 * n0))
    return SourceComparison(auc=auc, lower=float(auc - 1.6449 * se), n_source=n0)


#: a one-feature group whose value is not more enriched in its class than the rows nearest to it
#: at this one-sided level is a graded natural determinant (see :func:`neighbourhood`)
MAX_NEIGHBOUR_P = 0.05
#: the value's neighbourhood has at least this many rows (and as many as the value's carriers)
_MIN_NEIGHBOURS = 10


@dataclass(frozen=True)
class Neighbourhood:
    """The class's share among the rows nearest to a value (not carrying it), and the carriers' excess over it."""

    share: float  # +1/+2 smoothed
    p_value: float  # one-sided binomial: the carriers in the class, at that share
    n_rows: int


def neighbourhood(X: np.ndarray, y: np.ndarray, c: int, members: list[Token]) -> Neighbourhood:
    """Is a single value more enriched in class ``c`` than the rows nearest to it in its column?

    The neighbourhood is the ``max(carriers, 10)`` rows closest to the value in its column
    that do not carry it (every row tied at the last distance included: the adjacent values
    of a count column). A stamped value, in or outside the column's range, is enriched at
    itself only; a natural determinant that grows along the column is enriched around it
    too. Groups of several values are not judged (p-value 0).
    """
    values = {(t.features[0], t.values[0]) for t in members if len(t.features) == 1}
    if len(values) != 1 or any(len(t.features) != 1 for t in members):
        return Neighbourhood(share=0.0, p_value=0.0, n_rows=0)
    ((f, v),) = values
    col = X[:, f]
    car = col == v
    other = np.flatnonzero(~car)
    n_all, k1 = int(car.sum()), int((car & (y == c)).sum())
    if other.size == 0 or k1 == 0:
        return Neighbourhood(share=0.0, p_value=0.0, n_rows=0)
    dist = np.abs(col[other] - v)
    k = min(max(n_all, _MIN_NEIGHBOURS), other.size)
    near = other[dist <= np.partition(dist, k - 1)[k - 1]]
    share = (float((y[near] == c).sum()) + 1.0) / (near.size + 2.0)
    return Neighbourhood(share=share, p_value=float(binom.sf(k1 - 1, n_all, share)), n_rows=int(near.size))


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
