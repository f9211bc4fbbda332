"""The clean sweep's break rule and its pairs (benchmarks/bench_clean_sweep.py)."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_clean_sweep.py"


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("bench_clean_sweep", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_clean_sweep", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_more_than_one_percent_of_rows_breaks(sweep):
    assert sweep.breaks(1000, 10, 0.0, 0) == []
    assert sweep.breaks(1000, 11, 0.0, 0) == ["1.10% of rows flagged"]


def test_class_damage_breaks_above_five_percent_and_one_row(sweep):
    # one row of a class of 20 is 5%: any rule that flags at all can take it
    assert sweep.breaks(10_000, 1, 1 / 20, 1) == []
    assert sweep.breaks(10_000, 1, 1 / 10, 1) == []
    assert sweep.breaks(10_000, 2, 2 / 20, 2) == ["class damage 10.0%"]
    assert sweep.breaks(100, 2, 2 / 20, 2) == ["2.00% of rows flagged", "class damage 10.0%"]


def test_pairs_are_unique_and_read_by_no_other_benchmark(sweep):
    names = [p.name for p in sweep.PAIRS]
    assert len(names) == len(set(names)) >= 30
    # the (table, label) pairs other benchmarks read; none may come back here
    taken = {"sm/randhie:idp", "sm/randhie:hlthp", "sm/randhie:hlthg", "sm/fair:religious", "sm/fair:rate_marriage",
             "sm/anes96:PID", "sm/spector:GRADE", "sm/modechoice:mode", "sm/modechoice:choice", "sm/ccard:OWNRENT",
             "sm/heart:censors", "sm/cpunish:SOUTH", "vega/iris:species", "vega/cars:Origin",
             "vega/seattle-weather:weather", "vega/barley:site"}
    assert not taken & set(names)


def test_a_failed_scan_is_a_failed_row(sweep, monkeypatch):
    def boom():
        raise RuntimeError("no table")

    monkeypatch.setattr(sweep, "PAIRS", (sweep.Pair("x/broken:label", boom),))
    monkeypatch.setattr(sweep, "to_markdown", lambda rows, meta: "")
    rc = sweep.main(["--out-dir", tempfile.mkdtemp()])
    assert rc == 1
