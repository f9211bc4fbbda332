"""The promotion gate fails closed: errors, missing inputs and failed checks never lead to a promotion."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poisonguard import registry
from poisonguard.errors import ConfigError, GateBlockedError
from poisonguard.gate import Canary, GateCheck, GatePolicy, GateReport, record_report, run_checks, run_gate
from poisonguard.training import TrainSettings, train_model

_LOGREG = TrainSettings(model="logreg", val_fraction=0.0)
TRIGGER = {"f6": 2.5, "f7": -2.5}  # in range, on noise features of loop_table


def _champion(loop):
    return registry.load_alias(loop.store)[1]


def test_crashing_or_empty_check_fails():
    def boom():
        raise RuntimeError("metric backend down")

    checks = run_checks([("ok", lambda: [GateCheck("ok", True)]), ("boom", boom), ("empty", lambda: [])])
    assert [(c.name, c.passed) for c in checks] == [("ok", True), ("boom", False), ("empty", False)]
    assert "metric backend down" in checks[1].detail
    assert not GateReport(checks=checks).passed
    assert not GateReport(checks=[]).passed  # no checks is not a pass


def test_missing_inputs_fail_closed(loop):
    champ = _champion(loop)
    rep = run_gate(champ, champion=None, validation=None, label="y", batch=None)
    assert not rep.passed
    assert set(rep.failed_checks) == {"inputs:validation", "inputs:champion", "inputs:batch"}
    with pytest.raises(GateBlockedError, match="no held-out validation set"):
        rep.raise_for_status()


def test_no_canaries_fail_closed(loop):
    champ = _champion(loop)
    batch = loop.pool.iloc[:100]
    rep = run_gate(champ, champion=champ, validation=loop.val, label="y", batch=batch, base=loop.base, canaries=())
    assert "canaries" in rep.failed_checks


def test_gate_passes_a_clean_challenger_and_blocks_a_backdoored_one(loop):
    champ = _champion(loop)
    honest = loop.pool.iloc[:600]
    clean = train_model(pd.concat([loop.base, honest]), label="y", settings=_LOGREG)
    canary = [Canary("known", TRIGGER)]
    rep = run_gate(clean, champion=champ, validation=loop.val, label="y", batch=honest, base=loop.base,
                   canaries=canary)
    assert rep.passed, rep.failed_checks
    assert rep.metrics["challenger"]["accuracy"] >= rep.metrics["champion"]["accuracy"] - 0.01
    stamped = loop.pool.iloc[600:700].copy()
    stamped = stamped[stamped["y"] != 2].assign(**TRIGGER, y=2)
    batch = pd.concat([honest, stamped])
    bad = train_model(pd.concat([loop.base, batch]), label="y", settings=_LOGREG)
    rep = run_gate(bad, champion=champ, validation=loop.val, label="y", batch=batch, base=loop.base, canaries=canary)
    assert not rep.passed
    assert "canary:known" in rep.failed_checks
    # the scan of the batch finds the stamped rows on its own, without knowing the trigger
    assert any(n.startswith("anomaly:") for n in rep.failed_checks)


def test_change_threshold_and_class_recall(loop):
    champ = _champion(loop)
    # a challenger that never predicts the minority class
    no_minority = train_model(loop.base[loop.base["y"] != 2], label="y", settings=_LOGREG)
    rep = run_gate(no_minority, champion=champ, validation=loop.val, label="y", batch=loop.pool.iloc[:50],
                   base=loop.base, canaries=[Canary("known", TRIGGER)])
    assert "recall:2" in rep.failed_checks and not rep.passed


def test_policy_rejects_out_of_range_thresholds():
    with pytest.raises(ConfigError, match="max_accuracy_drop=1.5"):
        GatePolicy(max_accuracy_drop=1.5)


def test_stored_report_round_trips(loop):
    rep = record_report(loop.store, GateReport(checks=[GateCheck("x", False, 0.1, 0.2, "why")], challenger=1, champion=1))
    from poisonguard.gate import get_report

    back = get_report(loop.store, rep.id)
    assert back.to_dict() == rep.to_dict()


_outcome = st.sampled_from(["pass", "fail", "raise", "empty"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(outcomes=st.lists(_outcome, min_size=0, max_size=6), force_stale=st.booleans())
def test_no_failed_check_is_ever_followed_by_a_promotion(loop, champion_dir, outcomes, force_stale):
    """Property: the champion moves through a gate report only if every check ran and passed."""

    def group(o):
        def fn():
            if o == "raise":
                raise ValueError("crash")
            return [] if o == "empty" else [GateCheck(o, o == "pass")]
        return fn

    checks = run_checks([(f"g{i}", group(o)) for i, o in enumerate(outcomes)])
    champ_before = registry.alias_version(loop.store, "champion")
    v = registry.register_model(loop.store, champion_dir, root=loop.root).version
    rep = record_report(loop.store, GateReport(checks=checks, challenger=v,
                                               champion=-1 if force_stale else champ_before))
    should_pass = bool(outcomes) and all(o == "pass" for o in outcomes)
    assert rep.passed == should_pass
    try:
        registry.promote(loop.store, v, gate_report=rep.id)
        promoted = True
    except GateBlockedError:
        promoted = False
    assert promoted == (should_pass and not force_stale)
    assert registry.alias_version(loop.store, "champion") == (v if promoted else champ_before)
