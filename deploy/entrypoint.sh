#!/bin/sh
# Start Relevo: check settings, migrate, then gunicorn (or the command given),
# behind a buffering nginx when RELEVO_FRONT=nginx (the Docker image sets it).
#
# Used as the Docker image's ENTRYPOINT and by the EC2 systemd unit; it runs
# the same outside Docker (the tests do that). Settings come from the
# environment (see README "Configuration"); the ones this script reads:
#   INVENTORY_DATA_DIR        day files and the SQLite database (default /data)
#   RELEVO_MIGRATE            "false" to skip migrations (set it on all but one
#                             node when several start against one PostgreSQL)
#   PROMETHEUS_MULTIPROC_DIR  per-worker metric files (default: a private temp dir)
#   WEB_CONCURRENCY, HOST, PORT  gunicorn workers and address (deploy/gunicorn.conf.py)
#   RELEVO_FRONT              "nginx": nginx listens on HOST:PORT and reads every
#                             request whole before gunicorn (on 127.0.0.1:
#                             RELEVO_BACKEND_PORT, default 8001) sees it, so slow
#                             clients cannot hold the sync workers; "none"
#                             (default): gunicorn listens itself (EC2 has the
#                             system nginx in front)
#   PYTHON                    the interpreter (default: python)
set -eu

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export INVENTORY_DATA_DIR="${INVENTORY_DATA_DIR:-/data}"
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/relevo-metrics-$$}"
FRONT="${RELEVO_FRONT:-none}"

case "$FRONT" in
  nginx)
    # Relevo names day files after the client, so it must trust the
    # X-Forwarded-For of this nginx (on 127.0.0.1), and still any outer proxy.
    export INVENTORY_TRUSTED_PROXIES="127.0.0.1${INVENTORY_TRUSTED_PROXIES:+,$INVENTORY_TRUSTED_PROXIES}"
    ;;
  none) ;;
  *) echo "entrypoint: RELEVO_FRONT must be nginx or none, not '$FRONT'" >&2; exit 2 ;;
esac

(umask 077 && mkdir -p "$INVENTORY_DATA_DIR" "$PROMETHEUS_MULTIPROC_DIR")  # private, like the files in them

# Only gunicorn's workers write metric files; the checks and migrations are not the server.
env -u PROMETHEUS_MULTIPROC_DIR "$PYTHON" manage.py check --deploy --fail-level ERROR
if [ "${RELEVO_MIGRATE:-true}" != "false" ]; then
  env -u PROMETHEUS_MULTIPROC_DIR "$PYTHON" manage.py migrate --noinput
fi

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
if [ "$FRONT" = none ]; then
  exec "$PYTHON" -m gunicorn --config deploy/gunicorn.conf.py inventory_site.wsgi
fi

# --- nginx in front: two processes, and this shell watches both. ---
HOST="${HOST:-0.0.0.0}"
PORT="${PORT:-8000}"
BACKEND_PORT="${RELEVO_BACKEND_PORT:-8001}"
case "$HOST" in
  *:*) LISTEN="[$HOST]:$PORT" ;;
  *) LISTEN="$HOST:$PORT" ;;
esac
# nginx's hard body limit sits 2 MiB above Relevo's, so Relevo gives its own JSON 413.
MAX_BODY="$(( ${INVENTORY_MAX_UPLOAD_BYTES:-10485760} / 1048576 + 2 ))m"
RUNTIME="$(mktemp -d "${TMPDIR:-/tmp}/relevo-front-XXXXXX")"
# Started as root (not in the image), nginx's workers run as nobody and must reach their temp folders.
chmod 0711 "$RUNTIME"
sed -e "s|@RUNTIME@|$RUNTIME|g" -e "s|@LISTEN@|$LISTEN|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
    -e "s|@MAX_BODY@|$MAX_BODY|g" deploy/docker/nginx.conf.in > "$RUNTIME/nginx.conf"
NGINX="${NGINX:-nginx}"
"$NGINX" -q -t -e stderr -p "$RUNTIME" -c "$RUNTIME/nginx.conf"

HOST=127.0.0.1 PORT="$BACKEND_PORT" "$PYTHON" -m gunicorn --config deploy/gunicorn.conf.py inventory_site.wsgi &
app=$!
# In its own process group (setsid, util-linux), so that its workers can be
# signalled with it: they outlive a killed master otherwise.
setsid "$NGINX" -e stderr -p "$RUNTIME" -c "$RUNTIME/nginx.conf" -g "daemon off;" &
front=$!

stopping=""
# SIGTERM/SIGINT (docker stop, systemd): gunicorn stops gracefully, nginx once
# gunicorn has answered what it was working on.
trap 'stopping=1; kill -TERM "$app" 2>/dev/null || true' TERM INT
# POSIX sh cannot wait for "whichever exits first": poll, in a wait that a
# signal interrupts at once.
while kill -0 "$app" 2>/dev/null && kill -0 "$front" 2>/dev/null; do
  sleep 1 &
  wait $! || true
done
# Whichever ended first, stop the other; the exit status is gunicorn's.
kill -TERM "$app" 2>/dev/null || true
status=0
wait "$app" || status=$?
kill -s QUIT -- "-$front" 2>/dev/null || true
wait "$front" || true
rm -rf "$RUNTIME"
if [ -n "$stopping" ]; then
  exit "$status"
fi
echo "entrypoint: gunicorn or nginx stopped unexpectedly; exiting" >&2
exit "$(( status ? status : 1 ))"
