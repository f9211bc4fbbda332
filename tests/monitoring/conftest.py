"""Fixtures of the monitoring tests: a store, a recording alert channel and a monitor with a baseline."""

from __future__ import annotations

import pytest
from monitor_traffic import traffic

from poisonguard.monitoring import Monitor, MonitorConfig
from poisonguard.store import open_store


@pytest.fixture
def store(tmp_path):
    st = open_store(tmp_path / "mon.db", create=True)
    yield st
    st.dispose()


class Recorder:
    """An alert channel that remembers what it was sent."""

    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[list[str]] = []

    def send(self, model, alerts, context) -> None:  # noqa: ANN001
        self.sent.append([a.rule for a in alerts])


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def monitor(store, recorder) -> Monitor:
    """A monitor with a baseline from 8000 validation rows (recall 0.9 everywhere)."""
    mon = Monitor("clf", store=store, config=MonitorConfig(), channels=[recorder])
    val = traffic(8000, seed=1).rename(columns={"prediction": "pred"})
    mon.record_baseline(val, label="label", pred="pred", conf="confidence", features=["f0", "f1", "colour"])
    return mon
