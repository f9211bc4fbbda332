"""Registry: hash-verified loads, gated promotion, forced promotion with audit, rollback, history."""

from __future__ import annotations

import json

import pytest

from poisonguard import registry
from poisonguard.errors import GateBlockedError, InputError, IntegrityError
from poisonguard.gate import GateCheck, GateReport, record_report


def _report(loop, version, *, passed, champion=None):
    champ = loop.version if champion is None else champion
    return record_report(loop.store, GateReport(checks=[GateCheck("value:accuracy", passed, 0.9, 0.5)],
                                                challenger=version, champion=champ))


def _new_version(loop, champion_dir):
    return registry.register_model(loop.store, champion_dir, root=loop.root).version


def test_load_verifies_hashes_and_refuses_tampered_files(loop):
    v, model = registry.load_alias(loop.store)
    assert v == loop.version and model.kind == "sklearn-linear"
    path = registry.get_version(loop.store, v).path
    meta = f"{path}/metadata.json"
    with open(meta, "a") as fh:
        fh.write(" ")
    with pytest.raises(IntegrityError, match="modified after saving"):
        registry.load_version(loop.store, v)


def test_rewritten_manifest_is_refused_too(loop):
    """An attacker who edits a file and its manifest entry is caught by the digest pinned at registration."""
    from poisonguard.training._io import sha256_file

    path = registry.get_version(loop.store, loop.version).path
    with open(f"{path}/metadata.json", "a") as fh:
        fh.write(" ")
    man = json.loads(open(f"{path}/manifest.json").read())
    man["files"]["metadata.json"] = sha256_file(f"{path}/metadata.json")
    open(f"{path}/manifest.json", "w").write(json.dumps(man))
    with pytest.raises(IntegrityError, match="manifest digest"):
        registry.load_version(loop.store, loop.version)


def test_register_refuses_tampered_source(loop, tmp_path, champion_dir):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(champion_dir, d)
    (d / "linear.npz").write_bytes(b"not the weights")
    with pytest.raises(IntegrityError):
        registry.register_model(loop.store, d, root=loop.root)
    assert [v.version for v in registry.list_versions(loop.store)] == [loop.version]


def test_promote_needs_a_passed_current_gate(loop, champion_dir):
    v2 = _new_version(loop, champion_dir)
    with pytest.raises(GateBlockedError, match="no gate report"):
        registry.promote(loop.store, v2)
    failed = _report(loop, v2, passed=False)
    with pytest.raises(GateBlockedError, match="failed"):
        registry.promote(loop.store, v2, gate_report=failed.id)
    other = _report(loop, loop.version, passed=True)
    with pytest.raises(GateBlockedError, match="is for version"):
        registry.promote(loop.store, v2, gate_report=other.id)
    stale = _report(loop, v2, passed=True, champion=999)
    with pytest.raises(GateBlockedError, match="stale"):
        registry.promote(loop.store, v2, gate_report=stale.id)
    assert registry.alias_version(loop.store, "champion") == loop.version
    ok = _report(loop, v2, passed=True)
    registry.promote(loop.store, v2, gate_report=ok.id)
    assert registry.alias_version(loop.store, "champion") == v2


def test_forced_promotion_needs_reason_and_is_audited(loop, champion_dir):
    v2 = _new_version(loop, champion_dir)
    with pytest.raises(InputError, match="reason"):
        registry.promote(loop.store, v2, force=True)
    registry.promote(loop.store, v2, force=True, reason="hotfix approved by on-call")
    last = registry.history(loop.store)[-1]
    assert (last.kind, last.version, last.previous, last.reason) == ("promote-forced", v2, loop.version,
                                                                     "hotfix approved by on-call")


def test_rollback_and_history(loop, champion_dir):
    with pytest.raises(InputError, match="no previous champion"):
        registry.rollback(loop.store)
    v2 = _new_version(loop, champion_dir)
    registry.promote(loop.store, v2, gate_report=_report(loop, v2, passed=True).id)
    v3 = _new_version(loop, champion_dir)
    registry.promote(loop.store, v3, gate_report=_report(loop, v3, passed=True, champion=v2).id)
    e = registry.rollback(loop.store, reason="bad canary in prod")
    assert (e.version, e.previous) == (v2, v3) and registry.alias_version(loop.store, "champion") == v2
    registry.rollback(loop.store)
    assert registry.alias_version(loop.store, "champion") == loop.version
    kinds = [e.kind for e in registry.history(loop.store)]
    assert kinds.count("rollback") == 2 and kinds[0] == "register"


def test_champion_alias_cannot_be_set_directly(loop):
    with pytest.raises(InputError, match="promote"):
        registry.set_alias(loop.store, "champion", loop.version)
    registry.set_alias(loop.store, "challenger", loop.version)
    assert registry.alias_version(loop.store, "challenger") == loop.version


def test_mirror_aliases_to_mlflow(loop, champion_dir, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    v2 = _new_version(loop, champion_dir)
    registry.set_alias(loop.store, "challenger", v2)
    out = registry.mirror_to_mlflow(loop.store, name="pg-model", tracking_uri=uri)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champ = client.get_model_version_by_alias("pg-model", "champion")
    assert champ.tags["poisonguard.version"] == str(loop.version)
    assert out["aliases"]["challenger"] == int(client.get_model_version_by_alias("pg-model", "challenger").version)
    registry.promote(loop.store, v2, force=True, reason="test")
    again = registry.mirror_to_mlflow(loop.store, name="pg-model", tracking_uri=uri)
    assert again["versions"] == out["versions"]  # nothing registered twice
    assert client.get_model_version_by_alias("pg-model", "champion").tags["poisonguard.version"] == str(v2)


def test_promotions_and_gate_reports_are_signed_into_an_initialised_ledger(loop, champion_dir, tmp_path, monkeypatch):
    from poisonguard.provenance import check_chain, generate_key, init_ledger, read_entries

    key = tmp_path / "ledger.key"
    monkeypatch.setenv("POISONGUARD_LEDGER_KEY", str(key))
    signer = generate_key(key)
    init_ledger(loop.store, signer)
    v2 = _new_version(loop, champion_dir)
    rep = _report(loop, v2, passed=True)
    registry.promote(loop.store, v2, gate_report=rep.id)
    registry.rollback(loop.store, reason="drill")
    kinds = [e.kind for e in read_entries(loop.store)]
    assert kinds == ["init", "model-register", "gate", "model-promote", "model-rollback"]
    promote = read_entries(loop.store, kind="model-promote")[0].payload
    assert (promote["version"], promote["gate_report"], promote["forced"]) == (v2, rep.id, False)
    problems, n = check_chain(loop.store, signer)
    assert problems == [] and n == 5
