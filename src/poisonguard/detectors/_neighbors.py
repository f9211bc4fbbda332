"""Nearest-neighbour search shared by the neighbour-based detectors.

Exact search is used up to ``EXACT_MAX_ROWS`` rows. Above that, faiss's inverted-file
index: ``2 sqrt(n)`` k-means cells, each query scanning the rows of its nearest cells.
What a query costs is the rows it scans, so the number of probed cells is set to scan
about ``CANDIDATES`` rows whatever the table's size (never fewer than ``MIN_PROBES``
cells, which bounds the loss at cell borders). With a fixed 16 probes a query
scanned ``8 sqrt(n)`` rows: 8,000 at a million rows, most of a million-row scan.

Measured at 100k x 32 (synthetic, under load, one run): the old index (25 k-means
iterations on 40 rows per cell, 16 probes) 29.6 s, recall of the 21 true neighbours
0.773, neighbour-vote AUROC 0.9961; 5 iterations on 16 rows per cell 23.1 s, recall
0.778, AUROC 0.9961. Per-cell batched search (all rows of a cell against its nearest
cells) was no faster and fell to recall 0.47-0.68, HNSW to 75 s; an HNSW quantizer
over ``n / 128`` cells spent as long finding the cells as scanning them. A neighbour
*vote* needs a representative neighbourhood, not the exact one; an exact duplicate
always lands in its twin's cell, so it is always found.

Each row's probe list (its nearest cells) is computed once, with one matrix product per
block of rows: its first cell places the row in the index and the whole list is the
search's, so the rows are not assigned to the cells twice. Queries run in blocks
written straight into an int32/float32 graph, so the search's temporaries stay bounded.
The blocks run on a few threads, faiss single-threaded inside each: a thread that a
busy host deschedules delays only its own block, where OpenMP's barriers make the other
threads spin-wait for it (measured on 2 CPUs under load: 2 OpenMP threads cost more CPU
and more time than 1). The last graph computed is memoised by the fingerprint of
the matrix, so several detectors in one scan share one search instead of repeating
it. The memo never changes results: it is keyed by the data's bytes and ``k``.
Self-joins (a fit matrix against itself) and query graphs (other rows against it)
are memoised apart: a scan that scores its other rows block by block replaces the
query graph with every block, and must not push out the fit matrix's self-join,
which explaining its rows needs again. :func:`release` drops every graph and index
(a scan calls it when it is done: a million-row graph should not outlive its scan).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ._base import fingerprint_array
from ._memo import BoundedMemo

__all__ = ["Neighbours", "self_neighbours", "query_neighbours", "release", "release_query_graphs",
           "EXACT_MAX_ROWS"]

log = logging.getLogger(__name__)
EXACT_MAX_ROWS = 20_000
#: rows a query scans (about): the cells probed times their size
CANDIDATES = 2560
MIN_PROBES = 6
MAX_PROBES = 16
#: k-means on this many sampled rows per cell, for this many iterations
KMEANS_ROWS_PER_CELL = 16
KMEANS_ITERATIONS = 5
#: queries per block: bounds the search's temporaries (distances and labels of one block)
SEARCH_BLOCK = 1 << 15
#: threads of the search (at most; fewer on fewer CPUs)
MAX_THREADS = 4
#: the memoised graph always holds at least this many neighbours, so detectors
#: asking for different k share one search
MIN_GRAPH_K = 20


@dataclass(frozen=True)
class Neighbours:
    """k nearest neighbours of each query row: ``indices[i, j]`` at ``distances[i, j]`` (ascending).

    Above ``EXACT_MAX_ROWS`` rows (the faiss inverted-file search) ``indices`` is int32
    and ``distances`` float32, half the memory of a million-row graph; int64/float64
    otherwise.
    """

    indices: np.ndarray
    distances: np.ndarray
    exact: bool


#: the last self-joins (a matrix's rows against the matrix itself)
_memo: BoundedMemo[Neighbours] = BoundedMemo(2)
#: the last query graph (other rows against a reference): one block of a scan's rows at a time
_query_memo: BoundedMemo[Neighbours] = BoundedMemo(1)
#: the last index built: a fit sample's self-join and its query searches share it
_index_memo: "BoundedMemo[_Ivf]" = BoundedMemo(1)


def _faiss():
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError:
        return None
    return faiss


def _threads() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, MAX_THREADS))


def _map_blocks(faiss, fn, n: int) -> None:
    """Run ``fn(r0, r1)`` over blocks of ``SEARCH_BLOCK`` rows on a few threads, faiss and BLAS single-threaded.

    OpenMP's thread count is a per-thread setting, so each worker sets its own; the
    caller's is restored when the work runs on the calling thread.
    """
    blocks = [(r0, min(n, r0 + SEARCH_BLOCK)) for r0 in range(0, n, SEARCH_BLOCK)]
    workers = min(_threads(), len(blocks))

    def run(block: tuple[int, int]) -> None:
        faiss.omp_set_num_threads(1)
        fn(*block)

    with threadpool_limits(limits=1, user_api="blas"):
        if workers <= 1:
            saved = faiss.omp_get_max_threads()
            try:
                for block in blocks:
                    run(block)
            finally:
                faiss.omp_set_num_threads(saved)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(run, blocks):  # re-raises a worker's exception
                pass


@dataclass(frozen=True)
class _Ivf:
    """An inverted-file index over a reference matrix, with what searches against it reuse."""

    index: Any
    quantizer: Any  # must outlive the index
    centroids: np.ndarray  # (nlist, d) float32
    #: (n_ref, nprobe) int32: each reference row's nearest cells, its own first; dropped (``None``)
    #: once the self-join that uses them is done, and recomputed (the same lists) if one is asked again
    probes: np.ndarray | None


def _assign(faiss, x32: np.ndarray, centroids: np.ndarray, nprobe: int) -> np.ndarray:
    """Each row's ``nprobe`` nearest cells, nearest first (int32), one matrix product per block."""
    probes = np.empty((x32.shape[0], nprobe), dtype=np.int32)

    def assign(r0: int, r1: int) -> None:
        probes[r0:r1] = faiss.knn(x32[r0:r1], centroids, nprobe)[1]

    _map_blocks(faiss, assign, x32.shape[0])
    return probes


def _ivf_index(faiss, ref32: np.ndarray, fp: str | None = None) -> _Ivf:
    """The inverted-file index over ``ref32`` (see the module docstring), memoised by its fingerprint.

    A scan fitted on a sample searches the sample against itself (fit) and the other rows
    against it (score): one index serves both.
    """
    fp = fingerprint_array(ref32) if fp is None else fp
    hit = _index_memo.get(fp)
    if hit is not None:
        return hit
    n, d = ref32.shape
    nlist = max(2, int(2 * np.sqrt(n)))
    n_train = min(n, KMEANS_ROWS_PER_CELL * nlist)
    sample = np.sort(np.random.default_rng(0).choice(n, n_train, replace=False))
    km = faiss.Kmeans(d, nlist, niter=KMEANS_ITERATIONS, seed=0, min_points_per_centroid=1,
                      max_points_per_centroid=KMEANS_ROWS_PER_CELL)
    km.train(np.ascontiguousarray(ref32[sample]))
    centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    quantizer = faiss.IndexFlatL2(d)
    quantizer.add(centroids)
    index = faiss.IndexIVFFlat(quantizer, d, nlist)
    index.is_trained = True  # the centres are given
    index.nprobe = int(min(nlist, max(MIN_PROBES, min(MAX_PROBES, np.ceil(CANDIDATES * nlist / n)))))
    probes = _assign(faiss, ref32, centroids, index.nprobe)
    cell = probes[:, 0].astype(np.int64)
    index.add_core(n, faiss.swig_ptr(ref32), None, faiss.swig_ptr(cell))
    ivf = _Ivf(index=index, quantizer=quantizer, centroids=centroids, probes=probes)
    _index_memo.put(fp, ivf)
    return ivf


def _search_blocks(faiss, index, q32: np.ndarray, k: int, drop_self: bool, compact: bool,
                   order: np.ndarray | None = None, probes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``k`` neighbours of every row of ``q32``, in blocks; with ``drop_self`` each row's own index is removed.

    A search for ``k`` finds the row itself first, or (among exact duplicates) a twin
    first; the row's own column is dropped where found, else the farthest. ``order``
    is the order in which rows are searched: by cell, consecutive queries probe the
    same cells while those are in the CPU cache (searched in row order, a million-row
    index is re-read from memory for almost every query). ``probes`` are the rows'
    precomputed probe lists (the self-join); without them the index finds them.
    """
    n = q32.shape[0]
    width = k - 1 if drop_self else k
    # compact (int32/float32) for the large approximate graphs; small exact ones keep float64 distances
    idx = np.empty((n, width), dtype=np.int32 if compact else np.int64)
    dist = np.empty((n, width), dtype=np.float32 if compact else np.float64)

    def search(r0: int, r1: int) -> None:
        rows = np.arange(r0, r1) if order is None else order[r0:r1]
        block = q32[r0:r1] if order is None else q32[rows]
        if probes is None:
            d2, ii = index.search(block, k)
        else:
            d2, ii = index.search_preassigned(block, k, probes[rows].astype(np.int64), None)
        bad = ii < 0  # fewer reachable rows than k: row 0 at the largest distance found
        if bad.any():
            ii = np.where(bad, 0, ii)
            finite = d2[~bad]
            d2 = np.where(bad, finite.max() if finite.size else 0.0, d2)
        if drop_self:
            ii, d2 = _drop_self(ii, d2, rows)
        idx[rows] = ii
        dist[rows] = np.sqrt(np.maximum(d2.astype(dist.dtype), 0.0))

    _map_blocks(faiss, search, n)
    return idx, dist


def _search(ref: np.ndarray, query: np.ndarray, k: int, *, drop_self: bool = False) -> Neighbours:
    k = min(k, ref.shape[0])
    faiss = _faiss()
    if faiss is not None:
        ref32 = np.ascontiguousarray(ref, dtype=np.float32)
        q32 = ref32 if query is ref else np.ascontiguousarray(query, dtype=np.float32)
        order = probes = None
        if ref.shape[0] > EXACT_MAX_ROWS:
            fp = fingerprint_array(ref32)
            ivf = _ivf_index(faiss, ref32, fp)
            index = ivf.index
            # new rows get their probe lists the same way (one product per block), and are
            # searched by cell too, for the cache
            if q32 is ref32:
                probes = ivf.probes if ivf.probes is not None else _assign(faiss, ref32, ivf.centroids, index.nprobe)
                # the self-join is memoised next: its probe lists (10 MiB at 200k rows) are not kept for
                # the query searches, which find their own
                _index_memo.put(fp, replace(ivf, probes=None))
            else:
                probes = _assign(faiss, q32, ivf.centroids, index.nprobe)
            order = np.argsort(probes[:, 0], kind="stable")
            exact = False
        else:
            index = faiss.IndexFlatL2(ref.shape[1])
            index.add(ref32)
            exact = True
        idx, dist = _search_blocks(faiss, index, q32, k, drop_self, compact=not exact, order=order, probes=probes)
        return Neighbours(indices=idx, distances=dist, exact=exact)
    from sklearn.neighbors import NearestNeighbors

    if ref.shape[0] > EXACT_MAX_ROWS:
        log.info("faiss is not installed; using exact neighbour search on %d rows (slow)", ref.shape[0])
    nn = NearestNeighbors(n_neighbors=k).fit(ref)
    dist, idx = nn.kneighbors(query)
    if drop_self:
        idx, dist = _drop_self(idx, dist, np.arange(idx.shape[0]))
    return Neighbours(indices=idx.astype(np.int64), distances=dist, exact=True)


def _drop_self(idx: np.ndarray, dist: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index (``rows[i]`` for line i): where found, else the farthest column."""
    n, k = idx.shape
    is_self = idx == rows[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k - 1)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(n), drop] = False
    return idx[keep].reshape(n, -1), dist[keep].reshape(n, -1)


def self_neighbours(X: np.ndarray, k: int) -> Neighbours:
    """The ``k`` nearest *other* rows of every row of ``X`` (leave-one-out).

    A row's own index is removed from its list even when exact duplicates tie with it.
    The graph is memoised per matrix with the largest ``k`` asked so far; a smaller
    ``k`` is a slice of it.
    """
    limit = X.shape[0] - 1
    return _memoised(_memo, fingerprint_array(X), min(k, limit), limit,
                     lambda k_graph: _search(X, X, k_graph + 1, drop_self=True))


def _memoised(memo: BoundedMemo[Neighbours], key: Any, k_eff: int, limit: int,
              search: Callable[[int], Neighbours]) -> Neighbours:
    """The graph memoised in ``memo`` under ``key`` sliced to ``k_eff``, or ``search(k_graph)`` memoised.

    A new graph holds at least ``MIN_GRAPH_K`` neighbours (at most ``limit``), so detectors
    asking for different ``k`` share one search.
    """
    graph = memo.get(key)
    if graph is None or graph.indices.shape[1] < k_eff:
        graph = search(min(max(k_eff, MIN_GRAPH_K), limit))
        memo.put(key, graph)
    return Neighbours(indices=graph.indices[:, :k_eff], distances=graph.distances[:, :k_eff], exact=graph.exact)


def query_neighbours(ref: np.ndarray, query: np.ndarray, k: int) -> Neighbours:
    """The ``k`` nearest rows of ``ref`` for each row of ``query``.

    Memoised like :func:`self_neighbours`, by both matrices' fingerprints: the detectors
    that score the rows outside a fit sample (``duplicates``, ``knn_label``) share one search.
    """
    limit = ref.shape[0]
    return _memoised(_query_memo, (fingerprint_array(ref), fingerprint_array(query)), min(k, limit), limit,
                     lambda k_graph: _search(ref, query, k_graph))


def release_query_graphs() -> None:
    """Forget the memoised query graph (e.g. a scan's last block of rows, once every detector scored it)."""
    _query_memo.clear()


def release() -> None:
    """Forget every memoised graph and index (results are unchanged: the next search recomputes them)."""
    for memo in (_memo, _query_memo, _index_memo):
        memo.clear()
