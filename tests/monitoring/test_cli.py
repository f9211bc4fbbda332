"""``poisonguard monitor ...`` end to end, and bad input: exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest
from monitor_traffic import DAY, T0, traffic

from poisonguard.cli import main


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    from poisonguard.cli._app import console

    monkeypatch.setattr(console, "width", 250)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POISONGUARD_DB", raising=False)
    traffic(4000, seed=1).rename(columns={"prediction": "pred"}).to_csv("val.csv", index=False)
    clean = traffic(2000, seed=2)
    clean.drop(columns="label").to_csv("day0.csv", index=False)
    clean[["id", "label"]].to_csv("labels0.csv", index=False)
    bad = traffic(2000, seed=3, recall=(0.9, 0.9, 0.6, 0.9), day=1)
    bad.drop(columns="label").to_parquet("day1.parquet", index=False)
    bad[["id", "label"]].to_csv("labels1.csv", index=False)
    return tmp_path


def _baseline() -> None:
    assert main(["monitor", "baseline", "--model", "clf", "--data", "val.csv", "--label", "label", "--pred", "pred",
                 "--conf", "confidence"]) == 0


def test_flow_baseline_log_labels_check_history_report(workdir, capsys):
    _baseline()
    assert main(["monitor", "log", "day0.csv", "--model", "clf"]) == 0
    assert main(["monitor", "labels", "labels0.csv", "--model", "clf"]) == 0
    capsys.readouterr()
    assert main(["monitor", "check", "--model", "clf", "--end", str(T0 + DAY), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["status"] == "ok" and res["n_labelled"] == 2000 and res["alerts"] == []
    assert main(["monitor", "log", "day1.parquet", "--model", "clf"]) == 0
    assert main(["monitor", "labels", "labels1.csv", "--model", "clf"]) == 0
    capsys.readouterr()
    end = pd.Timestamp(T0 + 2 * DAY, unit="s", tz="UTC").isoformat()
    assert main(["monitor", "check", "--model", "clf", "--end", end]) == 3  # an alert fired
    out = " ".join(capsys.readouterr().out.split())
    assert "ALERT [critical] metric:recall[2]:drop" in out
    assert main(["monitor", "history", "--model", "clf", "--json"]) == 0
    hist = json.loads(capsys.readouterr().out)
    assert [h["status"] for h in hist] == ["ok", "alert"]
    assert main(["monitor", "report", "--model", "clf", "--out", "r.html"]) == 0
    assert (workdir / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_unknown_model(workdir, capsys):
    assert main(["monitor", "check", "--model", "nope"]) == 2  # no store at all
    assert "unknown model 'nope'" in capsys.readouterr().err
    _baseline()
    assert main(["monitor", "check", "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "monitored models: clf" in err
    assert main(["monitor", "log", "day0.csv", "--model", "nope"]) == 2


def test_window_with_no_data(workdir, capsys):
    _baseline()
    assert main(["monitor", "log", "day0.csv", "--model", "clf"]) == 0
    assert main(["monitor", "check", "--model", "clf", "--end", "2020-01-01T00:00:00"]) == 2
    assert "no predictions logged in the window 2019-12-31T00:00:00+00:00" in capsys.readouterr().err


def test_labels_that_match_no_prediction(workdir, capsys):
    _baseline()
    assert main(["monitor", "log", "day0.csv", "--model", "clf"]) == 0
    capsys.readouterr()
    assert main(["monitor", "labels", "labels1.csv", "--model", "clf"]) == 2
    assert "none of the 2000 ids matches a logged prediction" in capsys.readouterr().err
    half = pd.concat([pd.read_csv("labels0.csv").head(10), pd.read_csv("labels1.csv").head(5)])
    half.to_csv("half.csv", index=False)
    assert main(["monitor", "labels", "half.csv", "--model", "clf"]) == 0
    assert "labelled 10 of 15" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("text, needle", [
    ("[metrics.accuracy\nmax_drop = 0.1\n", "cannot parse config"),
    ("[metrics.acuracy]\nmax_drop = 0.1\n", "unknown key(s) ['acuracy']"),
    ("[metrics.accuracy]\nmax_drop = 'a lot'\n", "metrics.accuracy.max_drop must be a number, got 'a lot'"),
    ("[per_class.recall]\nmax_drop = 2\n", "per_class.recall.max_drop must be in [0, 1], got 2"),
    ("[[alerts.channels]]\ntype = 'pager'\n", "alerts.channels[0].type must be one of"),
    ("[[alerts.channels]]\ntype = 'webhook'\nurl = 'ftp://x'\n", "needs an http(s) url"),
])
def test_malformed_config(workdir, capsys, text, needle):
    _baseline()
    assert main(["monitor", "log", "day0.csv", "--model", "clf"]) == 0
    (workdir / "mon.toml").write_text(text)
    capsys.readouterr()
    assert main(["monitor", "check", "--model", "clf", "--end", str(T0 + DAY), "--config", "mon.toml"]) == 2
    assert needle in capsys.readouterr().err


def test_yaml_config(workdir, capsys):
    _baseline()
    assert main(["monitor", "log", "day0.csv", "--model", "clf"]) == 0
    assert main(["monitor", "labels", "labels0.csv", "--model", "clf"]) == 0
    (workdir / "mon.yaml").write_text("metrics:\n  accuracy:\n    min: 0.99\n")
    capsys.readouterr()
    assert main(["monitor", "check", "--model", "clf", "--end", str(T0 + DAY), "--config", "mon.yaml",
                 "--json"]) == 3
    assert [a["rule"] for a in json.loads(capsys.readouterr().out)["alerts"]] == ["metric:accuracy:min"]


def test_bad_log_input(workdir, capsys):
    _baseline()
    df = pd.read_csv("day0.csv")
    df.assign(prediction=df["prediction"].where(df.index != 3, 9)).to_csv("unknown_class.csv", index=False)
    assert main(["monitor", "log", "unknown_class.csv", "--model", "clf"]) == 2
    assert "prediction '9' at row 3 is not a class of the baseline" in capsys.readouterr().err
    pd.concat([df, df.head(1)]).to_csv("dup.csv", index=False)
    assert main(["monitor", "log", "dup.csv", "--model", "clf"]) == 2
    assert "appears more than once" in capsys.readouterr().err
    assert main(["monitor", "log", "day0.csv", "--model", "clf", "--pred", "nope"]) == 2
    assert "no column 'nope' (--pred)" in capsys.readouterr().err
    assert main(["monitor", "log", "day0.csv", "--model", "clf"]) == 0
    assert main(["monitor", "log", "day0.csv", "--model", "clf"]) == 2  # the same ids twice
    assert "logged before" in capsys.readouterr().err
    assert main(["monitor", "check", "--model", "clf", "--window", "soon"]) == 2


def test_schedule_prints_default_cron_line(workdir, capsys):
    assert main(["monitor", "schedule", "--model", "clf"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("0 2 * * * ") and "monitor check --model clf --window 1d" in line
    assert line.endswith("# poisonguard-monitor:clf")
    assert main(["monitor", "schedule", "--model", "clf", "--cron", "*/15 * * *"]) == 2


def test_schedule_install_replaces_the_models_line(workdir, capsys, monkeypatch):
    # a stand-in `crontab` on PATH that keeps the table in a file
    bindir = workdir / "bin"
    bindir.mkdir()
    table = workdir / "crontab.txt"
    table.write_text("5 4 * * * backup.sh\n")
    script = bindir / "crontab"
    script.write_text(f"#!/bin/sh\nif [ \"$1\" = \"-l\" ]; then cat {table}; else cat > {table}; fi\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert main(["monitor", "schedule", "--model", "clf", "--install"]) == 0
    assert main(["monitor", "schedule", "--model", "clf", "--cron", "30 3 * * *", "--install"]) == 0
    lines = table.read_text().splitlines()
    assert lines[0] == "5 4 * * * backup.sh" and len(lines) == 2
    assert lines[1].startswith("30 3 * * * ") and lines[1].endswith("# poisonguard-monitor:clf")


def test_run_loop_bounded(workdir, capsys):
    _baseline()
    now = pd.Timestamp.now(tz="UTC").timestamp()
    traffic(500, seed=4).assign(timestamp=now - 60).drop(columns="label").to_csv("now.csv", index=False)
    assert main(["monitor", "log", "now.csv", "--model", "clf"]) == 0
    capsys.readouterr()
    assert main(["monitor", "run", "--model", "clf", "--every", "0.01", "--window", "1h", "--iterations", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("model clf · window") == 2
    # a window with no data fails each run: the loop goes on, then exits non-zero
    assert main(["monitor", "run", "--model", "clf", "--every", "0.01", "--window", "1s", "--iterations", "2"]) == 5
