"""Thin API views: parse the request, call one service or selector, answer.

``/upload`` and ``/query`` answer with bytes built around what the store
returns, so a day file is sent as it is on disk instead of being decoded and
re-encoded.
"""

from __future__ import annotations

import datetime as dt
import json
import re

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from reports import payload as payload_schema
from reports import metrics, selectors, services, store
from reports.api.errors import InvalidParameters, InvalidPayload, NothingStored
from reports.api.parsers import SnapshotParser
from reports.auth import IsAgent, IsReader
from reports.middleware import note_host_id
from reports.network import client_ip

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


class BaseAPIView(APIView):
    """Answers a wrong method with 405 before asking for credentials, as clients expect."""

    def initial(self, request, *args, **kwargs):
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise exceptions.MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)


class UploadView(BaseAPIView):
    """POST one snapshot (``docs/payload.md``); 201 when stored, 200 for a replayed snapshot_id."""

    permission_classes = [IsAgent]
    parser_classes = [SnapshotParser]

    def post(self, request):
        if request.content_type.split(";")[0].strip().lower() != "application/json":
            raise exceptions.UnsupportedMediaType(
                request.content_type or "none", detail="Send the snapshot as Content-Type: application/json."
            )
        raw = request.data
        if not isinstance(raw, bytes) or not raw.strip():
            raise InvalidPayload("The body is empty; send one snapshot as JSON.")
        try:
            snapshot = payload_schema.decode(raw, now=timezone.now())
        except payload_schema.PayloadError as exc:
            raise InvalidPayload(exc.message, exc.errors) from None
        note_host_id(request, snapshot.host.id)
        try:
            ip = client_ip(request.META)
        except ValueError:
            raise InvalidParameters("The server cannot tell which address this upload came from.") from None
        result = services.snapshot_ingest(payload=snapshot, ip=ip)
        return Response(result.as_dict(), status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


def _query_params(params) -> tuple[store.IPAddress, dt.date | None, bool]:
    errors: dict[str, list[str]] = {}
    ip = day = None
    raw_ip = params.get("ip", "")
    try:
        ip = store.parse_ip(raw_ip)
    except ValueError:
        message = "This parameter is required." if not raw_ip else f"{raw_ip!r} is not an IP address (scope ids are not accepted)."
        errors["ip"] = [message]
    raw_date = params.get("date")
    if raw_date is not None:
        try:
            if not _DATE_RE.match(raw_date):
                raise ValueError
            day = dt.date.fromisoformat(raw_date)
        except ValueError:
            errors["date"] = [f"{raw_date!r} is not a date in the form YYYY-MM-DD."]
    raw_latest = params.get("latest", "").strip().lower()
    if raw_latest not in _TRUE | _FALSE:
        errors["latest"] = ["Use latest=true or latest=false."]
    if errors:
        raise InvalidParameters("The query parameters are not valid.", errors)
    return ip, day, raw_latest in _TRUE


class QueryView(BaseAPIView):
    """GET the snapshots stored for one address: a day (default the newest), or only the latest one."""

    permission_classes = [IsReader]

    def get(self, request):
        ip, day, latest = _query_params(request.query_params)
        answer = selectors.snapshots_for_ip(ip=ip, day=day, latest=latest)
        if answer is None:
            where = f"on {day.isoformat()}" if day else "on any day"
            raise NothingStored(f"No snapshots are stored for {ip} {where}.")
        head = json.dumps({
            "ip": answer.ip,
            "date": answer.date.isoformat(),
            "available_dates": [d.isoformat() for d in answer.available_dates],
        })
        body = head[:-1].encode() + b', "snapshots": ' + answer.snapshots_json + b"}"
        return HttpResponse(body, content_type="application/json")


@require_GET
def healthz(request):
    """The process is alive and answering; checks nothing else, so it is cheap for load balancers."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    """Ready to take uploads: the database answers and the data folder is writable."""
    checks = {"database": False, "data_dir": store.is_writable()}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = True
    except Exception:  # any driver error means "not ready"; the probe must answer, not raise
        checks["database"] = False
    ready = all(checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


@require_GET
def metrics_view(request):
    """Prometheus metrics, for allowed addresses or the metrics token (see ``reports.metrics``)."""
    try:
        address = client_ip(request.META)
    except ValueError:
        address = None
    if not metrics.scrape_allowed(client_ip=address, authorization=request.META.get("HTTP_AUTHORIZATION", "")):
        return JsonResponse({"error": "permission_denied",
                             "detail": "Metrics are served to allowed addresses or with the metrics token."},
                            status=403)
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)
