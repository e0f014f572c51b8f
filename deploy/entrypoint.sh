#!/bin/sh
# Start Relevo: check settings, migrate, then gunicorn (or the command given).
#
# Used as the Docker image's ENTRYPOINT and by the EC2 systemd unit; it runs
# the same outside Docker (the tests do that). Settings come from the
# environment (see README "Configuration"); the ones this script reads:
#   INVENTORY_DATA_DIR        day files and the SQLite database (default /data)
#   RELEVO_MIGRATE            "false" to skip migrations (set it on all but one
#                             node when several start against one PostgreSQL)
#   PROMETHEUS_MULTIPROC_DIR  per-worker metric files (default: a private temp dir)
#   WEB_CONCURRENCY, HOST, PORT  gunicorn workers and address (deploy/gunicorn.conf.py)
#   PYTHON                    the interpreter (default: python)
set -eu

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export INVENTORY_DATA_DIR="${INVENTORY_DATA_DIR:-/data}"
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/relevo-metrics-$$}"

mkdir -p "$INVENTORY_DATA_DIR" "$PROMETHEUS_MULTIPROC_DIR"

# Only gunicorn's workers write metric files; the checks and migrations are not the server.
env -u PROMETHEUS_MULTIPROC_DIR "$PYTHON" manage.py check --deploy --fail-level ERROR
if [ "${RELEVO_MIGRATE:-true}" != "false" ]; then
  env -u PROMETHEUS_MULTIPROC_DIR "$PYTHON" manage.py migrate --noinput
fi

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
exec "$PYTHON" -m gunicorn --config deploy/gunicorn.conf.py inventory_site.wsgi
