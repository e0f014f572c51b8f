"""Prometheus metrics: what Relevo counts, declared once, and the helpers that record them.

A leaf: it imports nothing of Relevo's, so the store and the middleware can
record without loading the database or the views. Serving them (who may
scrape, the gauges computed from the database and the data folder, the
exposition) is ``reports.metrics_view``, next to the ``/metrics`` view.

Recording is a counter increment or a histogram observation (a few
microseconds), so it stays off the ingest path's budget. Under gunicorn each
worker is its own process: when ``PROMETHEUS_MULTIPROC_DIR`` is set (the
Docker image and ``deploy/gunicorn.conf.py`` set it), prometheus_client keeps
the values in memory-mapped files there and a scrape adds up all workers.
Without it (``runserver``, tests) the values live in the one process.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured
from prometheus_client import Counter, Histogram

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
