"""gunicorn settings for Relevo: the Docker image, the EC2 unit and the benchmarks.

``gunicorn -c deploy/gunicorn.conf.py inventory_site.wsgi``. Sync workers,
``WEB_CONCURRENCY`` of them (default 2 x cores + 1: an upload is short CPU
work plus two fsyncs, so a few more workers than cores keep the CPUs busy
while others wait on the disk; gthread workers with keep-alive measured
worse). Flags on the command line or ``GUNICORN_CMD_ARGS`` override any
value here. gunicorn's own access log stays off:
``reports.middleware`` writes one JSON line per request instead. The hooks
keep prometheus_client's multiprocess files consistent with the workers and
take the loaded application out of the garbage collector's sight.
"""

import gc
import multiprocessing
import os
import shutil
from pathlib import Path

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * multiprocessing.cpu_count() + 1)
worker_class = "sync"
timeout = 60
graceful_timeout = 20
# gunicorn 25+ opens a control socket in ~/.gunicorn by default; several
# servers on one machine (tests, benchmarks) would fight over it.
control_socket_disable = True
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


def post_worker_init(worker):
    """Freeze what the worker has loaded, so full garbage collections skip it.

    An upload decodes a few thousand objects, enough to start a full
    collection every few hundred uploads; each walked the ~100,000 objects of
    Django, DRF and the project: 60 ms on the benchmark machine, about 0.2 ms
    per upload, and the worst outliers of the latency. ``gc.freeze()`` moves
    them to a generation the collector never scans (a frozen full collection
    took 1 ms). The URL configuration is loaded first so that every view
    module is among them. Nothing frozen is leaked: these objects live as
    long as the worker anyway.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns
    gc.freeze()


def child_exit(server, worker):
    """Drop a dead worker's live gauges; its counters stay in the totals."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
