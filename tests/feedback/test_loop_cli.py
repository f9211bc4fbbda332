"""The whole loop from the command line: tokens, registry, retrain (promoted and blocked), review, history."""

from __future__ import annotations

import json

import pytest

from poisonguard import registry
from poisonguard.cli import main
from poisonguard.feedback import feedback_counts, honest_feedback, submit_feedback, trigger_campaign

TRIGGER = {"f6": 2.5, "f7": -2.5}  # in range, on noise features of loop_table


@pytest.fixture
def files(loop, tmp_path):
    base, val = tmp_path / "base.csv", tmp_path / "val.csv"
    loop.base.to_csv(base, index=False)
    loop.val.to_csv(val, index=False)
    db = str(loop.store.path)
    return ["--db", db], ["--base", str(base), "--validation", str(val), "--label", "y", "--models-dir", str(loop.root)]


def test_schedule_and_token(files, capsys):
    db, _ = files
    assert main(["retrain", "schedule"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("0 3 * * 0 poisonguard retrain ") and "\n" not in line
    assert main(["retrain", "schedule", "--cron", "0 3 *"]) == 2
    assert main(["token", "create", "--name", "app", "--scope", "feedback", *db]) == 0
    tok = capsys.readouterr().out.strip()
    assert tok.startswith("pg_") and len(tok) > 40
    assert main(["token", "create", "--name", "app2", "--scope", "root", *db]) == 2
    assert main(["registry", "add", "nowhere", "--champion", *db]) == 2


def test_honest_batch_is_promoted_then_trigger_campaign_is_stopped(loop, files, capsys):
    db, args = files
    honest = honest_feedback(loop.pool.iloc[:600], "y", n_users=40, seed=1)
    ds = submit_feedback(loop.store, honest.items, champion=loop.champion)
    assert sum(d.status != "accepted" for d in ds) <= 0.02 * len(ds)
    assert main(["retrain", *args, *db, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "promoted" and out["gate"]["passed"]
    new_champ = registry.alias_version(loop.store, "champion")
    assert new_champ == out["challenger"] != loop.version
    assert out["gate"]["metrics"]["challenger"]["accuracy"] >= out["gate"]["metrics"]["champion"]["accuracy"] - 0.01

    # a trigger campaign: 60 stamped rows labelled 2 by 30 sock accounts, hidden in honest feedback
    more = honest_feedback(loop.pool.iloc[600:1200], "y", n_users=40, seed=2)
    bad = trigger_campaign(loop.pool.iloc[1200:], "y", trigger=TRIGGER, to_label=2, n_items=60, n_users=30, seed=3)
    champ_view = type(loop.champion).of(registry.load_alias(loop.store)[1], new_champ)
    submit_feedback(loop.store, more.items + bad.items, champion=champ_view)
    code = main(["retrain", *args, *db])
    text = capsys.readouterr().out
    assert registry.alias_version(loop.store, "champion") == new_champ  # unchanged
    if code == 3:
        assert "FAIL" in text
    else:  # the campaign never reached the batch
        assert code == 0 and "promoted" in text
        counts = feedback_counts(loop.store)
        assert counts["quarantine_rules"].get("campaign", 0) >= 50
    assert main(["registry", "history", *db, "--json"]) == 0
    kinds = [e["kind"] for e in json.loads(capsys.readouterr().out)]
    assert kinds.count("promote") == 1 and kinds.count("promote-forced") == 1
    assert main(["registry", "gate", *db]) == 0
    assert main(["feedback", "review", *db, "--limit", "5"]) == 0
    assert main(["registry", "verify", *db]) == 0
    assert main(["registry", "rollback", *db, "--reason", "test"]) == 0
    assert registry.alias_version(loop.store, "champion") == loop.version


def test_retrain_without_feedback_does_nothing(loop, files, capsys):
    db, args = files
    assert main(["retrain", *args, *db]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert registry.alias_version(loop.store, "champion") == loop.version
