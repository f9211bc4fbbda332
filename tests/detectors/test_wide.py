"""Wide tables: the token search's joins are exact, trigger detectors work on 784 raw columns,
and 2048-d embeddings scan in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import roc_auc_score

import poisonguard.detectors._trigger_search as ts
from poisonguard.attacks import poison
from poisonguard.detectors import get_detector
from poisonguard.encoding import TableEncoder
from poisonguard.validation import prepare_table
from _wide_helpers import digits784, embeddings


def _encode(frame):
    table = prepare_table(frame, label="label")
    return TableEncoder().fit_transform(table.frame, table.features), table.y


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a, b))) == len(set(a)) == len(set(b))


def _set_system(seed: int) -> np.ndarray:
    """Boolean (elements x sets) with many copies, near-copies and one-element supersets."""
    rng = np.random.default_rng(seed)
    n_el, m = int(rng.integers(10, 60)), int(rng.integers(50, 300))
    B = np.zeros((n_el, m), dtype=bool)
    for j in range(m):
        if j and rng.random() < 0.5:
            B[:, j] = B[:, rng.integers(0, j)]
            for _ in range(rng.integers(0, 3)):
                B[rng.integers(0, n_el), j] ^= True
        else:
            B[rng.choice(n_el, rng.integers(3, min(25, n_el)), replace=False), j] = True
    return B[:, B.sum(axis=0) >= 3]


@pytest.mark.parametrize("seed", range(12))
def test_sparse_jaccard_joins_give_the_dense_components(seed):
    B = _set_system(seed)
    m = B.shape[1]
    Bf = B.astype(np.float32)
    inter = Bf.T @ Bf
    size = np.diag(inter)
    dense = connected_components(inter / (size[:, None] + size[None, :] - inter) >= 0.8, directed=False)[1]
    elems, sets = np.nonzero(B)
    order = np.lexsort((elems, sets))
    for join in (ts._jaccard_edges, ts._overlap_edges):
        a, b = join(sets[order], elems[order], m, 0.8)
        comp = connected_components(coo_matrix((np.ones(a.size), (a, b)), shape=(m, m)), directed=False)[1]
        assert _same_partition(dense, comp), join.__name__


@pytest.fixture(scope="module")
def wide_backdoor():
    frame = digits784(1200, seed=1)
    p = poison("backdoor", frame, label="label", rate=0.06, seed=0, target=0, trigger="patch",
               image_shape=(28, 28), trigger_options={"position": "bottom-right", "size": 3})
    X, y = _encode(p.frame)
    return X, y, np.asarray(p.mask)


def test_wide_search_is_the_dense_search(wide_backdoor, monkeypatch):
    # the sparse join is taken only above _DENSE_MAX candidates per class; forcing it
    # everywhere must not change a single token
    X, y, _ = wide_backdoor
    dense = ts._search_tokens(X, y, 10, min_count=3, max_fraction=0.5, alpha=0.01)
    monkeypatch.setattr(ts, "_DENSE_MAX", 1)
    sparse = ts._search_tokens(X, y, 10, min_count=3, max_fraction=0.5, alpha=0.01)
    assert dense.tokens == sparse.tokens and np.array_equal(dense.carries, sparse.carries)
    assert any(len(t.features) >= 2 for t in dense.tokens)  # the conjunction route ran


def test_trigger_detectors_find_a_patch_on_raw_784_columns(wide_backdoor):
    X, y, mask = wide_backdoor
    for name in ("backdoor_trigger", "backdoor_clean_label"):
        s = get_detector(name).fit(X, y).score_samples(X, y)
        assert roc_auc_score(mask, s) >= 0.99, name
        assert (s[mask] >= 0.5).mean() >= 0.9, name
        assert (s[~mask] >= 0.5).mean() <= 0.02, name


def test_trigger_detectors_stay_quiet_on_a_clean_wide_table():
    # background zeros shared by most rows of a class (the hole of a "0") are traits, not triggers
    X, y = _encode(digits784(1200, seed=2))
    for name in ("backdoor_trigger", "backdoor_clean_label"):
        det = get_detector(name).fit(X, y)
        assert (det.score_samples(X, y) >= 0.5).mean() <= 0.01, (name, det.report_["poisoned_classes"])


_SCAN_2048 = textwrap.dedent(
    """
    import json, resource, sys
    sys.path.insert(0, {helpers!r})
    import numpy as np
    import poisonguard
    from poisonguard.attacks import poison
    from _wide_helpers import embeddings
    frame = embeddings(2000, 2048, seed=0)
    assert (frame.dtypes[:-1] == np.float32).all()
    p = poison("flip", frame, label="label", rate=0.1, seed=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = poisonguard.scan(p.frame, label="label").raise_for_status()
    from sklearn.metrics import roc_auc_score
    print(json.dumps({{"status": res.status, "auroc": roc_auc_score(p.mask, res.suspicion),
                      "rss_before_mib": before // 1024,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}}))
    """
)


@pytest.mark.slow
def test_2048_d_embeddings_scan_in_bounded_memory():
    code = _SCAN_2048.format(helpers=str(Path(__file__).resolve().parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1200, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["status"] == "ok"
    assert got["auroc"] >= 0.99
    # the table is 16 MiB as float32 (33 MiB encoded); the scan may hold a few copies, not hundreds
    assert got["peak_rss_mib"] - got["rss_before_mib"] <= 1024, got
