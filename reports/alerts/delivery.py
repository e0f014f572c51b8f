"""Sending one alert message: the webhook's body and signature, the Slack body, the e-mail.

A message is the alerts of one rule for one destination that were due
together (``reports.alerts.worker`` groups them). The webhook body carries
an idempotency key (the same on every retry of the message) and is signed
the way Stripe signs its webhooks: ``X-Relevo-Signature: t=<unix
time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the destination's secret>``.
``signature_verify`` is the receiver's side, and docs/alerts.md shows it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests
from django.conf import settings
from django.core import mail
from django.urls import reverse

SIGNATURE_HEADER = "X-Relevo-Signature"
TIMEOUT_SECONDS = (5, 10)  # connect, read


class DeliveryError(Exception):
    """The receiver did not take the message (refused, timed out, answered other than 2xx); retried later."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Relevo-Signature`` value of *body* sent at *timestamp*."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def signature_verify(secret: str, header: str, body: bytes, *, tolerance_seconds: int = 300,
                     now: float | None = None) -> bool:
    """Whether *header* signs *body* with *secret*, and was made within *tolerance_seconds* (replays)."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")


def message(*, rule: dict, batch: str, alerts: list[dict]) -> dict:
    """The webhook body: the rule, the idempotency key, and each alert with its host, change and link."""
    for alert in alerts:
        if alert.get("host", {}).get("id") is not None:
            alert["changes_url"] = settings.ALERTS_BASE_URL + reverse("reports:host_changes",
                                                                      args=[alert["host"]["id"]])
    return {"idempotency_key": batch, "rule": rule, "count": len(alerts), "alerts": alerts}


def text(body: dict) -> str:
    """The message as lines of text (e-mail and Slack)."""
    lines = [f"[Relevo] {body['rule']['name']}: {body['count']} alert(s)"]
    for alert in body["alerts"][:50]:
        link = f" {alert['changes_url']}" if alert.get("changes_url") else ""
        lines.append(f"- {alert['host']['name']}: {alert['subject']}{link}")
    if body["count"] > 50:
        lines.append(f"... and {body['count'] - 50} more")
    return "\n".join(lines)


def webhook_send(*, url: str, secret: str, body: dict, slack: bool) -> None:
    """POST the message (signed JSON, or Slack's ``{"text": ...}``); raises DeliveryError unless 2xx."""
    data = json.dumps({"text": text(body)} if slack else body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": body["idempotency_key"],
               SIGNATURE_HEADER: signature(secret, int(time.time()), data)}
    try:
        response = requests.post(url, data=data, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"HTTP {response.status_code}: {response.text[:200]}")


def email_send(*, addresses: list[str], body: dict) -> None:
    """Send the message as plain text through Django's mail settings; raises DeliveryError on failure."""
    subject = f"[Relevo] {body['rule']['name']}: {body['count']} alert(s)"
    try:
        mail.send_mail(subject, text(body), settings.DEFAULT_FROM_EMAIL, addresses, fail_silently=False)
    except (OSError, mail.BadHeaderError) as exc:  # smtplib.SMTPException is an OSError
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
