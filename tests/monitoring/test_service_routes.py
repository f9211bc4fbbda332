"""The service's monitoring routes: logging over HTTP, /metrics in Prometheus text, auth from the app."""

from __future__ import annotations

import pytest
from monitor_traffic import DAY, T0, traffic

fastapi = pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from poisonguard.monitoring import Monitor  # noqa: E402
from poisonguard.service._monitor_routes import REQUIRED_SCOPE, router  # noqa: E402


@pytest.fixture
def client(store):
    app = fastapi.FastAPI()
    app.state.store = store
    app.include_router(router)
    mon = Monitor("clf", store=store)
    mon.record_baseline(traffic(3000, seed=1).rename(columns={"prediction": "pred"}), label="label", pred="pred",
                        conf="confidence", features=["f0"])
    return TestClient(app), mon


def _payload(df):
    return {"predictions": [{"id": r.id, "prediction": int(r.prediction), "timestamp": float(r.timestamp),
                             "confidence": float(r.confidence), "label": int(r.label), "features": {"f0": r.f0}}
                            for r in df.itertuples()]}


def test_log_then_metrics(client):
    http, mon = client
    df = traffic(800, seed=2, recall=(0.9, 0.9, 0.6, 0.9))
    r = http.post("/v1/monitor/clf/log", json=_payload(df))
    assert r.status_code == 200, r.text
    assert r.json()["logged"] == 800 and r.json()["features"] == ["f0"]
    res = mon.check(window="1d", end=T0 + DAY, notify=False)
    assert res.n_labelled == 800 and "metric:recall[2]:drop" in {a.rule for a in res.alerts}
    r = http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    samples = {(s.labels.get("metric"), s.labels.get("class")): s.value
               for s in fams["poisonguard_monitor_metric"].samples}
    assert samples[("recall", "2")] == pytest.approx(next(c.value for c in res.checks
                                                          if c.metric == "recall" and c.label == "2"))
    status = fams["poisonguard_monitor_check_status"].samples[0]
    assert status.labels == {"model": "clf"} and status.value == 1
    assert fams["poisonguard_monitor_predictions_logged"].samples[0].value == 800


def test_log_errors_map_to_http_statuses(client):
    http, _ = client
    from poisonguard.errors import PoisonguardError

    app = http.app

    @app.exception_handler(PoisonguardError)
    async def _err(request, exc):  # noqa: ANN001 - what service/_app.py installs
        from fastapi.responses import JSONResponse

        return JSONResponse(status_code=exc.http_status, content={"detail": str(exc)})

    body = _payload(traffic(5, seed=3))
    assert http.post("/v1/monitor/nope/log", json=body).status_code == 404
    body["predictions"][0]["prediction"] = 9
    r = http.post("/v1/monitor/clf/log", json=body)
    assert r.status_code == 422 and "not a class of the baseline" in r.json()["detail"]
    assert http.post("/v1/monitor/clf/log", json={"predictions": []}).status_code == 422


def test_service_app_requires_the_declared_scope(store):
    from poisonguard.service import create_app
    from poisonguard.service._tokens import create_token

    assert REQUIRED_SCOPE == "predict"
    app = create_app(store)
    http = TestClient(app)
    assert http.get("/metrics").status_code == 401
    feedback = create_token(store, name="fb", scope="feedback")
    assert http.get("/metrics", headers={"Authorization": f"Bearer {feedback}"}).status_code == 403
    token = create_token(store, name="pipe", scope="predict")
    assert http.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
