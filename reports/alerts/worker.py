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
import hashlib
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
# Keeps the claim locks apart from the day-file locks (reports.locks) and any other advisory-lock user.
_GROUP_NAMESPACE = b"relevo-alert-group:"


def backoff_seconds(attempts: int) -> float:
    """The wait after the *attempts*-th failure: doubling from 5 s up to an hour, with ±50% jitter."""
    base = min(BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)
    return base * random.uniform(0.5, 1.5)


def claim(*, now: dt.datetime | None = None) -> list[AlertDelivery]:
    """Lease the next message's rows (one rule, one destination); [] when nothing is due.

    A message must leave whole, so two workers must not split one group's
    rows between them (row locks alone would: each scan skips the rows the
    other has locked, and both send part of one rule's alerts). On PostgreSQL
    a worker therefore first takes the group's transaction-level advisory
    lock with ``pg_try_advisory_xact_lock`` (a group another worker is
    claiming is passed over, not waited for), then reads and locks that
    group's due rows ``FOR UPDATE SKIP LOCKED``. The lease commits before the
    advisory lock ends, so the next claimer of that group sees it leased.
    On SQLite the writer lock already makes claims one at a time.
    """
    now = now or timezone.now()
    with write_transaction():
        due = (AlertDelivery.objects.filter(state=AlertDelivery.PENDING, next_attempt_at__lte=now)
               .exclude(lease_until__gt=now).order_by("id"))
        seen = set()
        for batch, rule_id, destination_id in due.values_list("batch", "rule_id", "destination_id")[:CLAIM_ROWS]:
            group = (batch,) if batch else ("", rule_id, destination_id)
            if group in seen:
                continue
            seen.add(group)
            if not _group_lock_try(group):
                continue
            rows = due.filter(batch=batch) if batch else due.filter(batch="", rule_id=rule_id,
                                                                  destination_id=destination_id)
            if connection.features.has_select_for_update_skip_locked:
                rows = rows.select_for_update(skip_locked=True)
            rows = list(rows[:CLAIM_ROWS])
            if not rows:
                continue
            key = rows[0].batch or rows[0].key
            lease = now + dt.timedelta(seconds=settings.ALERTS_LEASE_SECONDS)
            AlertDelivery.objects.filter(pk__in=[row.pk for row in rows]).update(batch=key, lease_until=lease)
            for row in rows:
                row.batch, row.lease_until = key, lease
            return rows
    return []


def group_lock_key(group: tuple) -> int:
    """The advisory-lock key of one message group: ``(batch,)``, or ``("", rule id, destination id)``."""
    digest = hashlib.blake2b(_GROUP_NAMESPACE + repr(group).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _group_lock_try(group: tuple) -> bool:
    """Take one message group's claim lock until the transaction ends; False if another worker holds it."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [group_lock_key(group)])
        return cursor.fetchone()[0]


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
