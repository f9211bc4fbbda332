"""The scan's memory behaviour: a sampled scan never holds the whole encoded matrix, scores
the other rows block by block with the same result, and keeps no neighbour graph after it."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from poisonguard.attacks import flip_labels
from poisonguard.datasets import load_dataset
from poisonguard.detectors import _neighbors
from poisonguard.encoding import TableEncoder
from poisonguard.scan import scan

_scan = sys.modules["poisonguard.scan._scan"]  # the module (``poisonguard.scan`` names the function too)
DETECTORS = "knn_label,duplicates,confident,ecod"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """3,000 rows with 5% flips, a categorical column and missing values (the encoder's other paths)."""
    frame = flip_labels(load_dataset("synthetic", n_rows=3000, seed=4).frame, "label", 0.05, seed=4).frame
    rng = np.random.default_rng(4)
    frame["colour"] = rng.choice(["red", "green", "blue"], len(frame))
    frame.loc[::13, frame.columns[0]] = np.nan
    return frame


def test_a_sampled_scan_encodes_rows_as_the_whole_matrix_holds_them(table):
    prep = _scan._prepare(table, label="label", id_col=None, source_col=None, features=None, detectors=DETECTORS,
                          settings=None, contamination="auto", top=None, random_state=0, candidates=None,
                          fit_rows=1000)
    assert prep.sample is not None and prep.X is None  # the whole matrix is never built
    whole = TableEncoder().fit_transform(table, prep.table.features, dtype=np.float32)
    rows = np.sort(np.random.default_rng(0).choice(len(table), 700, replace=False))
    got = prep.encode_rows(rows)
    assert got.dtype == np.float32 and not got.flags.writeable
    np.testing.assert_array_equal(got, whole[rows])
    np.testing.assert_array_equal(_scan._RowEncoder(prep)[rows[::-1]], whole[rows[::-1]])


def _results(frame: pd.DataFrame, **kwargs):
    # top=150: rows are flagged and explained whatever the presence tests decide on a small table
    return scan(frame, label="label", detectors=DETECTORS, fit_rows=1000, top=150, **kwargs)


def test_scoring_block_by_block_gives_the_scores_of_one_block(table, monkeypatch):
    monkeypatch.setattr(_scan, "SCORE_BLOCK", 10**9)
    whole = _results(table)
    sizes: list[int] = []
    real = _neighbors.query_neighbours

    def spy(ref, query, k):
        sizes.append(query.shape[0])
        return real(ref, query, k)

    monkeypatch.setattr(_scan, "SCORE_BLOCK", 333)
    monkeypatch.setattr("poisonguard.detectors._knn_label.query_neighbours", spy)
    monkeypatch.setattr("poisonguard.detectors._duplicates.query_neighbours", spy)
    blocks = _results(table)
    assert sizes and max(sizes) <= 333  # the neighbour detectors saw one block at a time
    assert whole.status == blocks.status == "ok"
    # equal up to the last bits of a BLAS product over a different group of rows (ecod's
    # weighted sum); SCORE_BLOCK is a multiple of ecod's block, where they are bit-identical
    pd.testing.assert_frame_equal(whole.detector_scores, blocks.detector_scores, check_exact=False, rtol=1e-12)
    np.testing.assert_allclose(whole.suspicion, blocks.suspicion, rtol=1e-12)
    np.testing.assert_array_equal(whole.flagged, blocks.flagged)
    assert whole.n_flagged == 150 and whole.row_detectors == blocks.row_detectors


def test_no_neighbour_graph_or_index_outlives_the_scan(table):
    result = _results(table)
    assert result.status == "ok" and any(result.reasons)  # the neighbour detectors explained rows
    for memo in (_neighbors._memo, _neighbors._query_memo, _neighbors._index_memo):
        assert not memo._items


def test_a_detector_failing_on_a_later_block_fails_the_scan(table, monkeypatch):
    from poisonguard.detectors import ECODDetector

    real = ECODDetector._score
    calls = []

    def flaky(self, X, y, is_fit_data):
        calls.append(is_fit_data)
        if len(calls) == 3:  # the fit rows, the first block, then a crash
            raise RuntimeError("boom")
        return real(self, X, y, is_fit_data)

    monkeypatch.setattr(_scan, "SCORE_BLOCK", 800)
    monkeypatch.setattr(ECODDetector, "_score", flaky)
    result = _results(table, strict=False)
    assert result.status == "failed" and "boom" in result.failures["ecod"]
    assert "ecod" not in result.detector_scores.columns
