"""MLflow export against a local file-store tracking URI."""

from __future__ import annotations

import json

import pytest

from poisonguard.provenance import add_version, export_mlflow, record_scan


@pytest.fixture(autouse=True)
def _file_store(monkeypatch):
    # MLflow 3 refuses the (deprecated) file store without this opt-in
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def test_export_logs_dataset_input_with_tags_and_report(store, key, tmp_path, table):
    mlflow = pytest.importorskip("mlflow")
    path = tmp_path / "train.csv"
    table.to_csv(path, index=False)
    v = add_version(store, path, name="train", source="feed", key=key)
    record_scan(store, v.version_id, {"n_flagged": 3, "n_rows": len(table)}, {"feed": (3, len(table))}, key=key)
    uri = (tmp_path / "mlruns").as_uri()
    res = export_mlflow(store, v.version_id, tracking_uri=uri, experiment="pg-test")
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(res.run_id)
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    ds = inputs[0].dataset
    assert ds.name == v.version_id and ds.digest == v.digest
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags["poisonguard.digest"] == v.digest
    assert tags["poisonguard.source"] == "feed"
    assert tags["poisonguard.ledger_id"] == v.version_id
    local = client.download_artifacts(res.run_id, "poisonguard/scan_report.json", str(tmp_path / "dl"))
    report = json.loads(open(local).read())
    assert report["summary"]["n_flagged"] == 3 and report["per_source"]["feed"] == [3, len(table)]


def test_export_without_data_file_uses_meta_dataset(store, key, tmp_path, table):
    mlflow = pytest.importorskip("mlflow")
    path = tmp_path / "gone.csv"
    table.to_csv(path, index=False)
    v = add_version(store, path, name="gone", source="feed", key=key)
    path.unlink()
    uri = (tmp_path / "mlruns").as_uri()
    res = export_mlflow(store, v.version_id, tracking_uri=uri, experiment="pg-meta")
    ds = mlflow.tracking.MlflowClient(tracking_uri=uri).get_run(res.run_id).inputs.dataset_inputs[0].dataset
    assert ds.digest == v.digest and res.artifact is None
