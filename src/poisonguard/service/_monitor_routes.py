"""Monitoring routes of the HTTP service: ``POST /v1/monitor/{model}/log`` and ``GET /metrics``.

Contract with ``service/_app.py``: this module exports ``router`` (a FastAPI
``APIRouter``) and ``REQUIRED_SCOPE = "predict"``. The app includes the router with
``dependencies=[Depends(require_scope(REQUIRED_SCOPE))]``, so both routes need
``Authorization: Bearer <token>`` with scope ``predict`` (or ``admin``): the pipeline
that serves predictions is the one that logs them, and a Prometheus scraper is given
such a token (``bearer_token_file`` in its scrape config). The routes take the store
from ``request.app.state.store`` (the dependency :func:`get_store`, which an app may
override), so they share the service's one store.

``/metrics`` is Prometheus text format (prometheus-client, extra ``monitor``), built
per scrape from the newest stored check of each model: the check's metrics and their
baselines, per-class recall, prediction PSI, active alerts, and predictions logged.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations as objects

import json
import logging
from typing import Any, Optional, Union

from .._optional import import_optional

from ..store import Store, open_store

# through import_optional: a direct import without the extra names the extra instead
# of failing with a bare ImportError
_fastapi = import_optional("fastapi", "serve")
_pydantic = import_optional("pydantic", "serve")
APIRouter, Depends, Request, Response = _fastapi.APIRouter, _fastapi.Depends, _fastapi.Request, _fastapi.Response
BaseModel, Field = _pydantic.BaseModel, _pydantic.Field

__all__ = ["router", "REQUIRED_SCOPE", "get_store", "render_metrics"]

log = logging.getLogger(__name__)

REQUIRED_SCOPE = "predict"
MAX_ROWS = 10_000

router = APIRouter(tags=["monitoring"])


def get_store(request: Request) -> Store:
    """The service's store (``app.state.store``), or the default store when the app has none."""
    store = getattr(request.app.state, "store", None)
    if store is None:  # a bare app in tests or embedding code: the default store
        store = open_store(None, create=True)
        request.app.state.store = store
    return store


Scalar = Union[str, int, float, bool, None]


class LoggedPrediction(BaseModel):
    id: Union[str, int] = Field(..., description="Unique per model: late labels join on it.")
    prediction: Union[str, int, float, bool]
    timestamp: Optional[Union[float, str]] = Field(None, description="Epoch seconds or ISO-8601 [default: now].")
    confidence: Optional[float] = None
    label: Optional[Union[str, int, float, bool]] = Field(None, description="True label, if known already.")
    features: dict[str, Scalar] = Field(default_factory=dict, description="Input features (for input-drift tests).")


class LogIn(BaseModel):
    predictions: list[LoggedPrediction] = Field(..., min_length=1, max_length=MAX_ROWS)
    probe: Optional[str] = Field(None, description="These rows are predictions of this registered probe set.")


class LogOut(BaseModel):
    model: str
    logged: int
    ts_min: float
    ts_max: float
    features: list[str]


@router.post("/v1/monitor/{model}/log", response_model=LogOut)
def post_log(model: str, body: LogIn, store: Store = Depends(get_store)) -> LogOut:
    """Log production predictions of ``model`` (which needs a recorded baseline: 404 otherwise)."""
    import pandas as pd

    from ..monitoring import Monitor

    rows = []
    for p in body.predictions:
        row: dict[str, Any] = {f"__f_{k}": v for k, v in p.features.items()}
        row.update({"id": p.id, "prediction": p.prediction, "timestamp": p.timestamp, "confidence": p.confidence,
                    "label": p.label})
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame = frame.rename(columns={c: c[4:] for c in frame.columns if c.startswith("__f_")})
    has_ts = frame["timestamp"].notna().all()
    has_label = frame["label"].notna().any()
    if frame["confidence"].isna().all():
        frame = frame.drop(columns="confidence")
    mon = Monitor(model, store=store)
    res = mon.log(frame, ts_col="timestamp" if has_ts else None, label="label" if has_label else None,
                  probe=body.probe)
    return LogOut(model=res.model, logged=res.n_logged, ts_min=res.ts_min, ts_max=res.ts_max, features=res.features)


def render_metrics(store: Store) -> bytes:
    """The Prometheus exposition text of every monitored model's newest check."""
    prom = import_optional("prometheus_client", "monitor")
    from sqlalchemy import func, select

    from ..monitoring._models import AlertRow, CheckRow, MonitoredModel, PredictionRow

    reg = prom.CollectorRegistry()
    g = lambda name, doc, labels: prom.Gauge(name, doc, labels, registry=reg)  # noqa: E731
    metric = g("poisonguard_monitor_metric", "Metric of the newest check window", ["model", "metric", "class"])
    baseline = g("poisonguard_monitor_baseline", "Baseline value of the metric", ["model", "metric", "class"])
    psi = g("poisonguard_monitor_prediction_psi", "PSI of the prediction distribution", ["model"])
    alerts = g("poisonguard_monitor_alerts", "Alerts fired by the newest check", ["model"])
    status = g("poisonguard_monitor_check_status", "Newest check: 0 ok, 1 alert, 2 failed", ["model"])
    when = g("poisonguard_monitor_check_window_end_seconds", "End of the newest check window", ["model"])
    logged = g("poisonguard_monitor_predictions_logged", "Predictions logged", ["model"])
    total_alerts = g("poisonguard_monitor_alerts_stored", "Alerts stored in all", ["model"])
    with store.session() as s:
        for m in s.scalars(select(MonitoredModel)):
            logged.labels(m.name).set(s.scalar(select(func.count()).where(PredictionRow.model_id == m.id)) or 0)
            total_alerts.labels(m.name).set(s.scalar(select(func.count()).where(AlertRow.model_id == m.id)) or 0)
            body = s.scalar(select(CheckRow.body).where(CheckRow.model_id == m.id)
                            .order_by(CheckRow.window_end.desc(), CheckRow.id.desc()).limit(1))
            if body is None:
                continue
            c = json.loads(body)
            status.labels(m.name).set({"ok": 0, "alert": 1}.get(c["status"], 2))
            when.labels(m.name).set(c["window_end"])
            alerts.labels(m.name).set(len(c.get("alerts", [])))
            for chk in c.get("checks", []):
                cls = chk["label"] if chk["label"] is not None else "macro"
                if chk["value"] is not None:
                    metric.labels(m.name, chk["metric"], cls).set(chk["value"])
                if chk["baseline"] is not None:
                    baseline.labels(m.name, chk["metric"], cls).set(chk["baseline"])
            for d in c.get("drift", []):
                if d["kind"] == "predictions":
                    psi.labels(m.name).set(d["psi"])
    return prom.generate_latest(reg)


@router.get("/metrics", response_class=Response)
def get_metrics(store: Store = Depends(get_store)) -> Response:
    """Prometheus text format (``text/plain; version=0.0.4``)."""
    prom = import_optional("prometheus_client", "monitor")
    return Response(content=render_metrics(store), media_type=prom.CONTENT_TYPE_LATEST)
