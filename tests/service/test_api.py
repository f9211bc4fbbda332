"""The HTTP API through FastAPI's TestClient: auth, scopes, size limits, malformed bodies, the loop's routes."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import select  # noqa: E402

from poisonguard import registry  # noqa: E402
from poisonguard.feedback import FeedbackItem, PredictionLog  # noqa: E402
from poisonguard.service import ApiToken, ServiceSettings, create_app, create_token, revoke_token  # noqa: E402


@pytest.fixture
def api(loop):
    app = create_app(loop.store, settings=ServiceSettings(max_body_bytes=64 * 1024))
    toks = {s: create_token(loop.store, name=f"t-{s}", scope=s) for s in ("feedback", "predict", "admin")}
    with TestClient(app) as client:
        yield client, toks, loop


def _h(tok):
    return {"Authorization": f"Bearer {tok}"}


def _features(loop, i=0):
    r = loop.pool.iloc[i]
    return {c: float(r[c]) for c in loop.champion.features}, int(r["y"])


def test_auth_missing_bad_and_revoked_token_is_401(api):
    client, toks, loop = api
    body = {"user": "u", "label": 0, "features": _features(loop)[0]}
    r = client.post("/v1/feedback", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post("/v1/feedback", json=body, headers=_h("pg_wrong")).status_code == 401
    assert client.post("/v1/feedback", json=body, headers={"Authorization": f"Basic {toks['feedback']}"}).status_code == 401
    revoke_token(loop.store, "t-admin")
    client.app.state.tokens.cache.clear()
    assert client.post("/v1/feedback", json=body, headers=_h(toks["admin"])).status_code == 401


def test_wrong_scope_is_403_and_admin_may_do_all(api):
    client, toks, loop = api
    f, y = _features(loop)
    r = client.post("/v1/feedback", json={"user": "u", "label": y, "features": f}, headers=_h(toks["predict"]))
    assert r.status_code == 403 and "needs 'feedback'" in r.json()["detail"]
    assert client.post("/v1/predict", json={"rows": [f]}, headers=_h(toks["feedback"])).status_code == 403
    assert client.post("/v1/predict", json={"rows": [f]}, headers=_h(toks["admin"])).status_code == 200


def test_tokens_are_stored_only_as_hashes(api):
    _, toks, loop = api
    with loop.store.session() as s:
        stored = [(r.token_sha256, r.name) for r in s.execute(select(ApiToken)).scalars()]
    raw = set(toks.values())
    assert stored and all(h not in raw and len(h) == 64 for h, _ in stored)
    db = loop.store.path.read_bytes()
    assert not any(t.encode() in db for t in raw)


def test_body_size_limit_413(api):
    client, toks, loop = api
    f, y = _features(loop)
    big = {"items": [{"user": "u", "label": y, "features": f}] * 1000}  # ~130 KB > 64 KiB, within MAX_ITEMS
    r = client.post("/v1/feedback", json=big, headers=_h(toks["feedback"]))
    assert r.status_code == 413 and "exceeds the limit of 65536" in r.json()["detail"]

    def chunks():  # no content-length: the streamed body is counted
        for _ in range(100):
            yield b" " * 1024

    r = client.post("/v1/feedback", content=chunks(), headers={**_h(toks["feedback"]), "content-type": "application/json"})
    assert r.status_code == 413
    with loop.store.session() as s:
        assert s.execute(select(FeedbackItem)).first() is None


@pytest.mark.parametrize("body", [
    b"{not json",
    b'{"user": "u"}',                                            # no label
    b'{"user": "u", "label": 0, "extra": 1}',                    # unknown field
    b'{"user": "u", "label": [1, 2]}',                           # label not a scalar
    b'{"user": "", "label": 0}',                                 # empty user
    b'{"items": []}',                                            # empty batch
    b'{"user": "u", "label": 0, "features": {"f0": [1]}}',       # feature not a scalar
])
def test_malformed_bodies_are_422(api, body):
    client, toks, _ = api
    r = client.post("/v1/feedback", content=body, headers={**_h(toks["feedback"]), "content-type": "application/json"})
    assert r.status_code == 422


def test_too_many_items_is_422(api):
    client, toks, _ = api
    items = [{"user": "u", "label": 0, "prediction_id": "x"}] * 1001
    r = client.post("/v1/feedback", json={"items": items}, headers=_h(toks["admin"]))
    assert r.status_code in (413, 422)


def test_predict_logs_and_feedback_is_checked_against_it(api):
    client, toks, loop = api
    f, y = _features(loop, 3)
    r = client.post("/v1/predict", json={"rows": [f]}, headers=_h(toks["predict"]))
    assert r.status_code == 200
    pred = r.json()["predictions"][0]
    assert r.json()["model_version"] == loop.version and 0 <= pred["confidence"] <= 1
    with loop.store.session() as s:
        logged = s.get(PredictionLog, pred["prediction_id"])
    assert logged is not None and logged.label == pred["label"]
    r = client.post("/v1/feedback", json={"items": [
        {"user": "alice", "label": y, "prediction_id": pred["prediction_id"], "id": "a1"},
        {"user": "bob", "label": 9, "features": f, "id": "b1"},
    ]}, headers=_h(toks["feedback"]))
    assert r.status_code == 200
    out = r.json()
    assert (out["accepted"], out["quarantined"]) == (1, 1)
    assert out["results"][1]["reason"].startswith("schema: label '9'")
    with loop.store.session() as s:
        row = s.get(FeedbackItem, out["results"][0]["feedback_id"])
    assert row.served_label == pred["label"] and row.features == logged.features
    again = client.post("/v1/feedback", json={"user": "alice", "label": y, "prediction_id": pred["prediction_id"],
                                              "id": "a1"}, headers=_h(toks["feedback"])).json()
    assert again["results"][0]["replayed"] and again["results"][0]["feedback_id"] == out["results"][0]["feedback_id"]


def test_predict_refuses_rows_missing_features(api):
    client, toks, loop = api
    f, _ = _features(loop)
    del f["f0"]
    r = client.post("/v1/predict", json={"rows": [f]}, headers=_h(toks["predict"]))
    assert r.status_code == 422 and "f0" in r.json()["detail"]


def test_token_rate_limit_is_429(loop):
    from poisonguard.feedback import FeedbackPolicy

    app = create_app(loop.store, settings=ServiceSettings(policy=FeedbackPolicy(token_rate_limit=2)))
    tok = create_token(loop.store, name="small", scope="feedback")
    f, y = _features(loop)
    with TestClient(app) as client:
        body = {"items": [{"user": f"u{i}", "label": y, "features": f} for i in range(3)]}
        assert client.post("/v1/feedback", json=body, headers=_h(tok)).status_code == 429


def test_tampered_champion_is_refused_409(api):
    client, toks, loop = api
    path = registry.get_version(loop.store, loop.version).path
    with open(f"{path}/linear.npz", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01")
    client.app.state.champion.version = None  # force a reload, as after a promotion
    r = client.post("/v1/predict", json={"rows": [_features(loop)[0]]}, headers=_h(toks["predict"]))
    assert r.status_code == 409 and "failed verification" in r.json()["detail"]


def test_healthz_and_openapi(api):
    client, _, loop = api
    assert client.get("/healthz").json() == {"status": "ok", "champion": loop.version}
    spec = client.get("/openapi.json").json()
    assert {"/v1/feedback", "/v1/predict", "/healthz"} <= set(spec["paths"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_monitoring_routes_are_included_behind_the_same_auth(api):
    client, toks, _ = api
    spec = client.get("/openapi.json").json()
    if "/metrics" not in spec["paths"]:
        pytest.skip("service/_monitor_routes.py is not present")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=_h(toks["feedback"])).status_code == 403
    assert client.get("/metrics", headers=_h(toks["predict"])).status_code in (200, 501)  # 501: monitor extra missing
