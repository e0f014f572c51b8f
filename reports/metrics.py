"""Prometheus metrics, served at ``GET /metrics``.

Recording is a counter increment or a histogram observation (a few
microseconds), so it stays off the ingest path's budget. Under gunicorn each
worker is its own process: when ``PROMETHEUS_MULTIPROC_DIR`` is set (the
Docker image and ``deploy/gunicorn.conf.py`` set it), prometheus_client keeps
the values in memory-mapped files there and a scrape adds up all workers.
Without it (``runserver``, tests) the values live in the one process.

Gauges that describe stored state (hosts by status, the data folder's free
space) are not kept up to date by every request; they are computed when scraped.

Scraping is allowed from ``INVENTORY_METRICS_ALLOWED`` (loopback by default)
or with ``Authorization: Bearer <INVENTORY_METRICS_TOKEN>``.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import shutil

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

# prometheus_client opens a file in that folder as soon as a metric is made.
# Importing this module creates nothing: the server's launcher makes the folder,
# owned by the user that serves (deploy/entrypoint.sh, gunicorn.conf.py's
# on_starting, the EC2 unit's RuntimeDirectory=), and management commands run
# without the variable. A folder made here by whoever imported first (root
# running collectstatic) locked the service out of it.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not os.path.isdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={os.environ['PROMETHEUS_MULTIPROC_DIR']} is not a folder: the server's "
        "launcher creates it (deploy/entrypoint.sh); run management commands without that variable.")

UPLOADS_ACCEPTED = Counter(
    "relevo_uploads_accepted_total",
    "Uploads answered with success: result=stored (201) or replayed (200, snapshot_id already kept).",
    ["result"],
)
UPLOADS_REJECTED = Counter(
    "relevo_uploads_rejected_total",
    "Uploads refused, by reason (the error code of the answer, e.g. invalid_payload, authentication_failed).",
    ["reason"],
)
INGEST_SECONDS = Histogram(
    "relevo_ingest_duration_seconds",
    "Server time to answer a successful POST /upload: parse, validate, append, fsync, commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DAY_FILE_APPEND_SECONDS = Histogram(
    "relevo_day_file_append_seconds",
    "Time to write one document into its day file, fsync included.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)


def record_upload(*, status: int, reason: str | None, seconds: float) -> None:
    """Count one answered ``POST /upload`` (called by the request middleware)."""
    if status in (200, 201):
        UPLOADS_ACCEPTED.labels("stored" if status == 201 else "replayed").inc()
        INGEST_SECONDS.observe(seconds)
    else:
        UPLOADS_REJECTED.labels(reason or f"http_{status}").inc()


class HostStatusCollector:
    """``relevo_hosts{status=...}``, counted in the database at scrape time."""

    def collect(self):
        from reports import selectors  # the models are not ready when this module is imported

        gauge = GaugeMetricFamily("relevo_hosts", "Known hosts by status (online, offline, stale).",
                                  labels=["status"])
        for status, count in selectors.host_counts()["status"].items():
            gauge.add_metric([status], count)
        yield gauge


class DataDirCollector:
    """``relevo_data_dir_free_bytes``: the data folder's free space, read at scrape time.

    Alert on it well before it reaches 0: at 0 uploads are refused (507) and
    the agents keep their snapshots until space is freed.
    """

    def collect(self):
        try:
            free = shutil.disk_usage(settings.INVENTORY_DATA_DIR).free
        except OSError:
            return  # no folder yet (or unreadable): no sample rather than a wrong one
        gauge = GaugeMetricFamily("relevo_data_dir_free_bytes",
                                  "Bytes still free for Relevo in the data folder's file system.")
        gauge.add_metric([], free)
        yield gauge


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]):
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def scrape_allowed(*, client_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
                   authorization: str) -> bool:
    """Whether this client may read /metrics: an allowed address, or the metrics token."""
    token = settings.INVENTORY_METRICS_TOKEN
    if token and authorization.startswith("Bearer "):
        if hmac.compare_digest(authorization[len("Bearer "):].strip().encode(), token.encode()):
            return True
    if client_ip is None:
        return False
    return any(client_ip.version == net.version and client_ip in net
               for net in _networks(tuple(settings.INVENTORY_METRICS_ALLOWED)))


def render() -> tuple[bytes, str]:
    """The exposition text for one scrape, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessMetrics())
    registry.register(HostStatusCollector())
    registry.register(DataDirCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _ProcessMetrics:
    """This process's own Relevo metrics, from the default registry."""

    def collect(self):
        for family in REGISTRY.collect():
            if family.name.startswith("relevo_"):
                yield family
