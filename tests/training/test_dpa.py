"""DPA: partition hashing, the exact radius, and the certificate under real poisoning."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonguard.errors import InputError
from poisonguard.training import (
    CertifiedSettings,
    TrainSettings,
    assign_partitions,
    certify,
    dpa_radius,
    load_model,
    row_hashes,
    save_model,
    train_model,
)

FEATS = [f"px{i}" for i in range(64)]


@pytest.mark.parametrize(
    "counts,pred,radius",
    [
        ([5, 5, 0], 0, 0),   # tie won by the smaller index: one change flips it
        ([4, 5], 1, 0),      # 5 vs 4, and the loser 0 wins ties: 5-4-1 = 0
        ([3, 6], 1, 1),
        ([6, 3], 0, 1),
        ([7, 3, 3], 0, 2),
        ([3, 3, 7], 2, 1),   # floor((7-3-1)/2)
        ([0, 10, 0], 1, 4),  # floor((10-0-1)/2), class 0 is smaller
        ([10, 0, 0], 0, 5),
    ],
)
def test_radius_by_hand(counts, pred, radius):
    p, r, _ = dpa_radius(np.array([counts]))
    assert (p[0], r[0]) == (pred, radius)


def _flips_within(counts: tuple[int, ...], budget: int) -> bool:
    """Brute force: can ``budget`` single-vote changes (any vote to any class, abstain
    included) change the winner (argmax, ties to the smaller index)?"""
    counts = np.array(counts)
    c0 = int(np.argmax(counts))
    frontier = {tuple(counts)}
    for _ in range(budget):
        nxt = set()
        for state in frontier:
            s = np.array(state)
            for a, b in itertools.product(range(-1, len(s)), repeat=2):
                if a == b or (a >= 0 and s[a] == 0):
                    continue
                t = s.copy()
                if a >= 0:
                    t[a] -= 1
                if b >= 0:
                    t[b] += 1
                if int(np.argmax(t)) != c0:
                    return True
                nxt.add(tuple(t))
        frontier = nxt
    return False


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=2, max_size=4))
def test_radius_is_exact_against_brute_force(counts):
    _, r, _ = dpa_radius(np.array([counts]))
    r = int(r[0])
    assert not _flips_within(tuple(counts), r)  # sound
    assert _flips_within(tuple(counts), r + 1)  # tight


def test_partitions_depend_only_on_a_rows_features(digits_small):
    df = digits_small.iloc[:200].reset_index(drop=True)
    parts = assign_partitions(row_hashes(df, FEATS), 7)
    extra = df.iloc[:3].copy()
    extra["px0"] = extra["px0"] + 0.5
    grown = pd.concat([extra, df], ignore_index=True)  # inserted rows in front
    parts2 = assign_partitions(row_hashes(grown, FEATS), 7)
    np.testing.assert_array_equal(parts2[3:], parts)
    relabelled = df.assign(label=(df["label"] + 1) % 10)
    np.testing.assert_array_equal(assign_partitions(row_hashes(relabelled, FEATS), 7), parts)
    as_float = df.astype({c: float for c in FEATS})
    np.testing.assert_array_equal(assign_partitions(row_hashes(as_float, FEATS), 7), parts)
    assert np.bincount(parts, minlength=7).min() > 10


def test_dpa_trains_saves_and_certifies(tmp_path, digits_small):
    s = TrainSettings(model="logreg", certified=CertifiedSettings(partitions=5))
    m = train_model(digits_small, label="label", settings=s)
    assert m.kind == "dpa" and len(m.members) == 5
    cert = m.metadata["certified"]
    assert cert["partitions"] == 5 and "Levine" in cert["method"]
    save_model(m, tmp_path / "m")
    m2 = load_model(tmp_path / "m")
    res = certify(m2, digits_small)
    assert list(res.rows.columns[:5]) == ["prediction", "radius", "votes", "runner_up", "runner_up_votes"]
    assert (res.rows["radius"] <= 2).all()  # K=5: at most floor(5/2)
    assert res.accuracy_at(0) > 0.85
    acc = res.curve["certified_accuracy"].to_numpy()
    assert (np.diff(acc) <= 0).all()
    paths = res.write(tmp_path / "cert")
    assert paths["plot"].stat().st_size > 1000
    np.testing.assert_array_equal(m2.predict(digits_small), m.predict(digits_small))


def test_certify_refuses_a_plain_model(digits_small):
    m = train_model(digits_small, label="label")
    with pytest.raises(InputError, match="--certified"):
        certify(m, digits_small)


def test_dpa_validation_split_is_content_based(digits_small):
    s = TrainSettings(model="logreg", certified=CertifiedSettings(partitions=5), val_fraction=0.2)
    m = train_model(digits_small, label="label", settings=s)
    assert 0.1 < m.metadata["n_val"] / len(digits_small) < 0.3
    assert "validation_certified_accuracy" in m.metadata["certified"]


# ----------------------------------------------------------------------------- the certificate, attacked

K = 9
SETTINGS = TrainSettings(model="tree", val_fraction=0.0, certified=CertifiedSettings(partitions=K))


def _crafted(x: pd.Series, label: object, partition: int, used: set) -> pd.DataFrame:
    """A copy of test row ``x`` labelled ``label`` whose hash lands in ``partition``.

    The feature change is 1e-12, below float32 resolution, so the fully grown tree
    of that partition sees the test point itself with the attacker's label.
    """
    for k in range(1, 100_000):
        row = x.astype(float).copy()
        row[FEATS[0]] = row[FEATS[0]] + k * 1e-12
        frame = row.to_frame().T
        h = row_hashes(frame, FEATS)[0]
        if k not in used and assign_partitions([h], K)[0] == partition:
            used.add(k)
            frame["label"] = label
            return frame
    raise AssertionError("no hash landed in the partition")


def _attack(train: pd.DataFrame, model, x: pd.Series, budget: int) -> pd.DataFrame:
    """Insert ``budget`` rows, each in a different partition that votes for the winner,
    labelled with the runner-up that attains the radius."""
    xf = x.to_frame().T
    counts = model.vote_counts(xf)
    pred, _, runner = dpa_radius(counts)
    votes = np.array([mb.vote(xf, len(model.classes))[0] for mb in model.members])
    targets = np.flatnonzero(votes == pred[0])[:budget]
    used: set = set()
    rows = [_crafted(x, model.classes[runner[0]], int(j), used) for j in targets]
    return pd.concat([train, *rows], ignore_index=True)


def test_certificate_survives_worst_case_poisoning_and_is_tight(digits_small):
    train = digits_small.iloc[:500].reset_index(drop=True)
    test = digits_small.iloc[500:].reset_index(drop=True)
    model = train_model(train, label="label", settings=SETTINGS)
    res = certify(model, test)
    rng = np.random.default_rng(0)
    picked = rng.choice(len(test), size=5, replace=False)
    flipped_beyond = 0
    for i in picked:
        x = test.loc[i, FEATS]
        r = int(res.rows.loc[i, "radius"])
        before = res.rows.loc[i, "prediction"]
        if r > 0:
            m_r = train_model(_attack(train, model, x, r), label="label", settings=SETTINGS)
            assert m_r.predict(x.to_frame().T)[0] == before, f"row {i}: radius {r} did not hold"
        m_r1 = train_model(_attack(train, model, x, r + 1), label="label", settings=SETTINGS)
        flipped_beyond += int(m_r1.predict(x.to_frame().T)[0] != before)
    assert flipped_beyond >= 1  # radius + 1 changes can flip: the test can fail
