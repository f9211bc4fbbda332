"""The summarise step: the encoder and class codes a single machine would compute, from per-partition summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.distributed._scan import _class_totals
from poisonguard.scan._scan import sample_allocation
from poisonguard.distributed._stats import build_encoder, check_roles, label_codes, partition_stats, reduce_stats
from poisonguard.encoding import TableEncoder
from poisonguard.errors import DataError, InputError


def _mixed(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "x": x,
        "big": rng.normal(0, 1, n) * 1e200,  # overflow-prone squares
        "flag": rng.random(n) < 0.3,
        "colour": rng.choice(["red", "green", "blue", None], n),
        "city": [f"c{v}" for v in rng.integers(0, 60, n)],  # frequency-encoded
        "label": rng.choice(["cat", "dog", "eel"], n),
    })


def _partitions(tmp_path, frame: pd.DataFrame, k: int) -> list[str]:
    paths = []
    for i, idx in enumerate(np.array_split(np.arange(len(frame)), k)):
        p = tmp_path / f"p{i}.parquet"
        frame.iloc[idx].to_parquet(p, index=False)
        paths.append(str(p))
    return paths


def test_encoder_from_partition_summaries_matches_one_fit_on_the_whole_table(tmp_path) -> None:
    frame = _mixed(3000, 0)
    paths = _partitions(tmp_path, frame, 4)
    roles = check_roles(list(frame.columns), label="label", id_col=None, source_col=None, features=None, where="t")
    stats = reduce_stats([partition_stats(i, p, roles, 0) for i, p in enumerate(paths)], roles, where="t")
    enc = build_encoder(stats)
    ref = TableEncoder().fit(frame, list(roles.features))
    assert sorted(map(tuple, [(c, k) for c, k, _ in enc.plan_])) == sorted((c, k) for c, k, _ in ref.plan_)
    # the imputation median is estimated from subsamples; no value is missing outside column x
    cols = [j for j, (c, _, _) in enumerate(ref.plan_) if c != "x"]
    got = enc.transform(frame)
    want = ref.transform(frame)
    def key(c, k, a):  # the one-hot category names a column; numeric and frequency columns are one per input
        return (c, k, a if k == "onehot" else None)

    mine = [key(*p) for p in enc.plan_]
    order = [mine.index(key(*p)) for p in ref.plan_]
    np.testing.assert_allclose(got[:, order][:, cols], want[:, cols], rtol=1e-9, atol=1e-9)
    assert stats.classes.tolist() == ["cat", "dog", "eel"]
    np.testing.assert_array_equal(label_codes(frame["label"], stats.classes, as_text=False),
                                  np.unique(frame["label"], return_inverse=True)[1])
    assert stats.rows == (750, 750, 750, 750) and stats.class_counts.sum() == 3000


def test_single_class_and_infinite_values_are_data_errors(tmp_path) -> None:
    frame = _mixed(200, 1)
    frame["label"] = "cat"
    roles = check_roles(list(frame.columns), label="label", id_col=None, source_col=None, features=None, where="t")
    paths = _partitions(tmp_path, frame, 2)
    with pytest.raises(DataError, match="single class"):
        reduce_stats([partition_stats(i, p, roles, 0) for i, p in enumerate(paths)], roles, where="t")
    frame = _mixed(200, 1)
    frame.loc[150, "x"] = np.inf
    paths = _partitions(tmp_path, frame, 2)
    with pytest.raises(DataError, match="'x' has 1 infinite value"):
        reduce_stats([partition_stats(i, p, roles, 0) for i, p in enumerate(paths)], roles, where="t")


def test_roles_are_checked_with_the_local_messages() -> None:
    with pytest.raises(InputError, match="label.*'nope' not found"):
        check_roles(["a", "b"], label="nope", id_col=None, source_col=None, features=None, where="t")
    with pytest.raises(InputError, match="two roles"):
        check_roles(["a", "b"], label="a", id_col="a", source_col=None, features=None, where="t")
    with pytest.raises(InputError, match="clash with the output columns"):
        check_roles(["a", "reason"], label="a", id_col=None, source_col=None, features=None, where="t")


def test_sample_allocation_keeps_class_shares_and_every_class(tmp_path) -> None:
    frame = _mixed(4000, 2)
    frame.loc[:3, "label"] = "rare"  # 4 rows of a rare class, all in the first partition
    roles = check_roles(list(frame.columns), label="label", id_col=None, source_col=None, features=None, where="t")
    paths = _partitions(tmp_path, frame, 3)
    stats = reduce_stats([partition_stats(i, p, roles, 0) for i, p in enumerate(paths)], roles, where="t")
    totals = _class_totals(stats)
    per_class = sample_allocation(totals, 400)
    assert (per_class <= totals).all()
    share = totals / 4000
    assert abs(per_class.sum() - 400) <= len(per_class)
    np.testing.assert_allclose(per_class / per_class.sum(), share, atol=0.01)
    assert per_class[stats.classes.tolist().index("rare")] >= 2
    assert (sample_allocation(totals, 10_000) == totals).all()  # a small table is sampled whole
