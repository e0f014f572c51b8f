"""gunicorn settings for Relevo (``gunicorn -c inventory_site/gunicorn.conf.py inventory_site.wsgi``).

Sync workers, 2 x cores + 1 of them: an upload is short CPU work plus two
fsyncs, so a few more workers than cores keep the CPUs busy while others
wait on the disk. Every value can be overridden on the command line or with
``GUNICORN_CMD_ARGS``.
"""

import multiprocessing
import os

bind = os.environ.get("RELEVO_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("RELEVO_WORKERS") or 2 * multiprocessing.cpu_count() + 1)
worker_class = "sync"
timeout = 60
graceful_timeout = 10
# gunicorn 25+ opens a control socket in ~/.gunicorn by default; several
# servers on one machine (tests, benchmarks) would fight over it. Older
# versions ignore the name.
control_socket_disable = True
