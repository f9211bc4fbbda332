"""A quick benchmark run end to end, with the real scan engine."""

from __future__ import annotations

import json


from poisonguard.bench import Cell, anchors_for, run_cell, run_cell_isolated
from poisonguard.cli import main


def test_quick_bench_cli(tmp_path, capsys) -> None:
    js, md = tmp_path / "scan.json", tmp_path / "scan.md"
    rc = main(["bench", "--quick", "--no-isolate", "--no-progress", "--json", str(js), "--md", str(md)])
    out = capsys.readouterr().out
    assert rc == 0
    data = json.loads(js.read_text())
    assert [r["key"] for r in data["rows"]] == ["wine/clean", "wine/flip@0.1", "wine/outlier@0.05"]
    assert all(r["status"] == "ok" for r in data["rows"])
    for r in data["rows"][1:]:
        assert set(r["anchors"]) == {a.name for a in anchors_for("scan")}  # ART anchors: backdoor bench only
    # quality floors, loose: the scan must beat chance clearly on easy cells
    assert data["rows"][1]["scan"]["auroc"] >= 0.7
    assert data["rows"][2]["scan"]["auroc"] >= 0.7
    # the clean cell: within the false-flag budget, and no class loses more than 5% of its rows
    assert data["rows"][0]["scan"]["false_flag_rate"] <= 0.01
    assert data["rows"][0]["scan"]["class_damage"] <= 0.05
    assert md.read_text() == out
    assert out.startswith("| table | attack |") and "| class damage |" in out


def test_isolated_cell_measures_memory_and_backdoor_cell_runs() -> None:
    row = run_cell_isolated(Cell("wine", "flip", 0.1, "flip", anchors=False))
    assert row["status"] == "ok", row.get("error")
    assert row["memory"]["peak_rss_mib"] >= row["memory"]["base_rss_mib"] > 0
    bd = run_cell(Cell("wine", "backdoor", 0.05, "backdoor-tabular", {"target": 0}, anchors=False))
    assert bd["status"] == "ok", bd.get("error")
    assert bd["n_poisoned"] == 9


def test_failed_scan_is_failed_not_clean(monkeypatch) -> None:
    import poisonguard

    def boom(*args, **kwargs):
        raise RuntimeError("detector exploded")

    monkeypatch.setattr(poisonguard, "scan", boom)
    row = run_cell(Cell("wine", "flip", 0.1, "flip", anchors=False))
    assert row["status"] == "failed" and "detector exploded" in row["error"]
