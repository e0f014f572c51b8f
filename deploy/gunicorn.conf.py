"""gunicorn settings for the Docker image and the EC2 systemd unit.

Workers come from ``WEB_CONCURRENCY`` (2 x cores is a fair start: an upload
spends most of its time in fsync). gunicorn's own access log stays off:
``reports.middleware`` writes one JSON line per request instead. The hooks
keep prometheus_client's multiprocess files consistent with the workers.
"""

import os
import shutil
from pathlib import Path

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
timeout = 60
graceful_timeout = 20
accesslog = None
errorlog = "-"
# Relevo honours X-Forwarded-For itself, only from INVENTORY_TRUSTED_PROXIES.
forwarded_allow_ips = ""


def on_starting(server):
    """Start every run with empty metric files: values of a previous run's workers are not ours."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    """Drop a dead worker's live gauges; its counters stay in the totals."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
