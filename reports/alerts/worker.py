"""The alert worker: claim due deliveries, send them as one message per rule and destination, retry.

A claim is a short transaction that takes due rows and leases them
(``lease_until``): on PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED``,
so several workers take disjoint rows; on SQLite inside the writer lock
(``reports.dbwrite``), so claims happen one at a time. Sending happens
outside any transaction. A worker killed mid-send leaves its rows leased;
when the lease ends another worker (or the same one restarted) sends them
again with the same idempotency key, so receivers can drop the rare repeat.

Rows of one rule and destination due together become one message (the
grouping interval of the rule delays the first send, so an outage's 300
"offline" alerts leave as one). A failed send is retried with exponential
backoff and jitter until ``ALERTS_GIVE_UP_AFTER`` has passed since the
alert was written; then it is marked failed, its last error kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.utils import timezone

from reports.alerts import delivery, outbox
from reports.dbwrite import write_transaction
from reports.durations import parse_duration
from reports.models import AlertDelivery, AlertDestination

logger = logging.getLogger(__name__)

CLAIM_ROWS = 1000
BACKOFF_FIRST_SECONDS = 5
BACKOFF_MAX_SECONDS = 3600
STATUS_EVERY_SECONDS = 30.0


def backoff_seconds(attempts: int) -> float:
    """The wait after the *attempts*-th failure: doubling from 5 s up to an hour, with ±50% jitter."""
    base = min(BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)
    return base * random.uniform(0.5, 1.5)


def claim(*, now: dt.datetime | None = None) -> list[AlertDelivery]:
    """Lease the next message's rows (one rule, one destination); [] when nothing is due."""
    now = now or timezone.now()
    with write_transaction():
        due = (AlertDelivery.objects.filter(state=AlertDelivery.PENDING, next_attempt_at__lte=now)
               .exclude(lease_until__gt=now).order_by("id"))
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        rows = list(due[:CLAIM_ROWS])
        if not rows:
            return []
        first = rows[0]
        if first.batch:
            group = [row for row in rows if row.batch == first.batch]
        else:
            group = [row for row in rows if not row.batch and row.rule_id == first.rule_id
                     and row.destination_id == first.destination_id]
        batch = first.batch or first.key
        lease = now + dt.timedelta(seconds=settings.ALERTS_LEASE_SECONDS)
        AlertDelivery.objects.filter(pk__in=[row.pk for row in group]).update(batch=batch, lease_until=lease)
        for row in group:
            row.batch, row.lease_until = batch, lease
    return group


def send(rows: list[AlertDelivery]) -> None:
    """Send one claimed message and record the outcome on its rows."""
    first = rows[0]
    destination = AlertDestination.objects.get(pk=first.destination_id)
    rule = first.rule
    body = delivery.message(
        rule={"id": rule.pk, "name": rule.name, "kind": rule.kind}, batch=first.batch,
        alerts=[{"key": row.key, "kind": row.kind, "subject": row.subject, "before": row.before, "after": row.after,
                 "at": row.created_at.isoformat(), "host": {"id": row.host_id, "name": row.host_name}}
                for row in rows],
    )
    pks = [row.pk for row in rows]
    attempts = max(row.attempts for row in rows) + 1
    try:
        if destination.kind == AlertDestination.EMAIL:
            delivery.email_send(addresses=destination.email_list(), body=body)
        else:
            delivery.webhook_send(url=destination.url, secret=destination.secret, body=body, slack=destination.slack)
    except delivery.DeliveryError as exc:
        now = timezone.now()
        give_up = min(row.created_at for row in rows) + parse_duration(settings.ALERTS_GIVE_UP_AFTER)
        retry_at = now + dt.timedelta(seconds=backoff_seconds(attempts))
        state = AlertDelivery.FAILED if retry_at > give_up else AlertDelivery.PENDING
        logger.warning("alert %s to %s failed (attempt %d, %s): %s", first.batch, destination, attempts, state, exc)
        with write_transaction():
            AlertDelivery.objects.filter(pk__in=pks).update(
                state=state, attempts=attempts, last_error=str(exc)[:2000], next_attempt_at=retry_at, lease_until=None)
        return
    with write_transaction():
        AlertDelivery.objects.filter(pk__in=pks).update(state=AlertDelivery.DELIVERED, attempts=attempts,
                                                        delivered_at=timezone.now(), lease_until=None, last_error="")


def run_once(*, statuses: bool = True) -> int:
    """Evaluate the status rules (unless told not to), then send every due message; returns the messages tried."""
    if statuses:
        outbox.status_alerts()
    sent = 0
    while rows := claim():
        send(rows)
        sent += 1
    return sent


def run_forever(*, poll_seconds: float = 1.0, status_seconds: float = STATUS_EVERY_SECONDS,
                should_stop: Callable[[], bool] = lambda: False) -> None:
    """``run_once`` every *poll_seconds* until *should_stop* says so (SIGTERM in the command).

    The host statuses are evaluated every *status_seconds* only: that reads
    every host, and a status changes on a scale of minutes.
    """
    statuses_due = 0.0
    while not should_stop():
        started = time.monotonic()
        try:
            run_once(statuses=started >= statuses_due)
            if started >= statuses_due:
                statuses_due = started + status_seconds
        except Exception:  # a database hiccup must not end the worker; the next round retries
            logger.exception("alert worker round failed")
            connection.close()
        time.sleep(max(poll_seconds - (time.monotonic() - started), 0.05))
