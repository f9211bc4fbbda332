"""DP-SGD: settings validation and the privacy accounting promise."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poisonguard.errors import InputError
from poisonguard.training import DPSettings, TrainSettings, load_model, save_model, train_model, validate_settings

pytestmark = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")

DP = TrainSettings(model="logreg", epochs=2, batch_size=64, dp=DPSettings(epsilon=2.0, delta=1e-5))


@pytest.mark.parametrize(
    "change,match",
    [
        ({"dp": DPSettings(epsilon=0.0)}, "--epsilon must be a positive"),
        ({"dp": DPSettings(epsilon=-1.0)}, "--epsilon must be a positive"),
        ({"dp": DPSettings(epsilon=1.0, noise_multiplier=1.0)}, "not both"),
        ({"dp": DPSettings()}, "needs a privacy target"),
        ({"dp": DPSettings(epsilon=1.0, delta=0.01)}, "not below 1/n"),
        ({"dp": DPSettings(epsilon=1.0, delta=0.0)}, r"--delta must be in \(0, 1\)"),
        ({"dp": DPSettings(epsilon=1.0, max_grad_norm=0.0)}, "--max-grad-norm must be positive"),
        ({"dp": DPSettings(epsilon=1.0, accountant="gdp")}, "--accountant must be one of rdp, prv"),
        ({"batch_size": 1000}, "larger than the 300 training rows"),
        ({"batch_size": 300}, "sampling rate 1"),
        ({"model": "gbdt"}, "--dp trains torch models"),
        ({"certified": __import__("poisonguard.training", fromlist=["x"]).CertifiedSettings(5)}, "cannot be combined"),
    ],
)
def test_invalid_dp_settings_are_rejected(change, match):
    with pytest.raises(InputError, match=match):
        validate_settings(dataclasses.replace(DP, **change), n_train=300)


def test_all_problems_are_reported_at_once():
    s = dataclasses.replace(DP, model="gbdt", dp=DPSettings(epsilon=-1, delta=0.5))
    with pytest.raises(InputError) as exc:
        validate_settings(s, n_train=100)
    msg = str(exc.value)
    assert "--epsilon" in msg and "--delta" in msg and "--dp trains torch" in msg


def test_delta_is_checked_against_the_training_rows(blobs):
    # 400 rows, 320 after the split: 1/320 = 0.003125
    s = dataclasses.replace(DP, dp=DPSettings(epsilon=1.0, delta=0.004))
    with pytest.raises(InputError, match="1/320"):
        train_model(blobs, label="label", settings=s)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_dp_training_records_the_spent_epsilon(tmp_path, blobs, accountant):
    s = dataclasses.replace(DP, dp=DPSettings(epsilon=2.0, delta=1e-4, accountant=accountant))
    m = train_model(blobs, label="label", settings=s)
    p = m.metadata["privacy"]
    assert m.kind == "torch"
    assert p["accountant"] == accountant
    assert 0 < p["epsilon_spent"] <= 2.0
    assert p["noise_multiplier"] > 0 and p["steps"] > 0
    assert m.metadata["metrics"]["accuracy"] > 0.4  # 3 classes: better than chance
    save_model(m, tmp_path / "m")
    m2 = load_model(tmp_path / "m")
    assert m2.metadata["privacy"]["epsilon_spent"] == p["epsilon_spent"]
    assert (m2.predict(blobs) == m.predict(blobs)).all()


def test_noise_multiplier_reports_epsilon(blobs):
    s = dataclasses.replace(DP, model="mlp", hidden=(8,), dp=DPSettings(noise_multiplier=1.2, delta=1e-4))
    m = train_model(blobs, label="label", settings=s)
    p = m.metadata["privacy"]
    assert p["target_epsilon"] is None and p["noise_multiplier"] == pytest.approx(1.2)
    assert p["epsilon_spent"] > 0


@pytest.mark.slow  # Opacus searches a long way before giving up
def test_unreachable_budget_is_an_input_error(blobs):
    s = dataclasses.replace(DP, epochs=50, batch_size=256, dp=DPSettings(epsilon=1e-3, delta=1e-4))
    with pytest.raises(InputError, match="cannot reach epsilon"):
        train_model(blobs, label="label", settings=s)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    epsilon=st.floats(0.3, 10.0),
    batch_size=st.sampled_from([16, 50, 128]),
    epochs=st.integers(1, 3),
    accountant=st.sampled_from(["rdp", "prv"]),
)
def test_spent_epsilon_never_exceeds_the_target(blobs, epsilon, batch_size, epochs, accountant):
    s = TrainSettings(
        model="logreg", epochs=epochs, batch_size=batch_size, val_fraction=0.0,
        dp=DPSettings(epsilon=epsilon, delta=1e-4, accountant=accountant),
    )
    m = train_model(blobs.iloc[:200], label="label", settings=s)
    assert m.metadata["privacy"]["epsilon_spent"] <= epsilon
