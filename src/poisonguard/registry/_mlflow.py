"""Mirror the registry's versions and aliases to an MLflow model registry (extra ``mlflow``).

poisonguard's registry stays the record of truth (hash-pinned, gated); MLflow gets a
copy so that tools reading ``models:/NAME@champion`` follow the same champion. Each
poisonguard version becomes one MLflow model version whose source is the registered
directory, tagged with its version and manifest digest.
"""

from __future__ import annotations

from typing import Any

from .._optional import import_optional
from ..store import Store
from ._registry import ALIASES, alias_version, list_versions

__all__ = ["mirror_to_mlflow"]


def mirror_to_mlflow(store: Store, *, name: str, tracking_uri: str | None = None,
                     registry_uri: str | None = None) -> dict[str, Any]:
    """Create the missing MLflow model versions and point MLflow's aliases where ours point.

    Returns
    -------
    dict
        ``{"versions": {our version: MLflow version}, "aliases": {alias: MLflow version or None}}``.
    """
    mlflow = import_optional("mlflow", "mlflow")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="mirrored from the poisonguard model registry")
    known = {}
    for mv in client.search_model_versions(f"name='{name}'"):
        tag = (mv.tags or {}).get("poisonguard.version")
        if tag is not None:
            known[int(tag)] = int(mv.version)
    for v in list_versions(store):
        if v.version not in known:
            mv = client.create_model_version(name, source=v.path, tags={
                "poisonguard.version": str(v.version), "poisonguard.manifest_sha256": v.manifest_sha256})
            known[v.version] = int(mv.version)
    aliases: dict[str, int | None] = {}
    for alias in ALIASES:
        ours = alias_version(store, alias)
        if ours is None:
            try:
                client.delete_registered_model_alias(name, alias)
            except mlflow.exceptions.MlflowException:
                pass  # it was not set
            aliases[alias] = None
        else:
            client.set_registered_model_alias(name, alias, str(known[ours]))
            aliases[alias] = known[ours]
    return {"versions": known, "aliases": aliases}
