"""Source trust (Beta posterior), scans in the ledger, rows since a trusted version."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.errors import InputError, NotFoundError
from poisonguard.provenance import (
    FAILED_VERIFICATION_WEIGHT, KIND_PRIORS, add_source, add_version, get_source, lineage, list_scans,
    record_scan, rows_since, trust_score,
)


def test_priors_rank_public_web_riskiest():
    means = {k: trust_score(k).prior_risk for k in KIND_PRIORS}
    assert max(means, key=means.get) == "public-web"
    assert min(means, key=means.get) == "internal"
    assert means["internal"] < means["vendor"] < means["user-generated"] < means["public-web"]


def test_posterior_formula():
    a, b = KIND_PRIORS["vendor"]
    s = trust_score("vendor", flagged=30, total=200, failed_verifications=2)
    w = FAILED_VERIFICATION_WEIGHT * 2
    assert s.risk == pytest.approx((a + 30 + w) / (a + b + 200 + w))
    assert s.prior_risk < s.risk < s.risk_upper < 1
    # clean evidence lowers the risk below the prior
    assert trust_score("public-web", flagged=0, total=10_000).risk < trust_score("public-web").prior_risk


def test_bad_evidence_and_kind_are_refused():
    with pytest.raises(InputError):
        trust_score("darkweb")
    with pytest.raises(InputError):
        trust_score("vendor", flagged=5, total=3)


def _version(store, key, tmp_path, table, name="train"):
    path = tmp_path / f"{name}.csv"
    table.to_csv(path, index=False)
    return add_version(store, path, name=name, source="feed", key=key)


def test_record_scan_updates_trust_and_lineage(store, key, tmp_path, table):
    add_source(store, "scrape", kind="public-web", key=key)
    v = _version(store, key, tmp_path, table)
    before = {n: get_source(store, n).score.risk for n in ("feed", "scrape")}
    info = record_scan(store, v.version_id, {"n_flagged": 12, "detector": "knn", "score": np.float64(0.5)},
                       {"feed": (2, 40), "scrape": (10, 20)}, key=key)
    feed, scrape = get_source(store, "feed"), get_source(store, "scrape")
    assert (feed.score.flagged, feed.score.total, feed.n_scans) == (2, 40, 1)
    assert (scrape.score.flagged, scrape.score.total) == (10, 20)
    assert scrape.score.risk > before["scrape"]  # 50 % flagged, above the 30 % prior
    assert feed.score.risk == pytest.approx(trust_score("vendor", flagged=2, total=40).risk)
    assert [s.entry_seq for s in list_scans(store, v.version_id)] == [info.entry_seq]
    assert lineage(store, "train").scans[v.version_id][0].summary["score"] == 0.5


def test_record_scan_refuses_unknown_source_and_bad_counts(store, key, tmp_path, table):
    v = _version(store, key, tmp_path, table)
    with pytest.raises(NotFoundError, match="ghost"):
        record_scan(store, v.version_id, {}, {"ghost": (1, 2)}, key=key)
    with pytest.raises(InputError):
        record_scan(store, v.version_id, {}, {"feed": (5, 2)}, key=key)
    with pytest.raises(InputError):
        record_scan(store, v.version_id, {"bad": float("nan")}, {"feed": (1, 2)}, key=key)
    assert list_scans(store) == []
    assert get_source(store, "feed").score.total == 0


def test_rows_since_marks_only_new_rows(store, key, tmp_path, table):
    v = _version(store, key, tmp_path, table)
    new_rows = pd.DataFrame({"id": [1, 2], "x": [9.0, 8.0], "k": [0, 1], "s": ["p", "q"]})
    grown = pd.concat([table.iloc[5:], new_rows, table.iloc[:1]], ignore_index=True)  # + duplicate of row 0
    grown.loc[3, "x"] = -7.5  # a changed row is new content too
    res = rows_since(store, grown, v.version_id)
    expected = np.zeros(len(grown), bool)
    expected[[3, len(grown) - 3, len(grown) - 2]] = True
    assert res.mask.tolist() == expected.tolist()
    assert res.trusted_frame is not None and len(res.trusted_frame) == len(table)
    dup = pd.concat([table, table.iloc[:1]], ignore_index=True)
    assert rows_since(store, dup, v.version_id).mask.tolist() == [False] * len(table) + [True]


def test_rows_since_refuses_other_columns(store, key, tmp_path, table):
    from poisonguard.errors import DataError

    v = _version(store, key, tmp_path, table)
    with pytest.raises(DataError, match="missing"):
        rows_since(store, table.drop(columns="s"), v.version_id)


def test_lineage_follows_parents_across_names(store, key, tmp_path, table):
    v1 = _version(store, key, tmp_path, table)
    path = tmp_path / "clean.csv"
    table.iloc[:30].to_csv(path, index=False)
    code = tmp_path / "clean.py"
    code.write_text("print('drop half')\n")
    v2 = add_version(store, path, name="train-clean", source="feed", parent=v1.version_id,
                     transform="drop half", code=code, key=key)
    lin = lineage(store, "train-clean")
    assert [v.version_id for v in lin.roots] == [v1.version_id]
    assert lin.children[v1.version_id] == [v2.version_id]
    assert lin.get(v2.version_id).payload["code"]["sha256"]
    with pytest.raises(NotFoundError):
        lineage(store, "nothing")
