"""The token search shared by the trigger detectors: exact values enriched in one class.

``backdoor_trigger`` and ``backdoor_clean_label`` both start from the same search
(:func:`find_enriched_tokens`), memoised so that one scan runs it once. The search
is vectorised over values and classes so that a wide table (784 pixel columns, about
136,000 candidate values on 5,000 rows) costs seconds: one binomial call over all
candidate x class cells, one tie probability per distinct carrier count of a column,
and a prefix-filtered similarity join (:func:`_overlap_edges`) instead of a dense
candidate x candidate Jaccard matrix, which needs 6.6 GiB per class at that width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from ._base import fingerprint_array
from ._memo import BoundedMemo

__all__ = ["Token", "TokenSearch", "find_enriched_tokens", "typical_rate", "min_share", "tarone_level", "NEAR"]

#: Jaccard overlap (within one class) above which single values are joined into a conjunction
_CONJUNCTION_OVERLAP = 0.8
#: largest share of a class's non-carriers near a conjunction for it to stay a candidate
_CONJUNCTION_MAX_TYPICAL = 0.2
#: distance (standard deviations of the encoded features) that counts as near a value
NEAR = 0.5
#: candidates of one class up to which the Jaccard graph is built densely (16 MiB at float32)
_DENSE_MAX = 2048
#: 64-bit words of packed rows verified per block in the sparse join (128 MiB per temporary)
_WORD_BLOCK = 1 << 24


@dataclass(frozen=True)
class Token:
    """An exact feature value, or a conjunction of them, enriched in one class.

    ``features`` and ``values`` have one entry for a single value and several for a
    conjunction (a row carries it when it has every value at once).
    """

    features: tuple[int, ...]
    values: tuple[float, ...]
    label: int
    n_carriers: int
    n_in_class: int
    p_value: float
    excess: float
    #: which search proposed it: "" (a value's enrichment, co-stamping or carriers that
    #: overlap in one class) or "interaction" (values whose conjunction is concentrated in
    #: the class beyond what each predicts: :func:`_interaction_conjunctions`)
    kind: str = ""

    def carried_by(self, X: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows of ``X`` that carry the token."""
        return np.all(X[:, list(self.features)] == np.asarray(self.values), axis=1)


@dataclass(frozen=True)
class TokenSearch:
    """What the search found: the enriched tokens and who carries them.

    Attributes
    ----------
    tokens : list of Token
        Single values first (by candidate, then class), then conjunctions.
    carries : ndarray of bool, shape (n_rows, n_tokens)
        ``carries[i, t]``: row ``i`` carries token ``t``. Read-only (shared via the memo).
    """

    tokens: list[Token]
    carries: np.ndarray
    #: conjunctions found by the interaction search (kept apart: ``backdoor_clean_label``
    #: reads ``tokens`` only), and their carriers, shape (n_rows, len(interactions))
    interactions: tuple[Token, ...] = ()
    interaction_carries: np.ndarray | None = None


@dataclass(frozen=True)
class _Conjunctions:
    """Conjunction tokens and, for each, the mask of the rows that carry it."""

    tokens: list[Token]
    carriers: list[np.ndarray]


@dataclass(frozen=True)
class _Candidates:
    """Every exact value carried by enough rows, one entry per (feature, value).

    ``rows[ptr[i]:ptr[i + 1]]`` are the carriers of candidate ``i`` in row order, so the
    conjunction search never compares values of a wide table again.
    """

    feature: np.ndarray  # (m,) column index
    value: np.ndarray  # (m,) the exact value
    by_class: np.ndarray  # (m, K) carriers per class
    total: np.ndarray  # (m,) carriers
    rows: np.ndarray  # carriers of every candidate, concatenated
    ptr: np.ndarray  # (m + 1,) offsets into ``rows``
    n_tests: int  # candidate x class tests of the enrichment route
    shared_rows: list[list[int]]  # candidates with identical small carrier sets in >= 2 features
    value_counts: dict[int, np.ndarray]  # feature -> multiplicities >= min_count of its values (tie probabilities)


def _tie_probability(counts: np.ndarray, n: int, c: int) -> float:
    """Chance that ``c`` rows drawn at random all share one value of a feature.

    ``counts`` are the feature's value multiplicities: ``sum_v C(n_v, c) / C(n, c)``,
    computed in log space.
    """
    from scipy.special import gammaln

    big = counts[counts >= c].astype(np.float64)
    if big.size == 0:
        return 0.0
    log_num = gammaln(big + 1) - gammaln(c + 1) - gammaln(big - c + 1)
    log_den = gammaln(n + 1) - gammaln(c + 1) - gammaln(n - c + 1)
    return float(min(1.0, np.exp(log_num - log_den).sum()))


def min_share(prior: np.ndarray | float) -> np.ndarray:
    """Share of a value's carriers that must be in a class of this prior for it to count as enriched.

    Twice the prior (lift 2) for a minority class, but at most half-way from the prior to
    all carriers: lift 2 is out of reach for a class with more than half the rows, and a
    trigger relabelling rows *to the majority class* (credit approval tables: 77% "good")
    was then never proposed at all.
    """
    p = np.asarray(prior, dtype=np.float64)
    return np.minimum(2.0 * p, p + 0.5 * (1.0 - p))


#: the last token searches, by (matrix, labels, settings): backdoor_trigger and
#: backdoor_clean_label run the same search in one scan
_memo: BoundedMemo[TokenSearch] = BoundedMemo(2)


def find_enriched_tokens(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    min_count: int,
    max_fraction: float,
    alpha: float,
    fingerprint: str | None = None,
    interactions: bool = False,
) -> TokenSearch:
    """Exact feature values over-represented in one class (memoised; see :func:`_search_tokens`).

    ``fingerprint``: ``fingerprint_array(X)`` when the caller has it already (hashing a
    10^6-row matrix again costs a second). The returned ``carries`` matrix is read-only:
    it may be shared with another caller. ``interactions``: also run the interaction
    search (:func:`_interaction_conjunctions`); without it ``interactions`` is empty and
    the search costs nothing (0.26 s on 5,000 x 784).
    """
    fp = fingerprint if fingerprint is not None else fingerprint_array(X)
    key = (fp, fingerprint_array(np.asarray(y)), n_classes, min_count, max_fraction, alpha, bool(interactions))
    hit = _memo.get(key)
    if hit is not None:
        return TokenSearch(tokens=list(hit.tokens), carries=hit.carries, interactions=hit.interactions,
                           interaction_carries=hit.interaction_carries)
    found = _search_tokens(X, y, n_classes, min_count=min_count, max_fraction=max_fraction, alpha=alpha,
                           interactions=interactions)
    found.carries.flags.writeable = False
    if found.interaction_carries is not None:
        found.interaction_carries.flags.writeable = False
    _memo.put(key, found)
    return TokenSearch(tokens=list(found.tokens), carries=found.carries, interactions=found.interactions,
                       interaction_carries=found.interaction_carries)


def _ordered_keys(block: np.ndarray) -> np.ndarray:
    """Per column of ``block`` (rows x columns), unsigned keys in the order of its values.

    Equal values get equal keys (NaNs one key, ``-0.0`` the key of ``0.0``). float32
    columns map their bits to an order-preserving uint32 without sorting; other dtypes
    use each column's dense value rank (a sort per column). Returned as (columns x rows) uint32.
    """
    if block.dtype == np.float32:
        v = np.ascontiguousarray(block.T) + np.float32(0.0)  # -0.0 + 0.0 is +0.0: one key for zero
        v[np.isnan(v)] = np.nan  # one NaN bit pattern
        bits = v.view(np.uint32)
        neg = bits >= np.uint32(0x80000000)
        # negative floats: all bits flipped; positive: the sign bit set (IEEE order as unsigned)
        return np.where(neg, ~bits, bits | np.uint32(0x80000000))
    out = np.empty((block.shape[1], block.shape[0]), dtype=np.uint32)
    for j in range(block.shape[1]):
        out[j] = np.unique(block[:, j], return_inverse=True)[1].ravel()  # NaNs: one value, as in np.unique
    return out


#: entries (rows x columns) of one block of the candidate search: bounds its temporaries (2 MiB of packed keys; a tall table goes a column at a time)
_BLOCK_ENTRIES = 1 << 18


def _collect_candidates(X: np.ndarray, y: np.ndarray, n_classes: int, *, min_count: int, max_count: int) -> _Candidates:
    """Per column, the values carried by ``min_count..max_count`` rows, with their class counts and carriers.

    Vectorised over blocks of columns: a sort of the values finds each column's
    multiplicities; only the columns with candidate values then sort ``(value key, row)``
    pairs packed in one 64-bit integer, which groups each value's carriers in row order
    (784 columns: one sort instead of a search and a grouping per column, most of this
    search's time). Candidates come out by column, then by value; each candidate's rows
    in row order.
    """
    n, d = X.shape
    feats, vals, ccs, tots, rows = [], [], [], [], []
    value_counts: dict[int, np.ndarray] = {}
    small = max(min_count, int(0.05 * n))  # small carrier sets: co-stamping candidates
    width = max(1, _BLOCK_ENTRIES // max(n, 1))
    row_ids = np.arange(n, dtype=np.uint64)
    # carriers of every candidate: ~10^7 entries on a 10^6-row table with low-cardinality columns
    row_dtype = np.int32 if n < 2**31 else np.int64
    for j0 in range(0, d, width):
        block = X[:, j0:j0 + width]
        srt = np.sort(np.ascontiguousarray(block.T), axis=1)  # (columns, rows); NaNs last
        nan = np.isnan(srt)
        # only columns with a value repeated min_count times (a continuous column has none) go on
        r = min(max(min_count - 1, 0), n - 1)
        live = (np.flatnonzero(((srt[:, r:] == srt[:, :n - r]) | (nan[:, r:] & nan[:, :n - r])).any(axis=1))
                if r else np.arange(srt.shape[0]))
        if live.size == 0:
            continue
        srt, nan, block = srt[live], nan[live], block[:, live]
        new = np.ones(srt.shape, dtype=bool)
        new[:, 1:] = srt[:, 1:] != srt[:, :-1]  # -0.0 == 0.0: one value, as the keys have it
        new[:, 1:] &= ~(nan[:, 1:] & nan[:, :-1])  # NaNs form one value, as np.unique has them
        col_of, start_of = np.nonzero(new)  # runs of equal values, by column then value
        counts = np.diff(np.r_[col_of * n + start_of, srt.size])
        ok = (counts >= min_count) & (counts <= max_count)
        if not ok.any():
            continue
        cols = np.unique(col_of[ok])
        bounds = np.searchsorted(col_of, np.arange(srt.shape[0] + 1))  # runs of column c: bounds[c]:bounds[c + 1]
        for c in np.unique(col_of[ok & (counts <= small)]):
            # the tie probability of c >= min_count rows sums over values with at least c rows: the
            # others are dropped (a continuous column with a few ties has 10^6 counts of 1)
            vc = counts[bounds[c]:bounds[c + 1]]
            value_counts[j0 + int(live[c])] = vc[vc >= min_count]
        # the columns with candidates: (key, row) pairs sorted, so each value's carriers are in row order
        keys = _ordered_keys(block[:, cols])  # same order and ties as ``srt``
        packed = np.sort((keys.astype(np.uint64) << np.uint64(32)) | row_ids, axis=1)
        sel = np.flatnonzero(ok)
        local = np.searchsorted(cols, col_of[sel])  # position of each candidate's column in ``cols``
        start, cnt = start_of[sel], counts[sel]
        ent = np.repeat(local * n + start - np.cumsum(cnt) + cnt, cnt) + np.arange(int(cnt.sum()))
        ent_row = (packed.ravel()[ent] & np.uint64(0xFFFFFFFF)).astype(row_dtype)
        first = ent_row[np.cumsum(cnt) - cnt]
        fcol = j0 + live[col_of[sel]]
        ent_cand = np.repeat(np.arange(sel.size), cnt)
        cc = np.bincount(ent_cand * n_classes + y[ent_row], minlength=sel.size * n_classes)
        feats.append(fcol.astype(np.int64))
        vals.append(X[first, fcol].astype(np.float64))
        ccs.append(cc.reshape(sel.size, n_classes))
        tots.append(cnt)
        rows.append(ent_row)
    n_cand = sum(f.size for f in feats)
    n_tests = n_cand * n_classes
    if not n_cand:
        empty = np.zeros(0, np.int64)
        return _Candidates(empty, np.zeros(0), np.zeros((0, n_classes), np.int64), empty, empty,
                           np.zeros(1, np.int64), n_tests, [], value_counts)
    feature = np.concatenate(feats)
    total = np.concatenate(tots).astype(np.int64)
    rows_all = np.concatenate(rows)
    ptr = np.concatenate([[0], np.cumsum(total)])
    shared = _same_carriers(rows_all, ptr, feature, np.flatnonzero(total <= small))
    return _Candidates(feature, np.concatenate(vals), np.concatenate(ccs), total, rows_all, ptr,
                       n_tests, shared, value_counts)


def _same_carriers(rows: np.ndarray, ptr: np.ndarray, feature: np.ndarray, pick: np.ndarray) -> list[list[int]]:
    """Groups of candidates in ``pick`` with identical carrier sets, spanning >= 2 features.

    Candidates are bucketed by a sum hash of their carrier rows (vectorised), and each
    bucket is split by the exact carrier set, so a hash collision cannot join two sets.
    """
    if pick.size < 2:
        return []
    r = np.random.default_rng(0).integers(0, 2**63, int(rows.max()) + 1, dtype=np.uint64)
    h = np.add.reduceat(r[rows], ptr[:-1])[pick] if rows.size else np.zeros(pick.size, np.uint64)
    size = (ptr[1:] - ptr[:-1])[pick]
    h = h + size.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2^64
    order = np.argsort(h, kind="stable")  # candidates of one bucket stay in candidate order
    hs = h[order]
    start = np.r_[0, np.flatnonzero(np.diff(hs)) + 1]
    end = np.r_[start[1:], hs.size]
    out: list[list[int]] = []
    for g in np.flatnonzero(end - start >= 2):
        grp = order[start[g]:end[g]]
        if np.unique(feature[pick[grp]]).size < 2:
            continue
        exact: dict[bytes, list[int]] = {}
        for i in pick[grp]:
            exact.setdefault(rows[ptr[i]:ptr[i + 1]].tobytes(), []).append(int(i))
        out += [m for m in exact.values() if len(m) >= 2 and np.unique(feature[m]).size >= 2]
    return out


def _search_tokens(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    min_count: int,
    max_fraction: float,
    alpha: float,
    interactions: bool = False,
) -> TokenSearch:
    """Exact feature values over-represented in one class.

    Two routes make a value ("token") a candidate, each at family-wise level ``alpha``
    (Bonferroni over its own tests):

    * **label enrichment**: the class is over-represented among the token's carriers
      (one-sided binomial test against the class prior; Bonferroni over the tests that
      could reach the level with every carrier in the class, :func:`tarone_level`);
    * **co-stamping**: the same rows, and only they, share an exact value in two or
      more features. A tabular trigger stamps several columns on the same few rows;
      naturally, continuous columns almost never tie on the same set of rows. The
      p-value is the chance of the label purity (``prior^k``) times, for every feature
      of the set but the most tie-prone, the chance that that many random rows tie
      on it (:func:`_tie_probability`), features taken as independent. Four rows
      carrying a two-column trigger in 400 are out of reach of the first route alone
      (``0.38^4 = 0.02`` before any correction) and clear this one by far.

    A candidate only proposes a trigger: the presence test of the detector decides.
    """
    n = X.shape[0]
    prior = np.bincount(y, minlength=n_classes) / n
    cand = _collect_candidates(X, y, n_classes, min_count=min_count, max_count=max(min_count, int(max_fraction * n)))
    if cand.total.size == 0:
        return TokenSearch(tokens=[], carries=np.zeros((n, 0), dtype=bool), interactions=(),
                           interaction_carries=np.zeros((n, 0), dtype=bool))
    # Tarone's correction: only the candidate x class tests that could reach the level count
    level = tarone_level(prior[None, :] ** cand.total[:, None], alpha)
    # P(at least cc[c] of `total` carriers in class c | carriers drawn by the prior), all cells at once
    p_all = binom.sf(cand.by_class - 1, cand.total[:, None], prior[None, :])
    lift_ok = cand.by_class >= np.maximum(min_count, min_share(prior)[None, :] * cand.total[:, None])
    p_of: dict[tuple[int, int], float] = {}  # (candidate, class) -> p-value of a passing route
    for i, c in zip(*np.nonzero((p_all < level) & lift_ok)):
        p_of[(int(i), int(c))] = float(p_all[i, c])
    if cand.shared_rows:
        level_co = alpha / (len(cand.shared_rows) * n_classes)
        for members in cand.shared_rows:
            cc, total = cand.by_class[members[0]], int(cand.total[members[0]])
            c = int(np.argmax(cc))
            ties = sorted(_tie_probability(cand.value_counts[int(cand.feature[i])], n, total) for i in members)
            p = float(prior[c] ** cc[c]) * float(np.prod(ties[:-1]))
            if cc[c] == total and p < level_co:
                for i in members:
                    p_of[(i, c)] = min(p, p_of.get((i, c), 1.0))
    tokens: list[Token] = []
    for (i, c), p in sorted(p_of.items()):
        k, total = int(cand.by_class[i, c]), int(cand.total[i])
        excess = min(max(float((k - prior[c] * total) / k), 0.0), 1.0)
        tokens.append(Token((int(cand.feature[i]),), (float(cand.value[i]),), c, total, k, p, excess))
    conj = _conjunctions(X, y, prior, cand, min_count=min_count, alpha=alpha)
    carries = np.zeros((n, len(tokens) + len(conj.tokens)), dtype=bool)
    for t, (i, _) in enumerate(sorted(p_of)):
        if np.isnan(cand.value[i]):  # carried_by never matches NaN: keep its answer
            carries[:, t] = tokens[t].carried_by(X)
        else:  # a single value's carriers are its candidate rows: no pass over the column
            carries[cand.rows[cand.ptr[i]:cand.ptr[i + 1]], t] = True
    for t, carrier in enumerate(conj.carriers, start=len(tokens)):
        carries[:, t] = carrier
    if not interactions:
        return TokenSearch(tokens=tokens + conj.tokens, carries=carries, interactions=(),
                           interaction_carries=np.zeros((n, 0), dtype=bool))
    inter = _interaction_conjunctions(X, y, prior, cand, p_all, min_count=min_count, alpha=alpha)
    inter_carries = (np.stack(inter.carriers, axis=1) if inter.carriers else np.zeros((n, 0), dtype=bool))
    return TokenSearch(tokens=tokens + conj.tokens, carries=carries, interactions=tuple(inter.tokens),
                       interaction_carries=inter_carries)


def tarone_level(p_min: np.ndarray, alpha: float) -> float:
    """Per-test level of Tarone's (1990) Bonferroni correction for discrete tests.

    ``p_min`` holds each test's smallest attainable p-value (here: every carrier of a
    value in the class, ``prior ** carriers``). A test whose ``p_min`` exceeds the
    per-test level can never reject, so it does not dilute the level of the others:
    the level is ``alpha / m`` for the smallest ``m`` such that at most ``m`` tests
    have ``p_min <= alpha / m``. The family-wise error stays at most ``alpha``, as with
    plain Bonferroni over every test, which it never falls below. A value carried by
    a handful of rows of a 200-row table (most candidates of a small table) cannot
    reach any sensible level, and counting it made a 10-row, label-pure value in a
    continuous column (a single stamped column) unreachable.
    """
    p = np.sort(np.asarray(p_min, dtype=np.float64).ravel())
    if p.size == 0:
        return float(alpha)
    # count(m) = #{p_min <= alpha / m} falls as m grows: the first m with count(m) <= m, by bisection
    lo, hi = 1, p.size  # count(p.size) <= p.size always
    while lo < hi:
        mid = (lo + hi) // 2
        if int(np.searchsorted(p, alpha / mid, side="right")) <= mid:
            hi = mid
        else:
            lo = mid + 1
    return float(alpha / lo)


def typical_rate(
    X: np.ndarray, y: np.ndarray, token: Token, *, near: float = NEAR, share: float = 1.0,
    carrier: np.ndarray | None = None,
) -> float:
    """Share of the token's class rows that do *not* carry it but come within ``near`` of it.

    High for a trait of the class (the empty centre of a "0": rows without the exact
    zeros still have little ink there); near 0 for a stamp foreign to the class. With
    no such rows to compare it is 0. A row comes near when it is within ``near`` on at
    least ``ceil(share * m)`` of the token's ``m`` features (all of them by default).
    ``carrier``: the token's carrier mask when the caller has it.
    """
    rest = (y == token.label) & ~(token.carried_by(X) if carrier is None else carrier)
    if not rest.any():
        return 0.0
    # index rows and columns at once: X[rest] would copy every column of a wide table
    close = np.abs(X[np.ix_(rest, list(token.features))] - np.asarray(token.values)) <= near
    need = int(np.ceil(share * len(token.features) - 1e-9))
    return float((close.sum(axis=1) >= need).mean())


def _pack_bits(sets: np.ndarray, elems: np.ndarray, n_sets: int, n_elems: int) -> np.ndarray:
    """Each set as packed 64-bit words: bit ``e`` of row ``s`` is set when set ``s`` holds element ``e``."""
    words = np.zeros((n_sets, (n_elems + 63) // 64), dtype=np.uint64)
    if sets.size == 0:
        return words
    lin = sets * words.shape[1] + (elems >> 6)
    bits = np.left_shift(np.uint64(1), (elems & 63).astype(np.uint64))
    if (np.diff(lin) >= 0).all():  # entries come set by set, elements ascending: OR each run of one word
        start = np.flatnonzero(np.r_[True, lin[1:] != lin[:-1]])
        words.ravel()[lin[start]] = np.bitwise_or.reduceat(bits, start)
    else:
        np.bitwise_or.at(words.ravel(), lin, bits)
    return words


def _overlap_edges(sets: np.ndarray, elems: np.ndarray, n_sets: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of sets whose elements have Jaccard >= ``threshold``; set ``sets[e]`` holds ``elems[e]``.

    Exact, without the dense set x set matrix: a prefix-filtered similarity join
    (Bayardo et al. 2007). Elements are ranked rarest first; if two sets reach the
    threshold, their smallest common element lies within the first
    ``|A| - ceil(t |A|) + 1`` elements of each, so only sets sharing an element in
    those prefixes are compared. Within one element's sets, a set is paired only
    with sets of its size up to ``|A| / t`` (Jaccard <= smaller / larger), so pairs
    of very different sizes are never generated; each pair left is verified with a
    popcount over packed bits.
    """
    size = np.bincount(sets, minlength=n_sets).astype(np.int64)
    freq = np.bincount(elems)
    rank = np.empty(freq.size, dtype=np.int64)
    rank[np.argsort(freq, kind="stable")] = np.arange(freq.size)
    order = np.lexsort((rank[elems], sets))  # per set, rarest element first
    sets_o, elem_o = sets[order], rank[elems[order]]
    need = np.ceil(threshold * size - 1e-9).astype(np.int64)
    plen = np.maximum(size - need + 1, 0)
    pos = np.arange(elem_o.size) - np.repeat(np.cumsum(size) - size, size)
    keep = pos < np.repeat(plen, size)
    elem_p, sets_p, pos_p = elem_o[keep], sets_o[keep], pos[keep]
    # per element, its sets by size: a set's partners are the sets after it up to size |A| / t
    sz = size[sets_p]
    order = np.lexsort((sz, elem_p))
    elem_p, sets_p, sz, pos_p = elem_p[order], sets_p[order], sz[order], pos_p[order]
    width = int(size.max()) + 2 if size.size else 2
    key = elem_p * width + sz
    limit = np.minimum(np.floor(sz / threshold + 1e-9).astype(np.int64), width - 1)
    hi = np.searchsorted(key, elem_p * width + limit, side="right")
    n_after = hi - np.arange(elem_p.size) - 1
    words = _pack_bits(sets, elems, n_sets, freq.size)
    out_a, out_b = [], []
    cum = np.cumsum(n_after)
    block = max(4096, _WORD_BLOCK // words.shape[1])
    lo = 0
    while lo < elem_p.size:  # pairs of a block of entries at a time (bounded temporaries)
        hi_e = int(np.searchsorted(cum, (cum[lo - 1] if lo else 0) + block, side="right"))
        hi_e = min(max(hi_e, lo + 1), elem_p.size)
        cnt = n_after[lo:hi_e]
        first = np.repeat(np.arange(lo, hi_e), cnt)
        lo = hi_e
        if first.size == 0:
            continue
        second = first + 1 + (np.arange(first.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        # positional filter (PPJoin, Xiao et al. 2008): were this element the pair's first common
        # one, at most 1 + the shorter remainder could overlap; a pair that reaches the threshold
        # passes at its first common element, so dropping it wherever the bound fails is exact
        sa, sb = sz[first], sz[second]
        bound = np.minimum(sa - pos_p[first], sb - pos_p[second])  # 1 + elements after it in the shorter rest
        ok = bound >= np.ceil(threshold / (1 + threshold) * (sa + sb) - 1e-9)  # overlap Jaccard t needs
        first, second = first[ok], second[ok]
        a, b = sets_p[first], sets_p[second]
        a, b = np.minimum(a, b), np.maximum(a, b)
        for s in range(0, a.size, block):  # one entry can have more partners than a block
            pa, pb = a[s:s + block], b[s:s + block]
            inter = np.bitwise_count(words[pa] & words[pb]).sum(axis=1, dtype=np.int64)
            ok = inter >= threshold * (size[pa] + size[pb] - inter) - 1e-9
            out_a.append(pa[ok])
            out_b.append(pb[ok])
    if not out_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    key = np.unique(np.concatenate(out_a) * n_sets + np.concatenate(out_b))
    return key // n_sets, key % n_sets


def _jaccard_edges(sets: np.ndarray, elems: np.ndarray, n_sets: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges whose connected components are those of "Jaccard >= ``threshold``" (``0 < threshold < 1``).

    Exact, and fast when most sets are small (a wide table has ~10^4 sets of 3-7 rows
    per class). Write ``i`` for the overlap and ``D`` for the rows in one set only:
    ``J >= t`` iff ``D <= i (1 - t) / t``, so when the smaller set has fewer than
    ``2t / (1 - t)`` elements (8 at t = 0.8), ``D <= 1``: the sets are identical, or
    one is the other plus one element. Identical sets are found by a sum hash (a chain
    of edges joins each group, enough for components), one-extra-element pairs by the
    hash of every set with each element removed. Every match is verified on packed
    bits; if any fails (a hash collision) the general join runs instead, so the result
    never depends on the hash. Pairs of two larger sets go through :func:`_overlap_edges`.
    """
    size = np.bincount(sets, minlength=n_sets).astype(np.int64)
    n_el = int(elems.max()) + 1 if elems.size else 1
    r = np.random.default_rng(0).integers(0, 2**63, n_el, dtype=np.uint64)
    salt = np.uint64(0x9E3779B97F4A7C15)
    h = np.zeros(n_sets, np.uint64)
    if sets.size and (np.diff(sets) >= 0).all():  # entries set by set: one sum per run
        start = np.flatnonzero(np.r_[True, sets[1:] != sets[:-1]])
        h[sets[start]] = np.add.reduceat(r[elems], start)  # wraps modulo 2^64
    else:
        np.add.at(h, sets, r[elems])  # wraps modulo 2^64: removing an element is a subtraction
    key = h + size.astype(np.uint64) * salt
    words = _pack_bits(sets, elems, n_sets, n_el)
    small_max = int(np.ceil(2 * threshold / (1 - threshold) - 1e-9)) - 1
    sub_min = int(np.ceil(threshold / (1 - threshold) - 1e-9))  # smallest set one element short of a partner
    uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
    rep = first[inv.ravel()]  # identical sets: each to the first set with its key
    dup = rep != np.arange(n_sets)
    a, b = rep[dup], np.flatnonzero(dup)
    # one-extra-element pairs: the bigger set, one element removed, hashes like the smaller
    big = (size[sets] > sub_min) & (size[sets] <= small_max + 1)
    probe = h[sets[big]] - r[elems[big]] + (size[sets[big]] - 1).astype(np.uint64) * salt
    pos = np.minimum(np.searchsorted(uniq, probe), uniq.size - 1)
    hit = uniq[pos] == probe
    a, b = np.concatenate([a, first[pos[hit]]]), np.concatenate([b, sets[big][hit]])
    inter = np.bitwise_count(words[a] & words[b]).sum(axis=1, dtype=np.int64)
    if not (inter >= threshold * (size[a] + size[b] - inter) - 1e-9).all():
        return _overlap_edges(sets, elems, n_sets, threshold)  # a hash collision: take the general route
    # both sets larger: the general join on those sets only
    large = np.flatnonzero(size > small_max)
    if large.size >= 2:
        local = np.full(n_sets, -1)
        local[large] = np.arange(large.size)
        e = local[sets] >= 0
        la, lb = _overlap_edges(local[sets[e]], elems[e], large.size, threshold)
        a, b = np.concatenate([a, large[la]]), np.concatenate([b, large[lb]])
    return a, b


def _class_components(y: np.ndarray, cand: _Candidates, c: int, entry_cand: np.ndarray, entries: np.ndarray, *,
                      min_count: int) -> list[list[int]]:
    """Candidates whose carriers in class ``c`` overlap (Jaccard >= 0.8), joined over >= 2 features."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sel = cand.by_class[:, c] >= min_count
    in_c = y == c
    idx = np.flatnonzero(sel)
    n_c = int(in_c.sum())
    if idx.size < 2 or n_c < min_count:
        return []
    # carriers inside the class, as (local candidate, local row) entries
    # ``entries``: the entries of cand.rows whose row is in the class, in entry order
    e = entries[sel[entry_cand[entries]]]
    sets = (np.cumsum(sel) - 1)[entry_cand[e]]
    elems = (np.cumsum(in_c) - 1)[cand.rows[e]]
    m = idx.size
    if m <= _DENSE_MAX:
        Bf = np.zeros((n_c, m), dtype=np.float32)
        Bf[elems, sets] = 1.0
        inter = Bf.T @ Bf
        size = np.diag(inter)
        jac = inter / np.maximum(size[:, None] + size[None, :] - inter, 1.0)
        adj = jac >= _CONJUNCTION_OVERLAP
    else:
        a, b = _jaccard_edges(sets, elems, m, _CONJUNCTION_OVERLAP)
        adj = coo_matrix((np.ones(a.size, dtype=bool), (a, b)), shape=(m, m)).tocsr()
    n_comp, comp = connected_components(adj, directed=False)
    # components spanning >= 2 features, grouped by sorting (a wide table has ~10^4 per class)
    order = np.argsort(comp, kind="stable")  # members stay in candidate order
    end = np.cumsum(np.bincount(comp, minlength=n_comp))
    start = end - np.bincount(comp, minlength=n_comp)
    f = cand.feature[idx][order]
    multi = np.maximum.reduceat(f, start) > np.minimum.reduceat(f, start)  # >= 2 distinct features
    return [[int(i) for i in idx[order[start[g]:end[g]]]] for g in np.flatnonzero(multi)]


#: classes up to which a class's entries are found by one pass each (no int64 index of every entry)
_PASS_CLASSES = 32


def _conjunctions(
    X: np.ndarray,
    y: np.ndarray,
    prior: np.ndarray,
    cand: _Candidates,
    *,
    min_count: int,
    alpha: float,
) -> _Conjunctions:
    """Conjunctions of values that the rows of one class carry together, enriched in that class.

    A multi-feature trigger whose single values are common (a 2x2 patch of maximum ink
    at the centre of a digit: each pixel is at 16 in ~20% of clean digits) is not
    enriched value by value, but its *conjunction* is: per class, values whose
    carriers in the class overlap with Jaccard >= 0.8 are joined (connected
    components over at least two features), and the conjunction is tested like a
    single value (binomial test of the class among all its carriers, lift >= 2,
    Bonferroni over the conjunctions tested). A conjunction that the class's other
    rows come near (:func:`typical_rate` above 0.2) is a trait of the class and dropped.
    """
    # one entry per (candidate, carrier row): ~10^7 on a 10^6-row table with low-cardinality
    # columns, so the per-entry arrays are kept small (int32 candidates, 1-byte classes)
    entry_cand = np.repeat(np.arange(cand.total.size, dtype=np.int32), cand.total)
    ent_class = y.astype(np.min_scalar_type(max(prior.size - 1, 0)))[cand.rows]
    if prior.size > _PASS_CLASSES:  # many classes: one sort instead of a pass over all entries per class
        order = np.argsort(ent_class, kind="stable")
        bounds = np.searchsorted(ent_class[order], np.arange(prior.size + 1))
    found = []
    for c in range(prior.size):
        entries = np.flatnonzero(ent_class == c) if prior.size <= _PASS_CLASSES else order[bounds[c]:bounds[c + 1]]
        found += [(c, m) for m in _class_components(y, cand, c, entry_cand, entries, min_count=min_count)]
    if not found:
        return _Conjunctions([], [])
    level = alpha / len(found)
    tested = []  # (class, features, values, carriers) of the conjunctions that reach the lift
    for c, members in found:
        feats = tuple(int(cand.feature[i]) for i in members)
        vals = tuple(float(cand.value[i]) for i in members)
        carrier = np.all(X[:, list(feats)] == np.asarray(vals), axis=1)
        total, k = int(carrier.sum()), int((carrier & (y == c)).sum())
        if k >= min_count and k >= min_share(prior[c]) * total:
            tested.append((c, feats, vals, carrier, total, k))
    out = _Conjunctions([], [])
    if not tested:
        return out
    # one binomial call for all of them (a wide table has ~10^2; a call each cost more than the test)
    ks = np.array([t[5] for t in tested])
    totals = np.array([t[4] for t in tested])
    p_all = binom.sf(ks - 1, totals, prior[[t[0] for t in tested]])
    for (c, feats, vals, carrier, total, k), p in zip(tested, p_all):
        if p < level:
            excess = min(max(float((k - prior[c] * total) / k), 0.0), 1.0)
            tok = Token(feats, vals, c, total, k, float(p), excess)
            # Masking a trait of the class makes its rows look like another class, as a
            # trigger would: on 600 digits with 10% flips the empty centre of "0" did.
            if typical_rate(X, y, tok, carrier=carrier) <= _CONJUNCTION_MAX_TYPICAL:
                out.tokens.append(tok)
                out.carriers.append(carrier)
    return out


#: values per class offered to the interaction search (the most enriched ones: at most
#: ``K (K - 1) / 2`` pairs per class), and at most this many of one column
_INTERACTION_VALUES = 40
_INTERACTION_PER_COLUMN = 4
#: share of a pair's carriers that its class must hold beyond what its two values predict
#: apart: a stamp puts its rows in the class whatever the values alone say; a natural
#: interaction of two columns moves a class share by a few points (fair's rating x
#: education, p = 3e-10 on 782 carriers: 0.10)
_INTERACTION_MIN_EXCESS = 0.25
#: one-sided level at which a pair's values must co-occur more often than their columns'
#: frequencies predict: a stamp writes all its values on the same rows
_COOCCUR_LEVEL = 0.05
#: share of a conjunction's carriers in the class that a further value must be carried by to join it
_EXTEND_SHARE = 0.9
#: a pair sharing a value with a conjunction already proposed, with at least this share of its
#: carriers in the class carrying that conjunction, is its echo (a stamped value x a common one)
_ECHO_SHARE = 0.5
#: conjunctions proposed per class at most (each costs the presence test a masking)
_INTERACTION_MAX_PER_CLASS = 8


@dataclass(frozen=True)
class _PairTests:
    """Candidate pairs of values (indices into the candidates) and their interaction test, over every class."""

    label: np.ndarray
    a: np.ndarray
    b: np.ndarray
    n_ab: np.ndarray  # rows carrying both values
    k_ab: np.ndarray  # of them, in the class
    expected: np.ndarray  # the class's share among them if the two values acted apart (main effects)
    p_value: np.ndarray  # one-sided binomial of k_ab at that share
    p_cooccur: np.ndarray  # one-sided hypergeometric: the pair's carriers against its values' frequencies


def _offered_values(cand: _Candidates, p_all: np.ndarray, prior: np.ndarray, c: int, *, min_count: int) -> np.ndarray:
    """The candidates of class ``c`` offered to the pair search: enriched at all, most enriched first.

    At most :data:`_INTERACTION_VALUES`, and :data:`_INTERACTION_PER_COLUMN` of one column
    (a column with many tied values would take every place).
    """
    kc = cand.by_class[:, c]
    el = np.flatnonzero((kc >= min_count) & (kc > prior[c] * cand.total))
    if el.size < 2:
        return el[:0]
    el = el[np.argsort(p_all[el, c], kind="stable")]
    order = np.argsort(cand.feature[el], kind="stable")  # by column, most enriched first within one
    fs = cand.feature[el][order]
    start = np.r_[0, np.flatnonzero(np.diff(fs)) + 1]
    rank = np.empty(el.size, dtype=np.int64)
    rank[order] = np.arange(el.size) - np.repeat(start, np.diff(np.r_[start, el.size]))
    return el[rank < _INTERACTION_PER_COLUMN][:_INTERACTION_VALUES]


def _cell_logit(k: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Log-odds of the class in a cell of ``m`` rows, ``k`` in it (+1/2 smoothed: empty cells stay finite)."""
    return np.log((k + 0.5) / (m - k + 0.5))


def _pair_tests(y: np.ndarray, prior: np.ndarray, cand: _Candidates, p_all: np.ndarray, offered: list[np.ndarray],
                *, min_count: int) -> _PairTests:
    """The interaction test of every pair of offered values (of two columns) in each class.

    Co-carrier counts come from packed carrier bits (a popcount per pair), so a 10^6-row
    table costs ``K^2 / 2`` passes over 16,000 words per class. The expected share is the
    main-effects logistic model's, fitted in closed form on the three cells that do not
    carry both values (``a`` without ``b``, ``b`` without ``a``, neither):
    ``logit = l(a, not b) + l(not a, b) - l(neither)``; the pair's own carriers do not
    enter it, so a stamp on them does not inflate what it is compared with.
    """
    from scipy.stats import hypergeom

    n = y.size
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("label", "a", "b", "n_ab", "k_ab", "n_a", "n_b", "exp")}
    for c, el in enumerate(offered):
        m = el.size
        if m < 2:
            continue
        lens = cand.total[el]
        idx = np.repeat(cand.ptr[el] - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
        words = _pack_bits(np.repeat(np.arange(m), lens), cand.rows[idx].astype(np.int64), m, n)
        cls = _pack_bits(np.zeros(int((y == c).sum()), np.int64), np.flatnonzero(y == c), 1, n)[0]
        in_c = words & cls
        co = np.zeros((m, m), dtype=np.int64)
        coc = np.zeros((m, m), dtype=np.int64)
        for a in range(m - 1):
            co[a, a + 1:] = np.bitwise_count(words[a] & words[a + 1:]).sum(axis=1, dtype=np.int64)
            coc[a, a + 1:] = np.bitwise_count(in_c[a] & words[a + 1:]).sum(axis=1, dtype=np.int64)
        ia, ib = np.triu_indices(m, 1)
        n_ab, k_ab = co[ia, ib], coc[ia, ib]
        ok = ((cand.feature[el[ia]] != cand.feature[el[ib]]) & (k_ab >= min_count)
              & (k_ab >= min_share(prior[c]) * n_ab))
        ia, ib, n_ab, k_ab = ia[ok], ib[ok], n_ab[ok], k_ab[ok]
        if ia.size == 0:
            continue
        n_a, n_b = cand.total[el[ia]], cand.total[el[ib]]
        k_a, k_b = cand.by_class[el[ia], c], cand.by_class[el[ib], c]
        k_all = int((y == c).sum())
        logit = (_cell_logit(k_a - k_ab, n_a - n_ab) + _cell_logit(k_b - k_ab, n_b - n_ab)
                 - _cell_logit(k_all - k_a - k_b + k_ab, n - n_a - n_b + n_ab))
        for key, v in (("label", np.full(ia.size, c)), ("a", el[ia]), ("b", el[ib]), ("n_ab", n_ab),
                       ("k_ab", k_ab), ("n_a", n_a), ("n_b", n_b), ("exp", 1.0 / (1.0 + np.exp(-logit)))):
            cols[key].append(v)
    if not cols["label"]:
        e = np.zeros(0, np.int64)
        return _PairTests(e, e, e, e, e, np.zeros(0), np.zeros(0), np.zeros(0))
    v = {k: np.concatenate(x) for k, x in cols.items()}
    return _PairTests(
        label=v["label"], a=v["a"], b=v["b"], n_ab=v["n_ab"], k_ab=v["k_ab"], expected=v["exp"],
        p_value=binom.sf(v["k_ab"] - 1, v["n_ab"], v["exp"]),
        p_cooccur=hypergeom.sf(v["n_ab"] - 1, n, v["n_a"], v["n_b"]),
    )


def _interaction_conjunctions(
    X: np.ndarray,
    y: np.ndarray,
    prior: np.ndarray,
    cand: _Candidates,
    p_all: np.ndarray,
    *,
    min_count: int,
    alpha: float,
) -> _Conjunctions:
    """Conjunctions of values concentrated in one class far beyond what each value predicts.

    A trigger of several common values (three columns at their 90th percentile) is
    enriched neither value by value (each has hundreds of natural carriers) nor by the
    overlap of its carriers in the class (the natural ones dilute it), but the rows that
    carry two of its values at once are in the class far more often than either value
    alone says. Per class, the most enriched values (:func:`_offered_values`) are paired
    and each pair tested for an *interaction* (:func:`_pair_tests`): its carriers' class
    count against the share a main-effects model of the two values predicts (one-sided
    binomial, Tarone-Bonferroni over every pair of every class that could reach the level,
    :func:`tarone_level`). A pair is proposed when, beyond the test, the class holds at
    least :data:`_INTERACTION_MIN_EXCESS` of its carriers more than predicted and its
    values co-occur more often than their columns' frequencies say (a stamp writes them
    on the same rows). The most significant pair of a class is then extended by any
    offered value that :data:`_EXTEND_SHARE` of its carriers in the class also carry,
    where that co-occurrence is significant too (the third column of the stamp), and
    proposed as one conjunction; a pair sharing a value with it whose carriers in the
    class are mostly its carriers is its echo and dropped. Only a proposal: the presence
    test decides (natural interactions, e.g. an age x pregnancies cell, must fail there).
    """
    from scipy.stats import hypergeom

    offered = [_offered_values(cand, p_all, prior, c, min_count=min_count) for c in range(prior.size)]
    tests = _pair_tests(y, prior, cand, p_all, offered, min_count=min_count)
    out = _Conjunctions([], [])
    if tests.label.size == 0:
        return out
    level = tarone_level(tests.expected ** tests.n_ab, alpha)
    excess = (tests.k_ab - tests.n_ab * tests.expected) / tests.n_ab
    ok = (tests.p_value < level) & (excess >= _INTERACTION_MIN_EXCESS) & (tests.p_cooccur < _COOCCUR_LEVEL)
    n = y.size
    masks: dict[int, np.ndarray] = {}

    def carrier_of(i: int) -> np.ndarray:
        if i not in masks:
            mk = np.zeros(n, dtype=bool)
            mk[cand.rows[cand.ptr[i]:cand.ptr[i + 1]]] = True
            masks[i] = mk
        return masks[i]

    for c in np.unique(tests.label[ok]):
        in_class = y == c
        passed = {frozenset((int(tests.a[t]), int(tests.b[t]))) for t in np.flatnonzero(ok & (tests.label == c))}
        sel = np.flatnonzero(ok & (tests.label == c))
        sel = sel[np.argsort(tests.p_value[sel], kind="stable")]
        proposed: list[tuple[set[int], np.ndarray]] = []  # (member candidates, carriers in the class)
        for t in sel:
            if len(proposed) >= _INTERACTION_MAX_PER_CLASS:
                break
            a, b = int(tests.a[t]), int(tests.b[t])
            if any(a in mem and b in mem for mem, _ in proposed):
                continue
            carrier = carrier_of(a) & carrier_of(b)
            mine = carrier & in_class
            k = int(mine.sum())
            if any((a in mem or b in mem) and int((mine & held).sum()) >= _ECHO_SHARE * k for mem, held in proposed):
                continue
            members = [a, b]
            feats = {int(cand.feature[a]), int(cand.feature[b])}
            for v in offered[c]:
                v = int(v)
                if int(cand.feature[v]) in feats:
                    continue
                cv = carrier_of(v)
                both = carrier & cv
                # a further value of the stamp: it passed the pair test with every member, or
                # nearly every carrier in the class has it, beyond what its frequency explains
                # (the natural carriers of a pair of common values dilute the share: 154 of 175)
                joins = all(frozenset((m, v)) in passed for m in members)
                if not joins and int((mine & cv).sum()) >= _EXTEND_SHARE * k:
                    nb = int(both.sum())
                    joins = hypergeom.sf(nb - 1, n, int(carrier.sum()), int(cand.total[v])) < alpha / offered[c].size
                if joins:
                    members.append(v)
                    feats.add(int(cand.feature[v]))
                    carrier, mine = both, both & in_class
                    k = int(mine.sum())
            if k < min_count:
                continue
            members.sort(key=lambda i: int(cand.feature[i]))
            total = int(carrier.sum())
            tok = Token(tuple(int(cand.feature[i]) for i in members), tuple(float(cand.value[i]) for i in members),
                        int(c), total, k, float(tests.p_value[t]),
                        min(max(float((k - prior[c] * total) / k), 0.0), 1.0), kind="interaction")
            proposed.append((set(members), mine))
            out.tokens.append(tok)
            out.carriers.append(carrier)
    return out
