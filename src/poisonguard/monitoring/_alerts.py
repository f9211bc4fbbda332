"""Alert channels: the log, a generic JSON webhook, a Slack-compatible webhook and SMTP email.

A channel either delivers an alert or raises; :func:`deliver` retries each channel with
exponential backoff and returns one :class:`Delivery` per channel, so a failing channel
is reported (and stored by the check), never silently dropped. HTTP uses the standard
library's ``urllib`` and mail its ``smtplib``: both are well kept and need no extra.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

from ..errors import ConfigError

__all__ = ["Alert", "Delivery", "Channel", "LogChannel", "WebhookChannel", "SlackChannel", "EmailChannel",
           "make_channel", "deliver"]

log = logging.getLogger("poisonguard.monitoring.alerts")


@dataclass(frozen=True)
class Alert:
    """One fired rule of a check.

    Attributes
    ----------
    rule : str
        Stable key of the rule, e.g. ``metric:recall[3]:drop`` or ``signature:probe[trig]``;
        repeated alerts of one rule are de-duplicated with it.
    severity : str
        ``critical`` (metric rules, poisoning signatures) or ``warning`` (drift).
    message : str
        One sentence with the actual values.
    value, threshold : float or None
        The measured value and the limit it crossed.
    """

    rule: str
    severity: str
    message: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Delivery:
    """What happened when one channel was asked to deliver a check's alerts."""

    channel: str
    ok: bool
    attempts: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Channel(Protocol):
    name: str

    def send(self, model: str, alerts: Sequence[Alert], context: Mapping[str, Any]) -> None: ...


def _text(model: str, alerts: Sequence[Alert], context: Mapping[str, Any]) -> str:
    head = f"poisonguard monitor: {len(alerts)} alert(s) for model {model} (window {context.get('window', '?')})"
    return "\n".join([head] + [f"[{a.severity}] {a.message}" for a in alerts])


@dataclass
class LogChannel:
    """Writes each alert to the ``poisonguard.monitoring.alerts`` logger at WARNING (the CLI also prints them)."""

    name: str = "log"

    def send(self, model: str, alerts: Sequence[Alert], context: Mapping[str, Any]) -> None:
        for a in alerts:
            log.warning("model %s: [%s] %s", model, a.severity, a.message)


def _post_json(url: str, payload: Mapping[str, Any], *, timeout: float, headers: Mapping[str, str]) -> None:
    body = json.dumps(payload, default=str).encode("utf-8")
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **dict(headers)})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - URL comes from the user's config
            if resp.status >= 300:
                raise OSError(f"HTTP {resp.status} from {url}")
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} from {url}") from exc
    except urllib.error.URLError as exc:
        raise OSError(f"cannot reach {url}: {exc.reason}") from exc


@dataclass
class WebhookChannel:
    """POSTs ``{"model", "window", "check_id", "alerts": [...]}`` as JSON; any 2xx is success."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    name: str = "webhook"

    def send(self, model: str, alerts: Sequence[Alert], context: Mapping[str, Any]) -> None:
        payload = {"model": model, **dict(context), "alerts": [a.to_dict() for a in alerts]}
        _post_json(self.url, payload, timeout=self.timeout, headers=self.headers)


@dataclass
class SlackChannel:
    """POSTs Slack's incoming-webhook body ``{"text": ...}`` (Mattermost and others accept it too)."""

    url: str
    timeout: float = 10.0
    name: str = "slack"

    def send(self, model: str, alerts: Sequence[Alert], context: Mapping[str, Any]) -> None:
        _post_json(self.url, {"text": _text(model, alerts, context)}, timeout=self.timeout, headers={})


@dataclass
class EmailChannel:
    """Sends one plain-text mail per check through SMTP (STARTTLS and login when configured).

    The password is read from the environment variable named by ``password_env``, never
    from the config file.
    """

    host: str
    sender: str
    to: Sequence[str]
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout: float = 10.0
    name: str = "email"

    def send(self, model: str, alerts: Sequence[Alert], context: Mapping[str, Any]) -> None:
        msg = EmailMessage()
        msg["Subject"] = f"[poisonguard] {len(alerts)} alert(s) for model {model}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg.set_content(_text(model, alerts, context))
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                password = os.environ.get(self.password_env or "", "")
                smtp.login(self.username, password)
            smtp.send_message(msg)


def make_channel(spec: Mapping[str, Any], *, timeout: float = 10.0) -> Channel:
    """A channel from a config table (``type`` = log | webhook | slack | email)."""
    kind = spec.get("type")
    name = str(spec.get("name", kind))
    if kind == "log":
        return LogChannel(name=name)
    if kind == "webhook":
        return WebhookChannel(url=str(spec["url"]), headers=dict(spec.get("headers", {})), timeout=timeout, name=name)
    if kind == "slack":
        return SlackChannel(url=str(spec["url"]), timeout=timeout, name=name)
    if kind == "email":
        to = spec["to"]
        return EmailChannel(host=str(spec["host"]), port=int(spec.get("port", 25)), sender=str(spec["from"]),
                            to=[to] if isinstance(to, str) else [str(t) for t in to],
                            starttls=bool(spec.get("starttls", False)), username=spec.get("username"),
                            password_env=spec.get("password_env"), timeout=timeout, name=name)
    raise ConfigError(f"unknown alert channel type {kind!r}; choose log, webhook, slack or email")


def deliver(channels: Sequence[Channel], model: str, alerts: Sequence[Alert], context: Mapping[str, Any], *,
            retries: int = 3, backoff: float = 0.5) -> list[Delivery]:
    """Send ``alerts`` on every channel, ``retries`` attempts each with backoff ``backoff * 2**i`` seconds.

    A channel that still fails is logged at ERROR and returned with ``ok=False``.
    """
    out = []
    for ch in channels:
        error = None
        for attempt in range(1, max(retries, 1) + 1):
            try:
                ch.send(model, alerts, context)
            except Exception as exc:  # any failure of a channel is reported, never raised past the others
                error = f"{type(exc).__name__}: {exc}"
                log.warning("alert channel %s attempt %d/%d failed: %s", ch.name, attempt, retries, error)
                if attempt < retries and backoff > 0:
                    time.sleep(backoff * 2 ** (attempt - 1))
                continue
            out.append(Delivery(ch.name, True, attempt))
            break
        else:
            log.error("alert channel %s failed after %d attempt(s): %s", ch.name, retries, error)
            out.append(Delivery(ch.name, False, max(retries, 1), error))
    return out
