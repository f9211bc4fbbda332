"""The label presence test's null follows the noise channel the label detectors inverted (issue 9)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from poisonguard.attacks import flip_labels
from poisonguard.datasets import load_dataset
from poisonguard.scan import scan
from poisonguard.scan._label_rules import LABEL_CAP, LABEL_FDR, NULL_SHARE, label_presence, null_share

from detectors._table_helpers import rdataset


def test_null_share_is_the_uniform_observed_share_below_the_line():
    assert null_share(0.0, 2) == pytest.approx(NULL_SHARE)
    # more noise assumed -> more of the observed range maps to P ~ 0 -> a larger natural share
    shares = [null_share(r, 2) for r in (0.0, 0.02, 0.04, 0.1)]
    assert shares == sorted(shares) and shares[-1] < 0.3
    # the same derivation by simulation: a uniform observed share q over the doubtful range,
    # through the inverse channel the detectors apply
    r, k = 0.04, 3
    c, s = r / (k - 1), 1 - r - r / (k - 1)
    q = np.random.default_rng(0).uniform(0.0, c + LABEL_CAP * s, 200_000)
    p = np.clip((q - c) / s, 0.0, 1.0)
    assert (p <= LABEL_FDR).mean() == pytest.approx(null_share(r, k), abs=0.005)


def test_a_pocket_of_one_in_twenty_is_ordinary_where_the_channel_assumes_noise():
    # a class whose 190 doubtful rows hold 38 at P <= LABEL_FDR (Stat2Data's Titanic survivors)
    rng = np.random.default_rng(1)
    p = np.r_[rng.uniform(0.9, 1.0, 260), rng.uniform(0.0, LABEL_FDR, 38), rng.uniform(LABEL_FDR, LABEL_CAP, 152)]
    y = np.zeros(p.size, dtype=int)
    assert label_presence(p, y, noise_rate=0.0)[0].poisoned
    assert not label_presence(p, y, noise_rate=0.0425)[0].poisoned
    # a mode of flips at 0 is still one
    flips = np.r_[p, np.zeros(30)]
    assert label_presence(flips, np.zeros(flips.size, dtype=int), noise_rate=0.0425)[0].poisoned


def test_clean_titanic_keeps_its_third_class_survivors():
    frame = rdataset("Stat2Data/Titanic", "Survived")
    r = scan(frame, label="label", random_state=0)
    survived = (frame["label"] == "1").to_numpy()
    assert r.flagged.mean() <= 0.01 and r.flagged[survived].mean() <= 0.05  # 38 of 450 before


def test_flips_on_a_real_table_are_still_flagged():
    ds = load_dataset("breast_cancer")
    pt = flip_labels(ds.frame, "label", 0.05, seed=0)
    r = scan(pt.frame, label="label", random_state=0)
    assert roc_auc_score(pt.mask, r.suspicion) >= 0.99
    assert r.flagged[pt.mask].mean() >= 0.7 and pt.mask[r.flagged].mean() >= 0.9
