"""The threaded neighbour search and the vectorised explanations give the answers of the serial code."""

from __future__ import annotations

import numpy as np
import pytest

from poisonguard.detectors import _neighbors
from poisonguard.detectors._knn_label import _row_majority

faiss = pytest.importorskip("faiss")


def _table(n: int = 24_000, d: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(12, d))
    X = (centres[rng.integers(0, 12, n)] + rng.normal(size=(n, d))).astype(np.float32)
    X[100] = X[7]  # an exact twin
    return X


def test_approximate_graph_is_the_same_on_one_thread_and_on_several(monkeypatch):
    X = _table()
    assert X.shape[0] > _neighbors.EXACT_MAX_ROWS
    monkeypatch.setattr(_neighbors, "MAX_THREADS", 1)
    one = _neighbors._search(X, X, 11, drop_self=True)
    monkeypatch.setattr(_neighbors, "MAX_THREADS", 3)
    monkeypatch.setattr(_neighbors, "SEARCH_BLOCK", 4096)  # several blocks on several threads
    many = _neighbors._search(X, X, 11, drop_self=True)
    np.testing.assert_array_equal(one.indices, many.indices)
    np.testing.assert_array_equal(one.distances, many.distances)
    # the twin is found first, at distance 0, and no row is its own neighbour
    assert many.indices[100, 0] == 7 and many.indices[7, 0] == 100 and many.distances[100, 0] == 0.0
    assert not (many.indices == np.arange(X.shape[0])[:, None]).any()


def test_approximate_graph_finds_most_true_neighbours():
    X = _table(seed=1)
    nb = _neighbors._search(X, X, 11, drop_self=True)
    rows = np.random.default_rng(0).choice(X.shape[0], 300, replace=False)
    exact = faiss.IndexFlatL2(X.shape[1])
    exact.add(X)
    _, truth = exact.search(X[rows], 11)
    recall = np.mean([len(set(t[1:].tolist()) & set(f.tolist())) / 10 for t, f in zip(truth, nb.indices[rows])])
    assert recall >= 0.9, recall  # 12 well-separated blobs in 8 dimensions: the probed cells hold them


def test_search_restores_the_callers_openmp_threads():
    X = _table(n=3000)
    before = faiss.omp_get_max_threads()
    _neighbors._search(X, X, 6, drop_self=True)  # one block: runs on the calling thread
    assert faiss.omp_get_max_threads() == before


def test_a_worker_error_reaches_the_caller(monkeypatch):
    def boom(r0: int, r1: int) -> None:
        raise RuntimeError(f"block {r0}:{r1}")

    monkeypatch.setattr(_neighbors, "MAX_THREADS", 2)
    with pytest.raises(RuntimeError, match="block"):
        _neighbors._map_blocks(faiss, boom, 3 * _neighbors.SEARCH_BLOCK)


@pytest.mark.parametrize("n_values", [2, 7, 1500])
def test_row_majority_matches_unique_per_row(n_values):
    labels = np.random.default_rng(n_values).integers(0, n_values, size=(400, 20))
    major, count = _row_majority(labels)
    for row, m, c in zip(labels, major, count):
        values, counts = np.unique(row, return_counts=True)
        assert m == values[np.argmax(counts)] and c == counts.max()  # ties: the smallest label, as before


def test_query_path_reuses_the_index_and_equals_a_fresh_search(monkeypatch):
    from poisonguard.detectors._memo import BoundedMemo

    ref, query = _table(seed=2), _table(n=5000, seed=3)
    ref.flags.writeable = False
    _neighbors.self_neighbours(ref, 10)  # the fit: builds and keeps the index over ref
    built = []
    orig_kmeans = faiss.Kmeans

    def counting_kmeans(*args, **kwargs):
        built.append(1)
        return orig_kmeans(*args, **kwargs)

    monkeypatch.setattr(faiss, "Kmeans", counting_kmeans)
    shared = _neighbors.query_neighbours(ref, query, 10)
    assert not built  # the fit's index answered
    assert _neighbors.query_neighbours(ref, query, 5).indices.tolist() == shared.indices[:, :5].tolist()
    # a fresh search (empty memos) gives the same graph
    monkeypatch.setattr(_neighbors, "_memo", BoundedMemo(2))
    monkeypatch.setattr(_neighbors, "_query_memo", BoundedMemo(1))
    monkeypatch.setattr(_neighbors, "_index_memo", BoundedMemo(1))
    fresh = _neighbors.query_neighbours(ref, query, 10)
    assert built  # this time the index was rebuilt
    np.testing.assert_array_equal(fresh.indices, shared.indices)
    np.testing.assert_array_equal(fresh.distances, shared.distances)
    exact = faiss.IndexFlatL2(ref.shape[1])
    exact.add(ref)
    _, truth = exact.search(query[:300], 10)
    recall = np.mean([len(set(t.tolist()) & set(f.tolist())) / 10 for t, f in zip(truth, fresh.indices[:300])])
    assert recall >= 0.9, recall
