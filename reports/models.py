"""The database mirror of the day files, and the credentials.

The day files (``reports.store``) are the record of what was received; these
tables make it searchable and are rebuilt from the files by ``manage.py
reindex``. A snapshot's full document is kept compressed in its row
(``reports.documents``), so either store can rebuild the other; the process
list is never exploded into one row per process (400 inserts per upload would
cap ingest near 50/s).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from reports import archive, documents, processes
from reports.alerts import rules as alert_rules
from reports.durations import parse_duration

# A host's status is a function of when it was last seen. Its one home is
# here: ``host_status`` for one host in Python, ``HostQuerySet.with_status``
# and ``status_counts`` for SQL, all from ``status_thresholds``.
HOST_STATUSES = ("online", "offline", "stale")


def status_thresholds(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """(offline_before, stale_before): a host last seen before these is offline / stale."""
    now = now or timezone.now()
    return (now - parse_duration(settings.INVENTORY_OFFLINE_AFTER),
            now - parse_duration(settings.INVENTORY_STALE_AFTER))


def host_status(last_seen: dt.datetime, now: dt.datetime | None = None) -> str:
    """The status of a host last seen at *last_seen*: the Python twin of ``HostQuerySet.with_status``."""
    offline_before, stale_before = status_thresholds(now)
    if last_seen < stale_before:
        return "stale"
    if last_seen < offline_before:
        return "offline"
    return "online"


def _status_filters(now: dt.datetime | None) -> dict[str, Q]:
    offline_before, stale_before = status_thresholds(now)
    return {
        "online": Q(last_seen__gte=offline_before),
        "offline": Q(last_seen__lt=offline_before, last_seen__gte=stale_before),
        "stale": Q(last_seen__lt=stale_before),
    }


class HostQuerySet(models.QuerySet):
    """Host queries that encode a rule, so the pages, the API, the admin and metrics share it."""

    def with_status(self, status: str, now: dt.datetime | None = None) -> HostQuerySet:
        """The hosts whose ``host_status`` is *status* (one of HOST_STATUSES)."""
        return self.filter(_status_filters(now)[status])

    def status_counts(self, now: dt.datetime | None = None) -> dict[str, int]:
        """How many hosts have each status: offline and stale as ranges of the last_seen index, online the rest.

        Counting all three in one pass evaluated a condition on every host
        (90 ms at 100,000 hosts on SQLite); in a fleet most hosts are online, so
        the two other ranges are small and the total is a count of the table.
        """
        filters = _status_filters(now)
        with transaction.atomic():  # one read of the table for the three numbers
            total = self.count()
            counts = {status: self.filter(filters[status]).count() for status in ("offline", "stale")}
        return {"online": total - counts["offline"] - counts["stale"], **counts}

    def running(self, query: str) -> HostQuerySet:
        """Hosts whose newest snapshot has a process matching *query*: the SQL side of ``reports.processes``."""
        needle = processes.query_needle(query)
        if not needle:
            return self.none()
        return self.filter(process_index__contains=needle)


class Host(models.Model):
    """A monitored machine, keyed by the id its agent reports (``host.id``)."""

    host_id = models.CharField(max_length=256, help_text="Stable machine id sent by the agent.")
    hostname = models.CharField(max_length=255)
    fqdn = models.CharField(max_length=255, blank=True, default="")
    last_ip = models.GenericIPAddressField(db_index=True)
    os_name = models.CharField(max_length=64, blank=True, default="")
    os_version = models.CharField(max_length=255, blank=True, default="")
    cpu_model = models.CharField(max_length=255, blank=True, default="")
    memory_total_bytes = models.BigIntegerField(null=True, blank=True)
    process_count = models.PositiveIntegerField(default=0)
    user_count = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True, help_text="collected_at of the newest snapshot.")
    latest_snapshot = models.ForeignKey(
        "Snapshot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    process_index = models.TextField(
        blank=True, default="", editable=False,
        help_text="Lower-cased 'name<TAB>cmdline' lines of the newest snapshot, for process search.",
    )
    process_index_digest = models.CharField(
        max_length=32, blank=True, default="", editable=False,
        help_text="blake2b-128 of process_index, hex; empty: not known (rows written before it existed).",
    )
    software_digest = models.CharField(
        max_length=64, blank=True, default="", editable=False,
        help_text="software_digest of the host's current software list (docs/payload.md, the software rule).",
    )
    software_snapshot = models.ForeignKey(
        "Snapshot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False,
        help_text="The snapshot whose document holds the host's current software list.",
    )
    # Kept by ingest from the newest snapshot (reports.host_search); the search text itself is a HostSearch row.
    search_digest = models.CharField(
        max_length=32, blank=True, default="", editable=False,
        help_text="blake2b-128 of the host's HostSearch text, hex; empty: not known (hosts stored before it existed).",
    )
    own_address = models.CharField(max_length=45, blank=True, default="", help_text="The host's own first address.")
    agent_version = models.CharField(max_length=64, blank=True, default="")
    boot_time = models.DateTimeField(null=True, blank=True)
    # Two machines, one id (reports.identity keeps these; docs/agent.md says how to fix a conflict).
    identity_serial = models.CharField(max_length=255, blank=True, default="", editable=False,
                                       help_text="The last hardware serial number the host reported.")
    identity_uuid = models.CharField(max_length=64, blank=True, default="", editable=False,
                                     help_text="The last hardware UUID the host reported.")
    identity_previous = models.CharField(max_length=1024, blank=True, default="", editable=False,
                                         help_text="Hostname, address, serial and UUID before the last change.")
    identity_returns = models.PositiveSmallIntegerField(default=0, editable=False,
                                                        help_text="Returns to the previous identity in the window.")
    identity_window_start = models.DateTimeField(null=True, blank=True, editable=False)
    identity_steady = models.PositiveIntegerField(default=0, editable=False,
                                                  help_text="Snapshots in a row without a change, while flagged.")
    identity_conflict_since = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="Set while two machines seem to send this host id (reports.identity).",
    )
    identity_conflict_fields = models.CharField(max_length=128, blank=True, default="", editable=False,
                                                help_text="What the two machines differ in.")

    objects = HostQuerySet.as_manager()

    @property
    def identity_conflict(self) -> bool:
        return self.identity_conflict_since is not None

    class Meta:
        ordering = ["hostname"]
        # host_hostname_lower serves the host list's case-insensitive name sort (reports.host_table);
        # host_os_version also answers the list's counts by OS and version from the index alone.
        # One index per other sortable column without one of its own, ending in
        # the pk tie-break, so a page of any sort reads 50 index entries instead
        # of sorting the fleet (docs/performance.md, fleet scale).
        #
        # Every upload's UPDATE of the host row (never HOT: last_seen is indexed) inserts into
        # each index, so there are no others: host_id's uniqueness and hostname (the admin's
        # order) are plain B-trees, without the text_pattern_ops copies that unique=True and
        # db_index=True add on PostgreSQL for LIKE 'prefix%', which nothing here asks; an OS
        # filter reads host_os_version; the few hosts flagged as two machines are a partial
        # index, which an unflagged host's UPDATE does not touch (migration 0019).
        constraints = [models.UniqueConstraint(fields=["host_id"], name="host_host_id_unique")]
        indexes = [models.Index(fields=["hostname"], name="host_hostname"),
                   models.Index(fields=["identity_conflict_since"], name="host_identity_conflict",
                                condition=models.Q(identity_conflict_since__isnull=False)),
                   models.Index(Lower("hostname"), "id", name="host_hostname_lower"),
                   models.Index(fields=["os_name", "os_version"], name="host_os_version")] + [
            models.Index(fields=[field, "id"], name=f"host_sort_{field}")
            for field in ("os_version", "cpu_model", "process_count", "user_count", "first_seen",
                          "own_address", "memory_total_bytes", "boot_time", "agent_version", "os_name")
        ]

    def __str__(self) -> str:
        return f"{self.hostname} ({self.last_ip})"


class Snapshot(models.Model):
    """One accepted upload: summary columns plus the compressed stored document.

    Most rows of an open day hold the document as a zstd delta of a full
    row of the same day file (``reports.documents``); rows of a compacted
    day hold a reference into the day's ``DocumentArchive``
    (``reports.archive``). ``document_bytes`` reads any of them.
    """

    snapshot_id = models.UUIDField(unique=True)
    # No index of its own: snapshot_host_time starts with this column and
    # serves every lookup by host, and each upload saved one index page.
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="snapshots", db_index=False)
    ip = models.GenericIPAddressField()
    day = models.DateField()
    collected_at = models.DateTimeField()
    received_at = models.DateTimeField()
    os_name = models.CharField(max_length=64, blank=True, default="")
    os_version = models.CharField(max_length=255, blank=True, default="")
    cpu_model = models.CharField(max_length=255, blank=True, default="")
    process_count = models.PositiveIntegerField(default=0)
    user_count = models.PositiveIntegerField(default=0)
    memory_total_bytes = models.BigIntegerField(null=True, blank=True)
    memory_available_bytes = models.BigIntegerField(null=True, blank=True)
    file_name = models.CharField(max_length=128)
    file_offset = models.BigIntegerField(help_text="Byte offset of the document in its day file.")
    file_length = models.PositiveIntegerField(help_text="Length in bytes of the document in its day file.")
    document_compressed = models.BinaryField(
        help_text="The stored document, zstd-compressed (rows written before zstd: zlib)."
    )

    class Meta:
        ordering = ["-collected_at"]
        indexes = [
            models.Index(fields=["ip", "day", "file_offset"], name="snapshot_ip_day"),
            models.Index(fields=["host", "-collected_at"], name="snapshot_host_time"),
        ]

    def __str__(self) -> str:
        return f"{self.snapshot_id} {self.ip} {self.collected_at:%Y-%m-%d %H:%M}"

    @property
    def is_archived(self) -> bool:
        """Whether the row's document lives in its host-day's ``DocumentArchive`` (a compacted day)."""
        return archive.reference_index(self.document_compressed) is not None

    @property
    def document_bytes(self) -> bytes:
        """The database's copy of the document: the row's blob, or its place in the host-day's archive.

        A delta's base row is read by its snapshot_id (``reports.documents``);
        an archived row's archive by the row's address and day (``reports.archive``).
        """
        index = archive.reference_index(self.document_compressed)
        if index is not None:
            return archived_document(ip=self.ip, day=self.day, index=index)
        return documents.unpack(self.document_compressed, base_blob=_document_blob)


def _document_blob(snapshot_id) -> bytes | None:
    return Snapshot.objects.filter(snapshot_id=snapshot_id).values_list("document_compressed", flat=True).first()


class DocumentArchive(models.Model):
    """The database's copy of a compacted host-day: every document of the day in one archive (``reports.archive``).

    Written by ``services.day_compact`` in the same transaction that turns
    the day's row blobs into references to it, so a document is always in
    one of the two.
    """

    ip = models.GenericIPAddressField()
    day = models.DateField()
    count = models.PositiveIntegerField()
    archive = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ip", "day"], name="document_archive_ip_day")]

    def __str__(self) -> str:
        return f"{self.ip} {self.day} ({self.count} documents)"

    def document(self, index: int) -> bytes:
        return archive.document_at(self.archive, index, max_bytes=self.max_stream_bytes())

    def documents(self):
        return archive.documents_of(self.archive, max_bytes=self.max_stream_bytes())

    def max_stream_bytes(self) -> int:
        return (self.count + 1) * documents.max_document_bytes()


def archived_document(*, ip: str, day, index: int) -> bytes:
    """Document *index* of the archive of *ip* and *day*; ``DocumentError`` if there is none or it is damaged."""
    found = DocumentArchive.objects.filter(ip=ip, day=day).first()
    if found is None:
        raise documents.DocumentError(f"the stored document is in the archive of {ip} {day}, which is gone")
    return found.document(index)


TOKEN_BYTES = 32


def _hash_token(raw: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough: no slow KDF needed."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class TokenBase(models.Model):
    """Shared shape of a credential: only a hash and a short display prefix are kept."""

    PREFIX = ""

    name = models.CharField(max_length=100)
    key_prefix = models.CharField(max_length=16, editable=False, help_text="First characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    @classmethod
    def generate(cls) -> tuple[str, str, str]:
        """A new raw token with its display prefix and hash; the raw value is shown once."""
        raw = cls.PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        return raw, raw[: len(cls.PREFIX) + 6], _hash_token(raw)

    @staticmethod
    def hash(raw: str) -> str:
        return _hash_token(raw)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AgentToken(TokenBase):
    """Lets one agent (or a fleet sharing it) upload snapshots; it can read nothing."""

    PREFIX = "rlv_a_"

    # Set by POST /enroll: the token may then upload only snapshots whose host.id
    # is this value. Empty for fleet tokens made with `create_agent_token`.
    host_id = models.CharField(
        max_length=256, null=True, blank=True, db_index=True,
        help_text="The only host.id this token may upload for (set by enrollment); empty = any host.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"


class ApiToken(TokenBase):
    """Lets a person's scripts read through the API as that user."""

    PREFIX = "rlv_u_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} for {self.user} ({self.key_prefix}…)"


class ThrottleCounter(models.Model):
    """One request counter of ``reports.throttling`` for the current fixed window.

    A row per throttled key (scope and token/address), updated in place by a
    single upsert, so counting costs one statement and every worker sees the
    same count. Used on PostgreSQL without Redis; on SQLite the counters live
    in a file of their own (``reports.throttling.SqliteFileCounter``).
    """

    key = models.CharField(max_length=200, primary_key=True)
    window_start = models.BigIntegerField(help_text="Unix time the current window began.")
    hits = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}: {self.hits} since {self.window_start}"


# --- Inventory search: each host's current software, sockets and disks --------
# Derived from the snapshots by ``reports.inventory_index`` in the upload's own
# transaction, and rebuilt from the stored documents by ``manage.py
# reindex_inventory``. The documents stay the record; these rows only answer
# "which hosts have X" without reading them (docs/architecture.md, "Inventory
# search tables").


class Software(models.Model):
    """One distinct package as hosts report it (name, version, vendor, arch, source).

    Host-package pairs point at it by id, so 15 million pairs are two integers
    and a date each, and ``host_count`` (kept by ``reports.inventory_index`` as
    pairs come and go) answers the fleet software list without counting them.
    A row whose count falls to 0 is kept: the next host with it reuses its id.
    """

    key = models.CharField(max_length=64, unique=True, editable=False,
                           help_text="sha256 of name, version, vendor, arch and source (reports.inventory_index).")
    name = models.CharField(max_length=1024)
    version = models.CharField(max_length=256, blank=True, default="")
    vendor = models.CharField(max_length=1024, blank=True, default="")
    arch = models.CharField(max_length=64, blank=True, default="")
    source = models.CharField(max_length=16)
    host_count = models.PositiveIntegerField(default=0, help_text="Hosts whose current list has this package.")

    class Meta:
        ordering = ["name", "version"]
        indexes = [models.Index(fields=["name", "version"], name="software_name_version")]

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()


class HostSoftware(models.Model):
    """A package in a host's current software list (the list of its ``Host.software_snapshot``)."""

    pk = models.CompositePrimaryKey("host", "software")
    # No index of their own: the primary key starts with host, the index below with software.
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="+", db_index=False)
    software = models.ForeignKey(Software, on_delete=models.CASCADE, related_name="+", db_index=False)
    install_date = models.DateField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["software", "host"], name="host_software_by_software")]


class HostListeningSocket(models.Model):
    """A socket the host's newest snapshot listens on (``listening`` in docs/payload.md)."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="+")
    protocol = models.CharField(max_length=3)
    address = models.CharField(max_length=64, help_text="As the agent sent it (an IPv4 or IPv6 address).")
    port = models.PositiveIntegerField()
    pid = models.BigIntegerField(null=True, blank=True)
    process = models.CharField(max_length=256, null=True, blank=True)

    class Meta:
        ordering = ["port", "protocol", "address"]
        indexes = [models.Index(fields=["port", "host"], name="listening_port_host")]


class HostDisk(models.Model):
    """A file system mounted in the host's newest snapshot (``disks`` in docs/payload.md)."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="+")
    mount_point = models.CharField(max_length=1024)
    device = models.CharField(max_length=1024, null=True, blank=True)
    fs_type = models.CharField(max_length=64, null=True, blank=True)
    total_bytes = models.BigIntegerField(null=True, blank=True)
    free_bytes = models.BigIntegerField(null=True, blank=True)
    used_percent = models.FloatField(
        null=True, blank=True, help_text="100 x (total - free) / total; null when either is unknown or total is 0.",
    )

    class Meta:
        ordering = ["mount_point"]
        indexes = [models.Index(fields=["used_percent"], name="disk_used_percent")]


class HostSearch(models.Model):
    """What the host search matches for one host, in a table of its own (``reports.host_search``).

    On the host row, the text's trigram index (PostgreSQL) took every upload's
    UPDATE of ``last_seen`` for a new row version and inserted all of the
    text's trigrams again: a third of an upload's WAL. Here it is written
    only when the text changes, which it rarely does (``Host.search_digest``
    tells without reading it).
    """

    host = models.OneToOneField(Host, on_delete=models.CASCADE, primary_key=True, related_name="search")
    text = models.TextField(help_text="Lower-cased names, host id, own and seen addresses, OS and CPU.")


class HostIndexState(models.Model):
    """Digests of what a host's search rows were derived from, so an unchanged area is not rewritten."""

    host = models.OneToOneField(Host, on_delete=models.CASCADE, primary_key=True, related_name="+")
    software_digest = models.CharField(max_length=64, blank=True, default="")
    listening_digest = models.CharField(max_length=64, blank=True, default="")
    disks_digest = models.CharField(max_length=64, blank=True, default="")


# --- Process history: which hosts ran what, and when (reports.process_history) --------

class ProcessText(models.Model):
    """One distinct process text of the fleet (a ``process_index`` line), stored once for every host.

    A fleet runs the same few hundred programs on every host, so runs name
    their text by id and a search scans this small table, not every run.
    """

    digest = models.CharField(max_length=32, unique=True, help_text="blake2b-128 of text, hex (the key).")
    text = models.TextField(help_text="Lower-cased 'name<TAB>cmdline', as in Host.process_index.")
    name = models.TextField(help_text="The part of text before the tab: what name-only search matches.")


class ProcessRun(models.Model):
    """One run of a process text on a host: from the first snapshot that had it to the last one.

    ``stopped_at`` is NULL while the host's newest snapshot still has it;
    otherwise it is the collected_at of the last snapshot that had it. Ingest
    writes a row only when a text appears or goes (``reports.process_history``).
    """

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="+")
    # No index of its own: processrun_text_time starts with it.
    text = models.ForeignKey(ProcessText, on_delete=models.PROTECT, related_name="+", db_index=False)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["text", "started_at", "stopped_at", "host"], name="processrun_text_time")]
        constraints = [models.UniqueConstraint(fields=["host", "text"], condition=models.Q(stopped_at__isnull=True),
                                               name="processrun_one_open_run")]


# --- Alerts: rules on inventory changes and their outbox ------------------------
# ``reports.alerts`` evaluates the rules (on each upload, inside its
# transaction, and on the worker's timer) and writes one AlertDelivery per
# change and destination; ``manage.py alerts_worker`` delivers them
# (docs/alerts.md).

ALERT_KINDS = (
    ("process_started", "A process matching the pattern started"),
    ("process_stopped", "A process matching the pattern stopped"),
    ("software_installed", "Software matching the pattern was installed"),
    ("software_removed", "Software matching the pattern was removed"),
    ("software_upgraded", "Software matching the pattern changed version"),
    ("port_opened", "A new listening port (outside the allowed ports, if any)"),
    ("disk_full", "A disk went over the threshold (percent used)"),
    ("host_offline", "The host went offline"),
    ("host_stale", "The host went stale"),
    ("host_back", "The host came back online"),
    ("snapshot_rejected", "The server refused a snapshot of a known agent"),
    ("identity_conflict", "Two machines seem to send the host's id"),
)


class AlertDestination(models.Model):
    """Where an alert goes: a webhook (signed with its own secret, optionally Slack-shaped) or e-mail addresses."""

    WEBHOOK, EMAIL = "webhook", "email"
    KINDS = [(WEBHOOK, "Webhook"), (EMAIL, "E-mail")]

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=8, choices=KINDS)
    url = models.URLField(max_length=1024, blank=True, default="", help_text="Webhook: where to POST.")
    secret = models.CharField(max_length=128, blank=True, default="",
                              help_text="Webhook: the HMAC-SHA256 key of X-Relevo-Signature.")
    slack = models.BooleanField(default=False, help_text="Webhook: send a Slack-compatible body ({\"text\": ...}).")
    emails = models.TextField(blank=True, default="", help_text="E-mail: addresses, one a line or comma-separated.")

    def __str__(self) -> str:
        return self.name

    def email_list(self) -> list[str]:
        return [part.strip() for part in self.emails.replace("\n", ",").split(",") if part.strip()]

    def clean(self) -> None:
        if self.kind == self.WEBHOOK and not self.url:
            raise ValidationError({"url": "A webhook needs a URL."})
        if self.kind == self.EMAIL:
            if not self.email_list():
                raise ValidationError({"emails": "Give at least one address."})
            for address in self.email_list():
                validate_email(address)


class AlertRule(models.Model):
    """A condition, the hosts it watches (all, or the hosts list's OS and name filters) and its destinations."""

    name = models.CharField(max_length=100, unique=True)
    active = models.BooleanField(default=True)
    kind = models.CharField(max_length=24, choices=ALERT_KINDS)
    pattern = models.CharField(max_length=256, blank=True, default="",
                               help_text="Process or software: the substring to match (case-insensitive).")
    threshold_percent = models.FloatField(null=True, blank=True, help_text="Disk: percent used that fires.")
    allowed_ports = models.CharField(max_length=512, blank=True, default="",
                                     help_text="New port: ports that do not fire, comma-separated.")
    os_name = models.CharField(max_length=64, blank=True, default="", help_text="Scope: only hosts of this OS.")
    os_version = models.CharField(max_length=255, blank=True, default="",
                                  help_text="Scope: only hosts of this distribution and version, as the hosts list "
                                            "names it (\"Debian GNU/Linux 12\").")
    hostname_pattern = models.CharField(max_length=255, blank=True, default="",
                                        help_text="Scope: only hosts whose name contains this.")
    group_seconds = models.PositiveIntegerField(
        default=30, help_text="Changes within this many seconds go out as one message per destination.")
    destinations = models.ManyToManyField(AlertDestination, related_name="rules")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            alert_rules.parse_ports(self.allowed_ports)
        except ValueError:
            raise ValidationError({"allowed_ports": "Ports 0-65535, comma-separated."}) from None
        if self.kind == "disk_full" and self.threshold_percent is not None and not 0 < self.threshold_percent <= 100:
            raise ValidationError({"threshold_percent": "A percentage above 0, at most 100."})
        if self.kind in alert_rules.PROCESS_KINDS | alert_rules.SOFTWARE_KINDS and not self.pattern.strip():
            raise ValidationError({"pattern": "This condition needs a pattern."})


class AlertHostStatus(models.Model):
    """The status the alerts last saw a host in, so the worker's timer reports each transition once."""

    host = models.OneToOneField(Host, on_delete=models.CASCADE, primary_key=True, related_name="+")
    status = models.CharField(max_length=8)


class AlertDelivery(models.Model):
    """One change for one destination: the outbox row, written with the change and delivered by the worker.

    Rows of one rule and destination that are due together are sent as one
    message (``batch``, its idempotency key, fixed at the first attempt so a
    retry sends the same message).
    """

    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.ForeignKey(AlertDestination, on_delete=models.CASCADE, related_name="deliveries")
    host = models.ForeignKey(Host, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts")
    host_name = models.CharField(max_length=255, blank=True, default="")
    kind = models.CharField(max_length=24, choices=ALERT_KINDS)
    subject = models.CharField(max_length=512, help_text="What changed, in one line.")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    key = models.CharField(max_length=64, unique=True, help_text="Idempotency key of the change.")
    batch = models.CharField(max_length=64, blank=True, default="", db_index=True,
                             help_text="Idempotency key of the message that carries it.")
    state = models.CharField(max_length=10, default=PENDING,
                             choices=[(PENDING, "Pending"), (DELIVERED, "Delivered"), (FAILED, "Failed")])
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True, help_text="A worker is sending it until then.")
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="alert_delivery_due")]
        verbose_name_plural = "alert deliveries"

    def __str__(self) -> str:
        return f"{self.subject} -> {self.destination_id} ({self.state})"
