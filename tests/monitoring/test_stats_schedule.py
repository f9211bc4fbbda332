"""PSI and the presence tests on arrays; the schedule helpers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from poisonguard.errors import InputError
from poisonguard.monitoring import DEFAULT_CRON, cron_line, parse_duration, psi, run_loop
from poisonguard.monitoring._stats import class_share_tests, probe_test


def test_psi_zero_on_identical_and_grows_with_shift():
    base = np.array([100, 200, 300, 400])
    assert psi(base, base * 3) == pytest.approx(0.0, abs=1e-12)
    small, large = psi(base, [110, 200, 300, 390]), psi(base, [400, 300, 200, 100])
    assert 0 < small < 0.01 < 0.2 < large
    assert np.isfinite(psi(base, [0, 0, 0, 10]))  # an empty bin is floored, not infinite


def test_share_test_matches_scipy_binomial_and_decides():
    base = np.full(4, 0.25)
    tests = class_share_tests(["a", "b", "c", "d"], base, np.array([250, 250, 250, 450]), alpha=0.001,
                              min_increase=0.05)
    d = tests[3]
    assert d.p_value == pytest.approx(stats.binomtest(450, 1200, 0.25, alternative="greater").pvalue)
    assert d.present and d.threshold == pytest.approx(0.001 / 4)
    assert not any(t.present for t in tests[:3])
    # significant but small: no decision without the effect size
    tiny = class_share_tests(["a", "b"], np.array([0.5, 0.5]), np.array([49_000, 51_000]), alpha=0.001,
                             min_increase=0.05)
    assert tiny[1].p_value < 1e-9 and not tiny[1].present


def test_probe_test_decision():
    expected = np.array([0.5, 0.5, 0.0])
    pred = np.array([2] * 80 + [0] * 10 + [1] * 10)
    t = probe_test("trig", ["a", "b", "c"], expected, pred, alpha=0.001, min_excess=0.2, min_rows=30)
    assert t.present and t.statistic == pytest.approx(0.8) and "predicted c" in t.detail
    clean = np.array([0] * 50 + [1] * 50)
    assert not probe_test("trig", ["a", "b", "c"], expected, clean, alpha=0.001, min_excess=0.2, min_rows=30).present
    few = probe_test("trig", ["a", "b", "c"], expected, pred[:10], alpha=0.001, min_excess=0.2, min_rows=30)
    assert not few.present and "need 30" in few.detail


def test_durations():
    assert parse_duration("1d") == 86400 and parse_duration("90m") == 5400 and parse_duration(30) == 30
    for bad in ("soon", "-1h", "0s", ""):
        with pytest.raises(InputError):
            parse_duration(bad)


def test_cron_line():
    line = cron_line("m x", executable="/usr/bin/poisonguard", config="/etc/m.toml")
    assert DEFAULT_CRON == "0 2 * * *"
    assert line == ("0 2 * * * /usr/bin/poisonguard monitor check --model 'm x' --window 1d --config /etc/m.toml "
                    "# poisonguard-monitor:m x")
    with pytest.raises(InputError):
        cron_line("m", cron="0 2 * *")


def test_run_loop_keeps_going_after_a_failure():
    calls, slept = [], []

    def step() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("store down")

    runs = run_loop(step, every=60, iterations=3, sleep=slept.append)
    assert [r.ok for r in runs] == [True, False, True] and "store down" in runs[1].error
    assert len(slept) == 2 and all(0 <= s <= 60 for s in slept)
