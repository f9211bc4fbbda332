"""Provenance: row-level fingerprints, a signed hash-chained ledger, source trust, lineage.

The ledger lives in the project store (:mod:`poisonguard.store`). Every write is an
entry signed with an HMAC or Ed25519 key and chained by hash to the one before.
"""

from __future__ import annotations

from ._api import (
    DataCheck,
    ScanInfo,
    SinceResult,
    SourceInfo,
    VerifyReport,
    VersionInfo,
    add_source,
    add_version,
    diff_versions,
    get_source,
    init_ledger,
    list_scans,
    list_sources,
    list_versions,
    load_version_frame,
    record_scan,
    record_verification,
    resolve_version,
    rows_since,
    verify_data,
    verify_ledger,
    version_hashes,
    version_ids,
)
from ._diff import RowDiff, diff_hashes
from ._fingerprint import Fingerprint, content_digest, file_sha256, fingerprint_frame, row_hashes
from ._ledger import ChainProblem, Entry, append_entry, check_chain, check_key, read_entries
from ._lineage import Lineage, lineage
from ._mlflow import MlflowExport, export_mlflow
from ._signing import DEFAULT_KEY, ENV_KEY, KeyExistsError, Signer, generate_key, load_key, resolve_key_path
from ._trust import FAILED_VERIFICATION_WEIGHT, KIND_PRIORS, SOURCE_KINDS, TrustScore, trust_score

__all__ = [
    "Fingerprint", "fingerprint_frame", "row_hashes", "content_digest", "file_sha256",
    "RowDiff", "diff_hashes",
    "Signer", "load_key", "generate_key", "resolve_key_path", "KeyExistsError", "DEFAULT_KEY", "ENV_KEY",
    "Entry", "ChainProblem", "append_entry", "read_entries", "check_chain", "check_key",
    "TrustScore", "trust_score", "KIND_PRIORS", "SOURCE_KINDS", "FAILED_VERIFICATION_WEIGHT",
    "SourceInfo", "VersionInfo", "DataCheck", "VerifyReport", "ScanInfo", "SinceResult",
    "init_ledger", "add_source", "get_source", "list_sources", "add_version", "resolve_version", "list_versions",
    "version_hashes", "version_ids", "load_version_frame", "verify_ledger", "verify_data", "diff_versions",
    "record_scan", "record_verification", "list_scans", "rows_since",
    "Lineage", "lineage", "MlflowExport", "export_mlflow",
]
