"""``confident`` with ``C="auto"`` chooses its regularisation per table by out-of-fold likelihood (small tables)."""

from __future__ import annotations

import numpy as np
import pytest

from poisonguard.bench._metrics import auroc
from poisonguard.detectors import get_detector
from poisonguard.detectors._confident import C_GRID, C_START, SELECT_ROWS, channel_log_likelihood, choose_C
from poisonguard.errors import ConfigError


def _flipped_table(seed: int, *, n: int = 300, d: int = 4, k: int = 3, rate: float = 0.05):
    """A small table whose classes a linear model separates well, with ``rate`` of its labels flipped."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = np.argmax(X @ (3.0 * rng.normal(size=(d, k))) + rng.gumbel(size=(n, k)), axis=1)
    flipped = rng.choice(n, size=int(rate * n), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, k, size=flipped.size)) % k
    mask = np.zeros(n, dtype=bool)
    mask[flipped] = True
    return X, y, mask


def test_auto_C_follows_the_out_of_fold_likelihood_and_ranks_flips_better():
    # A fixed C=0.1 flattens the probabilities of a small table the features explain well;
    # the out-of-fold likelihood of the table's own labels asks for less regularisation,
    # and the flipped rows then stand out further.
    X, y, mask = _flipped_table(2)
    auto = get_detector("confident", C="auto").fit(X, y)
    fixed = get_detector("confident", C=C_START).fit(X, y)
    tried = auto.C_choice_.log_likelihood
    assert auto.C_ == max(tried, key=tried.get) > C_START
    assert auroc(auto.score_samples(X, y), mask) >= auroc(fixed.score_samples(X, y), mask) + 0.01
    # the kept out-of-fold probabilities are the chosen value's, scored as the search scored them
    assert channel_log_likelihood(auto.oof_proba_, y, auto.noise_rate_) == pytest.approx(tried[auto.C_])


def test_the_default_keeps_the_fixed_C():
    X, y, _ = _flipped_table(1, n=120)
    det = get_detector("confident").fit(X, y)
    assert det.C_ == C_START and det.C_choice_ is None


def test_a_large_table_keeps_the_start_value_without_a_search():
    rng = np.random.default_rng(0)
    n = SELECT_ROWS + 1
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] > 0).astype(int)
    choice = choose_C(X, y, 2, scale=1.0, n_folds=5, noise_rate=0.1, random_state=0, max_fit_rows=20000)
    assert choice.C == C_START and choice.log_likelihood == {} and choice.proba is None


def test_choose_C_stays_on_the_grid_and_searches_from_the_start():
    X, y, _ = _flipped_table(0, n=200)
    choice = choose_C(X, y, 3, scale=1.0, n_folds=5, noise_rate=0.1, random_state=0, max_fit_rows=20000)
    assert set(choice.log_likelihood) <= set(C_GRID) and C_START in choice.log_likelihood
    assert choice.C in choice.log_likelihood
    assert choice.proba is not None and choice.proba.shape == (200, 3)


@pytest.mark.parametrize("bad", ["best", 0.0, -1.0])
def test_bad_C_is_a_config_error(bad):
    X, y, _ = _flipped_table(0, n=60)
    with pytest.raises(ConfigError, match="C must be > 0 or 'auto'"):
        get_detector("confident", C=bad).fit(X, y)
