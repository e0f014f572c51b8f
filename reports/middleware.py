"""Request middleware: one JSON log line per request, and security headers.

**Request log.** One JSON line per request, and the upload counters of ``reports.metrics``.

The line holds what an operator needs to follow traffic and find a failing
agent: method, path (never the query string), status, duration, the client's
address (``X-Forwarded-For`` honoured only from trusted proxies, as for the
day files) and, for uploads, the host id the snapshot named. It never holds a
body, a header or a token. Lines go to the ``relevo.request`` logger, which
settings send to stderr with nothing around the JSON, so a log shipper can
parse every line as it is.

**Outages.** A full disk or an unreachable database is answered with the
JSON error and ``Retry-After`` that ``reports.outage`` picks (507 or 503),
for the API and the pages alike, instead of a 500; any other exception is
left to Django's handler. A database nobody has migrated yet is a 503 too,
logged once per process, with a plain page for the pages (their templates
need the tables that are missing).

**Security headers** Django 5.2 does not send by itself.

``SecurityMiddleware`` covers HSTS, nosniff, Referrer-Policy and COOP, and
``XFrameOptionsMiddleware`` covers framing; this adds a Content-Security-Policy
(no inline scripts, no third-party origins: Swagger UI is served from local
files) and a Permissions-Policy that turns off powerful browser features the
pages never use.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import time

import msgspec
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.html import format_html

from reports import metrics, outage
from reports.api.errors import server_error
from reports.addresses import client_address

logger = logging.getLogger("relevo.request")
problems = logging.getLogger(__name__)  # prose; relevo.request carries only the JSON lines
outage_logger = logging.getLogger("reports.outage")

HOST_ID_KEY = "relevo.host_id"
UPLOAD_PATH = "/upload"


def note_host_id(request, host_id: str) -> None:
    """Let the request's log line name the host an upload came from (called by the upload view)."""
    request.META[HOST_ID_KEY] = host_id


def _error_code(response) -> str | None:
    """The ``error`` code of an error answer (every Relevo error body has one)."""
    data = getattr(response, "data", None)
    if isinstance(data, dict):
        code = data.get("error")
        return code if isinstance(code, str) else None
    if getattr(response, "streaming", False) or response.get("Content-Type", "") != "application/json":
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


# RFC 9110 section 5.6.2 (token) and 5.5 (field-value), the rules gunicorn
# enforces when it writes the headers: after Django's middleware has finished.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[ \t\x21-\x7e\x80-\xff]*")


@functools.lru_cache(maxsize=1024)
def _header_valid(name: str, value: str) -> bool:
    """Whether gunicorn will send this header; cached, as most headers are the same on every answer."""
    return bool(_HEADER_NAME.fullmatch(name) and _HEADER_VALUE.fullmatch(value))


def _deliverable(request, response):
    """*response*, or a 500 in its place if the server could not send its headers.

    Django refuses only CR and LF in a header value; gunicorn also refuses the
    other control characters, but only when it writes the answer, after this
    middleware has logged it. A header value carrying one once sent the client
    gunicorn's own 500 while this log said 200. Checking here, with the rule
    the server applies, makes the logged status the one the client gets, and
    the client gets Relevo's JSON error instead of a bare HTML page.
    """
    for name, value in response.items():
        if not _header_valid(name, value):
            # The name only: the value is what a client may have put there.
            problems.error("response header %r is not valid HTTP; answering 500 instead", name)
            return server_error(request)
    return response


class RequestLogMiddleware:
    """Outermost middleware: times the whole request and logs the final status."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = _deliverable(request, self.get_response(request))
        seconds = time.perf_counter() - started
        status = response.status_code
        is_upload = request.path == UPLOAD_PATH and request.method == "POST"
        reason = _error_code(response) if status >= 400 else None
        if is_upload:
            metrics.record_upload(status=status, reason=reason, seconds=seconds)
        if settings.INVENTORY_REQUEST_LOG:
            self._log(request, status, seconds, reason)
        return response

    @staticmethod
    def _log(request, status: int, seconds: float, reason: str | None) -> None:
        line = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "event": "request",
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client_ip": client_address(request),
        }
        host_id = request.META.get(HOST_ID_KEY)
        if host_id is not None:
            line["host_id"] = host_id
        if reason:
            line["error"] = reason
        level = logging.ERROR if status >= 500 else logging.INFO
        logger.log(level, msgspec.json.encode(line).decode())


class OutageMiddleware:
    """Answers a view's full-disk or database-outage exception with 507/503 and ``Retry-After``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    not_migrated_logged = False

    def process_exception(self, request, exception):
        found = outage.classify(exception)
        if found is None:
            return None
        if found is outage.DATABASE_NOT_MIGRATED:
            return self._not_migrated(request, found)
        # One line, no traceback: an outage fails every request alike and is not a defect.
        outage_logger.warning(
            "%s %s answered %d %s: %s: %s", request.method, request.path, found.status, found.code,
            type(exception).__name__, str(exception).strip().replace("\n", " ")[:300],
        )
        return self._answer(found, JsonResponse({"error": found.code, "detail": found.detail}, status=found.status))

    @classmethod
    def _not_migrated(cls, request, found: outage.Outage):
        if not cls.not_migrated_logged:
            # Once: every request fails alike until someone migrates, and the first line says what to do.
            cls.not_migrated_logged = True
            outage_logger.error("the database has unapplied migrations: run python manage.py migrate "
                                "(requests are answered %d %s until then)", found.status, found.code)
        match = request.resolver_match
        if match is None or match.namespace == "reports-api":
            return cls._answer(found, JsonResponse({"error": found.code, "detail": found.detail}, status=found.status))
        page = format_html("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Relevo is not set up"
                           "</title></head><body><h1>Relevo is not set up yet</h1><p>{}</p></body></html>", found.detail)
        return cls._answer(found, HttpResponse(page, status=found.status, content_type="text/html; charset=utf-8"))

    @staticmethod
    def _answer(found: outage.Outage, response):
        response["Retry-After"] = str(found.retry_after)
        return response


PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.INVENTORY_CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        if "Permissions-Policy" not in response:
            response["Permissions-Policy"] = PERMISSIONS_POLICY
        return response
