"""backdoor_trigger's interaction search: a trigger of common values (issue 9, held-out ``p90x3``).

Three columns of few levels set to their 90th percentile (the top level) on 5% of the rows,
relabelled to the minority class: each value has hundreds of natural carriers and none is
enriched alone, but the rows carrying two of them are in the class far beyond what each
value predicts. A natural interaction of two correlated columns on a clean table is
proposed by the same search and must be rejected by the presence test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.attacks import poison
from poisonguard.detectors import BackdoorTriggerDetector
from poisonguard.detectors._trigger_search import find_enriched_tokens
from poisonguard.encoding import TableEncoder


def _ordinal_table(seed: int, *, n: int = 3000, interaction: float = 0.0) -> pd.DataFrame:
    """Eight columns of levels 1..6; the label (~28% "1") rises with x0 and x3, falls with x2.

    ``interaction``: added to the log-odds of the rows with x0 = x1 = 6, x1 being x0 +- 1
    (a natural interaction of two correlated columns).
    """
    rng = np.random.default_rng(seed)
    X = rng.integers(1, 7, size=(n, 8))
    if interaction:
        X[:, 1] = np.clip(X[:, 0] + rng.integers(-1, 2, n), 1, 6)
    z = -1.0 + 0.35 * (X[:, 0] - 3.5) - 0.3 * (X[:, 2] - 3.5) + 0.2 * (X[:, 3] - 3.5)
    z = z + interaction * ((X[:, 0] == 6) & (X[:, 1] == 6))
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return frame


def _encoded(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    X = TableEncoder().fit_transform(frame, [c for c in frame.columns if c != "label"], dtype=np.float32)
    return X, frame["label"].to_numpy().astype(np.int64)


def _stamped(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    res = poison("backdoor", _ordinal_table(seed), label="label", rate=0.05, seed=seed, target=1, trigger="tabular",
                 trigger_options={"n_trigger_features": 3, "trigger_values": "p90"})
    X, y = _encoded(res.frame)
    return X, y, np.asarray(res.mask)


@pytest.mark.parametrize("seed", [0, 1, 3, 4])
def test_a_trigger_of_three_common_values_is_found(seed):
    X, y, mask = _stamped(seed)
    det = BackdoorTriggerDetector(interactions=True).fit(X, y)
    flagged = det.score_samples(X, y) >= 0.5
    assert det.report_["poisoned_classes"] == [1]
    assert int((flagged & mask).sum()) >= 0.95 * mask.sum()
    assert int((flagged & ~mask).sum()) <= 0.01 * (~mask).sum()
    (trig,) = det.report_["triggers"]
    stamped_cols = [j for j in range(X.shape[1]) if np.unique(X[mask, j]).size == 1]
    assert trig["features"] == stamped_cols  # the three columns, joined into one conjunction


@pytest.mark.parametrize("seed", [0, 1, 3, 4])
def test_the_search_proposes_the_conjunction_and_no_single_value(seed):
    X, y, mask = _stamped(seed)
    found = find_enriched_tokens(X, y, 2, min_count=3, max_fraction=0.5, alpha=0.01, interactions=True)
    stamped_cols = tuple(j for j in range(X.shape[1]) if np.unique(X[mask, j]).size == 1)
    assert [t.features for t in found.interactions if t.label == 1] == [stamped_cols]
    (tok,) = [t for t in found.interactions if t.label == 1]
    assert tok.kind == "interaction" and tok.n_in_class >= mask.sum()
    # no stamped value is enriched on its own: the single-value search cannot see it
    assert not [t for t in found.tokens if t.label == 1 and set(t.features) <= set(stamped_cols)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_clean_table_stays_silent(seed):
    X, y = _encoded(_ordinal_table(seed))
    det = BackdoorTriggerDetector(interactions=True).fit(X, y)
    assert int((det.score_samples(X, y) >= 0.5).sum()) == 0
    assert det.report_["poisoned_classes"] == []


@pytest.mark.parametrize("seed", [0, 1, 3, 4])
def test_a_natural_interaction_is_proposed_but_not_judged_a_trigger(seed):
    # x0 = x1 = 6 raises the log-odds by 3: 300+ rows, 95% of them "1", far beyond what x0 = 6
    # or x1 = 6 alone predicts; the search proposes it, the masking test rejects it
    X, y = _encoded(_ordinal_table(seed, interaction=3.0))
    found = find_enriched_tokens(X, y, 2, min_count=3, max_fraction=0.5, alpha=0.01, interactions=True)
    assert [t.features for t in found.interactions] == [(0, 1)]
    det = BackdoorTriggerDetector(interactions=True).fit(X, y)
    assert int((det.score_samples(X, y) >= 0.5).sum()) == 0
    assert det.report_["poisoned_classes"] == []


def test_tokens_of_the_interaction_search_stay_out_of_the_shared_token_list():
    # backdoor_clean_label reads ``tokens`` and ``carries`` of the same memoised search
    X, y, _ = _stamped(0)
    found = find_enriched_tokens(X, y, 2, min_count=3, max_fraction=0.5, alpha=0.01, interactions=True)
    assert all(t.kind == "" for t in found.tokens)
    assert found.carries.shape == (X.shape[0], len(found.tokens))
    assert found.interaction_carries.shape == (X.shape[0], len(found.interactions))
    for t, col in zip(found.interactions, found.interaction_carries.T):
        assert np.array_equal(col, t.carried_by(X))


def test_a_pair_that_a_stamp_elsewhere_makes_look_interacting_is_not_flagged():
    # statsmodels modechoice (840 trips, four modes), three columns stamped at their 90th
    # percentile on 10% of the rows, relabelled mode 1. The stamp takes most rows of one
    # party size to mode 1, so 43 car trips (zero terminal time, that party size, all
    # "car") look far more "car" than the two values predict apart; masking both flips 28
    # of them. Their group has only interaction conjunctions and must pass source likeness:
    # it does not (they are car trips, not rows of another mode). Before that part: 43
    # clean rows flagged.
    sm = pytest.importorskip("statsmodels.api")
    import poisonguard

    data = sm.datasets.modechoice.load_pandas().data.drop(columns=["individual", "choice"])
    frame = data.drop(columns=["mode"]).reset_index(drop=True)
    frame["label"] = data["mode"].astype(int).to_numpy() - 1
    res = poison("backdoor", frame, label="label", rate=0.10, seed=0, target=1, trigger="tabular",
                 trigger_options={"n_trigger_features": 3, "trigger_values": "p90"})
    scan = poisonguard.scan(res.frame, label="label", detectors=["backdoor_trigger"], random_state=0,
                             settings={"backdoor_trigger": {"interactions": True}})
    s = scan.detector_scores["backdoor_trigger"].to_numpy()
    mask = np.asarray(res.mask)
    assert int((s[mask] >= 0.5).sum()) == int(mask.sum())
    assert int((s[~mask] >= 0.5).sum()) == 0


def test_the_interaction_search_is_off_by_default():
    # it flagged 42 clean rows of the held-out image_segments table: a user opts in
    X, y, mask = _stamped(0)
    assert BackdoorTriggerDetector().interactions is False
    assert int((BackdoorTriggerDetector().fit(X, y).score_samples(X, y) >= 0.5).sum()) == 0
