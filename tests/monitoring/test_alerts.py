"""Alert channels against local servers: a loopback HTTP server and aiosmtpd."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from monitor_traffic import DAY, T0, traffic

from poisonguard.monitoring import (Alert, EmailChannel, Monitor, MonitorConfig, SlackChannel, WebhookChannel,
                                    config_from_dict, deliver)

ALERTS = [Alert("metric:recall[2]:drop", "critical", "recall of class 2 fell from 0.900 to 0.700", 0.7, 0.05)]


class _Server:
    """A loopback HTTP server that records POST bodies and answers ``status`` (or fails the first ``fail`` calls)."""

    def __init__(self, *, status: int = 200, fail: int = 0) -> None:
        self.bodies: list[dict] = []
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.calls += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                code = 500 if outer.calls <= fail else status
                if code < 300:
                    outer.bodies.append(json.loads(body))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *a) -> None:  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server():
    servers: list[_Server] = []

    def make(**kw) -> _Server:
        servers.append(_Server(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_webhook_posts_json(http_server):
    srv = http_server()
    out = deliver([WebhookChannel(srv.url)], "clf", ALERTS, {"window": "w", "check_id": 7}, retries=1)
    assert out[0].ok and out[0].attempts == 1
    body = srv.bodies[0]
    assert body["model"] == "clf" and body["check_id"] == 7
    assert body["alerts"][0]["rule"] == "metric:recall[2]:drop" and body["alerts"][0]["value"] == 0.7


def test_slack_payload_is_text(http_server):
    srv = http_server()
    assert deliver([SlackChannel(srv.url)], "clf", ALERTS, {"window": "w"}, retries=1)[0].ok
    assert set(srv.bodies[0]) == {"text"} and "recall of class 2 fell" in srv.bodies[0]["text"]


def test_failing_channel_is_retried_then_succeeds(http_server):
    srv = http_server(fail=2)
    out = deliver([WebhookChannel(srv.url)], "clf", ALERTS, {}, retries=3, backoff=0)
    assert out[0].ok and out[0].attempts == 3 and srv.calls == 3 and len(srv.bodies) == 1


def test_failing_channel_is_reported_not_dropped(http_server):
    bad, good = http_server(status=503), http_server()
    out = deliver([WebhookChannel(bad.url, name="pager"), SlackChannel(good.url)], "clf", ALERTS, {}, retries=2,
                  backoff=0)
    assert [d.channel for d in out] == ["pager", "slack"]
    assert not out[0].ok and out[0].attempts == 2 and "503" in out[0].error and bad.calls == 2
    assert out[1].ok and len(good.bodies) == 1  # one failing channel does not stop the others


def test_unreachable_endpoint_is_reported():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = deliver([WebhookChannel(f"http://127.0.0.1:{port}/x", timeout=2)], "clf", ALERTS, {}, retries=2, backoff=0)
    assert not out[0].ok and "cannot reach" in out[0].error


def test_email_reaches_smtp_server():
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.handlers import Message

    received = []

    class Keep(Message):
        def handle_message(self, message) -> None:  # noqa: ANN001
            received.append(message)

    with socket.socket() as s:  # a free loopback port for the SMTP server
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = aiosmtpd.Controller(Keep(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        ch = EmailChannel(host="127.0.0.1", port=port, sender="mon@example.org", to=["ops@example.org"])
        out = deliver([ch], "clf", ALERTS, {"window": "w"}, retries=1)
    finally:
        ctl.stop()
    assert out[0].ok
    assert len(received) == 1 and received[0]["To"] == "ops@example.org"
    assert "1 alert(s) for model clf" in received[0]["Subject"]
    assert "recall of class 2 fell" in received[0].get_payload()


def test_check_stores_failed_delivery_and_resends_next_time(store, http_server):
    bad = http_server(status=500)
    cfg = config_from_dict({"alerts": {"retries": 2, "backoff": 0, "channels": [{"type": "webhook", "url": bad.url}]}})
    mon = Monitor("clf", store=store, config=cfg)
    mon.record_baseline(traffic(4000, seed=1).rename(columns={"prediction": "pred"}), label="label", pred="pred",
                        conf="confidence", features=[])
    mon.log(traffic(2000, seed=2, recall=(0.9, 0.9, 0.6, 0.9)), label="label")
    first = mon.check(window="1d", end=T0 + DAY)
    assert first.alerts and first.delivery_failed and bad.calls == 2
    stored = mon.alerts()
    assert stored and not any(a["delivered"] for a in stored)
    assert all(not d["ok"] for a in stored for d in a["deliveries"])
    # an undelivered alert is not "recent": the next check sends it again instead of suppressing it
    second = mon.check(window="1d", end=T0 + DAY)
    assert not second.suppressed and bad.calls == 4


def test_default_channel_is_the_log(store, caplog):
    mon = Monitor("clf", store=store, config=MonitorConfig())
    mon.record_baseline(traffic(4000, seed=1).rename(columns={"prediction": "pred"}), label="label", pred="pred",
                        features=[])
    mon.log(traffic(2000, seed=3, recall=(0.9, 0.6, 0.9, 0.9)), label="label")
    with caplog.at_level("WARNING", logger="poisonguard.monitoring.alerts"):
        res = mon.check(window="1d", end=T0 + DAY)
    assert [d.channel for d in res.deliveries] == ["log"] and res.deliveries[0].ok
    assert any("recall of class 1 fell" in r.getMessage() for r in caplog.records)
