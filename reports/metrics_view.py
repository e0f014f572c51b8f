"""``GET /metrics``: who may scrape, what a scrape adds to the counters, and the view.

The counters and histograms are declared in ``reports.metrics``, a leaf the
store and the middleware record into. What only a scrape needs lives here,
beside the view: it reads the database and the data folder, so the modules
that record never load it (that import once closed a cycle store -> metrics
-> selectors -> store).

Gauges that describe stored state (hosts by status, the data folder's free
space) are not kept up to date by every request; they are computed when scraped.

Scraping is allowed from ``INVENTORY_METRICS_ALLOWED`` (loopback by default)
or with ``Authorization: Bearer <INVENTORY_METRICS_TOKEN>``.
"""

from __future__ import annotations

import hmac
import os
import shutil

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

from reports import selectors
from reports.addresses import IPAddress, client_ip, in_networks, parse_networks


class HostStatusCollector:
    """``relevo_hosts{status=...}``, counted in the database at scrape time."""

    def collect(self):
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


class _ProcessMetrics:
    """This process's own Relevo metrics, from the default registry."""

    def collect(self):
        for family in REGISTRY.collect():
            if family.name.startswith("relevo_"):
                yield family


def scrape_allowed(*, client_ip: IPAddress | None, authorization: str) -> bool:
    """Whether this client may read /metrics: an allowed address, or the metrics token."""
    token = settings.INVENTORY_METRICS_TOKEN
    if token and authorization.startswith("Bearer "):
        if hmac.compare_digest(authorization[len("Bearer "):].strip().encode(), token.encode()):
            return True
    if client_ip is None:
        return False
    return in_networks(client_ip, parse_networks(settings.INVENTORY_METRICS_ALLOWED))


def render() -> tuple[bytes, str]:
    """The exposition text for one scrape, and its content type."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    registry.register(HostStatusCollector())
    registry.register(DataDirCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


@require_GET
def metrics_view(request):
    """Prometheus metrics, for allowed addresses or the metrics token."""
    try:
        address = client_ip(request)
    except ValueError:
        address = None
    if not scrape_allowed(client_ip=address, authorization=request.META.get("HTTP_AUTHORIZATION", "")):
        return JsonResponse({"error": "permission_denied",
                             "detail": "Metrics are served to allowed addresses or with the metrics token."},
                            status=403)
    body, content_type = render()
    return HttpResponse(body, content_type=content_type)
