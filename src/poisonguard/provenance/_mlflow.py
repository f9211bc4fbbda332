"""Export a dataset version to MLflow as a dataset input (optional extra ``mlflow``)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

from .._optional import import_optional
from ..errors import InputError, IntegrityError
from ..store import Store
from ._api import list_scans, load_version_frame, resolve_version

__all__ = ["MlflowExport", "export_mlflow"]


@dataclass(frozen=True)
class MlflowExport:
    run_id: str
    tracking_uri: str
    dataset_name: str
    digest: str
    artifact: str | None


def export_mlflow(
    store: Store,
    version_id: str,
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    run_id: str | None = None,
    context: str = "training",
) -> MlflowExport:
    """Log a dataset version as an MLflow dataset input, with our digest and ids as tags.

    Uses the active run, else ``run_id``, else starts a run in ``experiment``. When the
    version's file is present and unchanged, the dataset is ``mlflow.data.from_pandas``
    (schema and profile included); otherwise a meta dataset. MLflow's own digest field
    holds our full SHA-256 content digest. (MLflow >= 3.x refuses a ``file://`` tracking
    store unless ``MLFLOW_ALLOW_FILE_STORE=true`` is set; that is MLflow's choice.) The latest scan summary of the version is
    logged as the artifact ``poisonguard/scan_report.json``.
    """
    mlflow = import_optional("mlflow", "mlflow")
    import_optional("mlflow.data", "mlflow")
    v = resolve_version(store, version_id)
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    tags = {
        "poisonguard.digest": v.digest,
        "poisonguard.ordered_digest": v.payload["ordered_digest"],
        "poisonguard.file_sha256": v.payload["file"]["sha256"],
        "poisonguard.source": v.source,
        "poisonguard.ledger_id": v.version_id,
        "poisonguard.ledger_entry": str(v.entry_seq),
        "poisonguard.n_rows": str(v.n_rows),
    }
    source_uri = "file://" + v.file_path if v.file_path.startswith("/") else v.file_path
    try:
        frame = load_version_frame(v)
    except (InputError, IntegrityError):
        frame = None
    if frame is not None:
        from mlflow.data.pandas_dataset import from_pandas

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dataset = from_pandas(frame, source=source_uri, name=v.version_id, digest=v.digest)
    else:
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "can be interpreted in multiple ways"
            src = resolve_dataset_source(source_uri)
        dataset = MetaDataset(source=src, name=v.version_id, digest=v.digest)
    scans = list_scans(store, v.version_id)
    active = mlflow.active_run()
    started = False
    if active is None:
        if run_id is None and experiment:
            mlflow.set_experiment(experiment)
        mlflow.start_run(run_id=run_id)
        started = True
    try:
        run = mlflow.active_run()
        mlflow.log_input(dataset, context=context, tags=tags)
        mlflow.set_tags({f"{k}": val for k, val in tags.items()})
        artifact = None
        if scans:
            report: dict[str, Any] = {"version_id": v.version_id, "ledger_entry": scans[-1].entry_seq,
                                      "recorded_at": scans[-1].recorded_at, "summary": scans[-1].summary,
                                      "per_source": scans[-1].per_source}
            artifact = "poisonguard/scan_report.json"
            mlflow.log_text(json.dumps(report, indent=2, sort_keys=True), artifact)
        rid = run.info.run_id
    finally:
        if started:
            mlflow.end_run()
    return MlflowExport(run_id=rid, tracking_uri=mlflow.get_tracking_uri(), dataset_name=v.version_id,
                        digest=v.digest, artifact=artifact)
