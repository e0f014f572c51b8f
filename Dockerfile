# Relevo server image: gunicorn + Django, day files and SQLite on the /data volume.
#   docker build -t relevo .
#   docker run -e DJANGO_SECRET_KEY=... -p 8000:8000 -v relevo-data:/data relevo
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# nginx reads every request whole before a gunicorn sync worker sees it
# (RELEVO_FRONT=nginx, deploy/entrypoint.sh): slow clients cannot hold the workers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx=1.22.* \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 relevo \
 && useradd --system --uid 10001 --gid relevo --home-dir /app --shell /usr/sbin/nologin relevo \
 && mkdir -p /data \
 && chown relevo:relevo /data \
 && chmod 0700 /data

WORKDIR /app

# Dependencies in their own layer: a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY manage.py ./
COPY inventory_site ./inventory_site
COPY reports ./reports
COPY deploy ./deploy

# Static files are collected at build time (a throwaway key: collectstatic serves no requests).
RUN DJANGO_SECRET_KEY=build-only-not-a-secret INVENTORY_DATA_DIR=/tmp/build-data \
    python manage.py collectstatic --noinput -v 0 \
 && rm -rf /tmp/build-data

ENV INVENTORY_DATA_DIR=/data \
    PROMETHEUS_MULTIPROC_DIR=/tmp/relevo-metrics \
    WEB_CONCURRENCY=2 \
    PORT=8000 \
    RELEVO_FRONT=nginx

VOLUME ["/data"]
USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

ENTRYPOINT ["/app/deploy/entrypoint.sh"]
