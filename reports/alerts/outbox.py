"""The alert outbox: evaluating the rules and writing AlertDelivery rows, never sending anything.

``upload_alerts`` runs inside the upload's transaction (called once, from
``reports.services.ingest._host_update``), so the rows an upload produces
commit or roll back with its snapshot: an acknowledged snapshot never loses
its alert, and ingest never waits on a receiver (``reports.alerts.worker``
sends them later). The change is computed once per upload against the
host's stored summary (the process index, the software pairs, the socket
and disk rows, as they are before this upload rewrites them), never by
reading documents, and only for the kinds some active rule asks about.

The active rules are cached per process: with none, an upload costs one
cached lookup; a write through this module's services drops the cache at
once in its own process, and other processes reload it after
``ALERTS_RULES_CACHE_SECONDS`` (5 s by default).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import hashlib
import json
import threading
import time
import uuid

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from reports import inventory_index, processes, rowsql
from reports import payload as payload_schema
from reports.alerts import rules
from reports.dbwrite import write_transaction
from reports.models import (
    AlertDelivery, AlertDestination, AlertHostStatus, AlertRule, Host, HostDisk, HostIndexState, HostListeningSocket,
    HostSoftware,
    host_status,
)

_paused: contextvars.ContextVar[bool] = contextvars.ContextVar("alerts_paused", default=False)
_cache_lock = threading.Lock()
_cache: dict[str, object] = {"rules": None, "loaded": 0.0}


def active_rules() -> tuple[rules.Rule, ...]:
    """The active rules with their destinations, from the per-process cache (reloaded when stale)."""
    ttl = settings.ALERTS_RULES_CACHE_SECONDS
    cached = _cache["rules"]
    if cached is not None and time.monotonic() - _cache["loaded"] < ttl:
        return cached
    loaded = tuple(_rule_of(rule) for rule in AlertRule.objects.filter(active=True).prefetch_related("destinations"))
    with _cache_lock:
        _cache.update(rules=loaded, loaded=time.monotonic())
    return loaded


def rules_changed() -> None:
    """Forget the cached rules (after a rule or destination is written)."""
    with _cache_lock:
        _cache.update(rules=None, loaded=0.0)


def _rule_of(rule: AlertRule) -> rules.Rule:
    return rules.Rule(
        pk=rule.pk, name=rule.name, kind=rule.kind, pattern=rule.pattern, threshold_percent=rule.threshold_percent,
        allowed_ports=rules.parse_ports(rule.allowed_ports), os_name=rule.os_name,
        os_version=rule.os_version, hostname_pattern=rule.hostname_pattern, group_seconds=rule.group_seconds,
        destinations=tuple(sorted(d.pk for d in rule.destinations.all())),
    )


@contextlib.contextmanager
def paused():
    """No upload alert inside: a rebuild from the day files (``day_reindex``) records old news, not changes."""
    token = _paused.set(True)
    try:
        yield
    finally:
        _paused.reset(token)


# --- the services the admin writes through ----------------------------------------

def alert_rule_save(*, rule: AlertRule, destinations=None) -> AlertRule:
    """Validate and save a rule (and its destinations when given); the cache follows."""
    rule.full_clean(exclude=["destinations"])
    with transaction.atomic():
        rule.save()
        if destinations is not None:
            rule.destinations.set(destinations)
    rules_changed()
    return rule


def alert_destination_save(*, destination: AlertDestination) -> AlertDestination:
    """Validate and save a destination; a webhook gets a random secret if it has none."""
    if destination.kind == AlertDestination.WEBHOOK and not destination.secret:
        destination.secret = uuid.uuid4().hex + uuid.uuid4().hex
    destination.full_clean()
    destination.save()
    rules_changed()
    return destination


def alert_delete(*, instance: AlertRule | AlertDestination) -> None:
    """Delete a rule or a destination (their deliveries go with them)."""
    instance.delete()
    rules_changed()


# --- what an upload fires ------------------------------------------------------------

def upload_alerts(*, host: Host, payload: payload_schema.SnapshotPayload, changes: dict[str, object],
                  process_index: str, digests: inventory_index.Digests | None = None) -> int:
    """Write the deliveries this upload fires (inside its transaction); returns how many.

    *host* holds the columns as they were before this upload; *changes* is
    what ingest is about to write; *digests* are the payload's areas'
    (``inventory_index.Digests``), when ingest computed them before its
    transaction. Only the host's newest snapshot is
    compared (a late one changes nothing), and a host's first snapshot
    fires nothing (there is nothing to compare it with).
    """
    if _paused.get():
        return 0
    active = active_rules()
    if not active or "latest_snapshot" not in changes:
        return 0
    if host.first_seen == host.last_seen == payload.collected_at:
        return 0
    hostname = changes.get("hostname", host.hostname)
    os_name = changes.get("os_name", host.os_name)
    os_version = changes.get("os_version", host.os_version)
    watching = [rule for rule in active if rule.kind in rules.UPLOAD_KINDS
                and rule.in_scope(hostname=hostname, os_name=os_name, os_version=os_version)]
    if not watching:
        return 0
    before = _Before(host, digests)
    found: list[tuple[rules.Rule, rules.Change]] = []
    for rule in watching:
        if rule.kind in rules.PROCESS_KINDS:
            started, stopped = before.process_difference(process_index)
            found += [(rule, c) for c in rules.process_changes(rule, started=started, stopped=stopped)]
        elif rule.kind in rules.SOFTWARE_KINDS and "software_snapshot" in changes and payload.software is not None \
                and payload.software_digest != host.software_digest:
            after = [(entry.name, entry.version or "") for entry in payload.software]
            found += [(rule, c) for c in rules.software_changes(rule, before=before.software(), after=after)]
        elif rule.kind in rules.PORT_KINDS and payload.listening is not None \
                and before.area_changed("listening", payload.listening):
            after = [(s.protocol, s.port) for s in payload.listening]
            found += [(rule, c) for c in rules.port_changes(rule, before=before.ports(), after=after)]
        elif rule.kind in rules.IDENTITY_KINDS:
            found += [(rule, c) for c in rules.identity_changes(
                rule, conflict_before=host.identity_conflict_since is not None,
                conflict_after=changes.get("identity_conflict_since", host.identity_conflict_since) is not None,
                fields=str(changes.get("identity_conflict_fields", host.identity_conflict_fields)))]
        elif rule.kind in rules.DISK_KINDS and payload.disks is not None and before.area_changed("disks", payload.disks):
            after = {d.mount_point: inventory_index.used_percent(d) for d in payload.disks}
            found += [(rule, c) for c in rules.disk_changes(rule, before=before.disks(), after=after)]
    return _write(found, host_pk=host.pk, host_name=hostname, occasion=str(payload.snapshot_id))


class _Before:
    """The host's stored state before this upload, each area read at most once and only if a rule asks.

    Sockets and disks are read only when their digest differs from the one
    their rows were written from (``HostIndexState``, which ingest reads next
    anyway): an unchanged area has no change to report. The reads go through
    ``reports.rowsql`` or one raw statement, as the rest of the upload does.
    """

    def __init__(self, host: Host, digests: inventory_index.Digests | None = None):
        self.host = host
        self.digests = digests
        self._read: dict[str, object] = {}

    def _once(self, area, read):
        if area not in self._read:
            self._read[area] = read()
        return self._read[area]

    def process_difference(self, after_index: str) -> tuple[frozenset[str], frozenset[str]]:
        def read():
            if self.host.process_index_digest == processes.index_digest(after_index):
                return frozenset(), frozenset()  # the same list: nothing started or stopped, nothing to read
            row = rowsql.select_one(Host, ["process_index"], where={"id": self.host.pk})
            return rules.index_difference(row.process_index if row else "", after_index)
        return self._once("processes", read)

    def area_changed(self, area: str, entries) -> bool:
        state = self._once("digests", lambda: rowsql.select_one(
            HostIndexState, ["listening_digest", "disks_digest"], where={"host": self.host.pk}))
        digest = getattr(self.digests, area) if self.digests is not None else inventory_index.area_digest(entries)
        return state is None or getattr(state, f"{area}_digest") != digest

    def software(self) -> list[tuple[str, str]]:
        return self._once("software", lambda: list(HostSoftware.objects.filter(host_id=self.host.pk)
                                                   .values_list("software__name", "software__version")))

    def ports(self) -> list[tuple[str, int]]:
        return self._once("ports", lambda: self._rows(HostListeningSocket, ["protocol", "port"]))

    def disks(self) -> dict[str, float | None]:
        return self._once("disks", lambda: dict(self._rows(HostDisk, ["mount_point", "used_percent"])))

    def _rows(self, model, names: list[str]) -> list[tuple]:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(model._meta.get_field(name).column) for name in names)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {columns} FROM {quote(model._meta.db_table)} "
                           f"WHERE {quote(model._meta.get_field('host').column)} = %s", [self.host.pk])
            return [tuple(row) for row in cursor.fetchall()]


def _write(found: list[tuple[rules.Rule, rules.Change]], *, host_pk: int | None, host_name: str,
           occasion: str, now: dt.datetime | None = None) -> int:
    """One AlertDelivery per change and destination, due after the rule's grouping interval."""
    now = now or timezone.now()
    rows = []
    for rule, change in found:
        for destination in rule.destinations:
            key = hashlib.sha256(f"{rule.pk}|{destination}|{host_pk}|{occasion}|{change.kind}|{change.detail}"
                                 .encode()).hexdigest()[:40]
            rows.append(AlertDelivery(
                rule_id=rule.pk, destination_id=destination, host_id=host_pk, host_name=host_name[:255],
                kind=change.kind, subject=change.subject[:512], before=change.before, after=change.after, key=key,
                created_at=now, next_attempt_at=now + dt.timedelta(seconds=rule.group_seconds),
            ))
    if rows:
        AlertDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# --- what the worker's timer fires -----------------------------------------------------

def status_alerts(*, now: dt.datetime | None = None) -> int:
    """Record every host's status and write the deliveries of its transitions; returns how many.

    Run by the worker on a timer. A host seen for the first time is recorded
    without firing, so starting the worker on a fleet does not report every
    stale host at once.
    """
    now = now or timezone.now()
    watching = [rule for rule in active_rules() if rule.kind in rules.STATUS_KINDS]
    if not watching:
        return 0
    known = dict(AlertHostStatus.objects.values_list("host_id", "status"))
    written = 0
    with write_transaction():
        fresh, moved = [], []
        for pk, hostname, os_name, os_version, last_seen in Host.objects.values_list(
                "pk", "hostname", "os_name", "os_version", "last_seen"):
            status = host_status(last_seen, now)
            old = known.get(pk)
            if old is None:
                fresh.append(AlertHostStatus(host_id=pk, status=status))
                continue
            if old == status:
                continue
            moved.append(AlertHostStatus(host_id=pk, status=status))
            found = [(rule, change) for rule in watching
                     if rule.in_scope(hostname=hostname, os_name=os_name, os_version=os_version)
                     for change in rules.status_changes(rule, before=old, after=status)]
            written += _write(found, host_pk=pk, host_name=hostname, occasion=last_seen.isoformat(), now=now)
        AlertHostStatus.objects.bulk_create(fresh, ignore_conflicts=True)
        AlertHostStatus.objects.bulk_update(moved, ["status"], batch_size=500)
    return written


def rejected_alert(*, token_host_id: str | None, body: bytes, error: payload_schema.PayloadError) -> int:
    """Write the deliveries of a snapshot the server refused (400) from a known agent.

    The agent is the host its token is bound to, or else the ``host.id`` the
    refused body names, if it can be read and is a host already stored.
    """
    watching = [rule for rule in active_rules() if rule.kind in rules.REJECTED_KINDS]
    if not watching:
        return 0
    host_id = token_host_id or _claimed_host_id(body)
    if not host_id:
        return 0
    host = Host.objects.filter(host_id=host_id).values_list("pk", "hostname", "os_name", "os_version").first()
    if host is None:
        return 0
    pk, hostname, os_name, os_version = host
    refused = {"error": error.message, "fields": dict(list(error.errors.items())[:20])}
    change = rules.Change("snapshot_rejected", "snapshot rejected by the server", None, refused, "")
    found = [(rule, change) for rule in watching
             if rule.in_scope(hostname=hostname, os_name=os_name, os_version=os_version)]
    with write_transaction():
        return _write(found, host_pk=pk, host_name=hostname, occasion=uuid.uuid4().hex)


def _claimed_host_id(body: bytes) -> str | None:
    """The ``host.id`` of a body the schema refused, if it is JSON with one."""
    try:
        claimed = json.loads(body).get("host", {}).get("id")
    except (ValueError, AttributeError):
        return None
    return claimed if isinstance(claimed, str) and len(claimed) <= 256 else None
