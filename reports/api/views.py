"""Thin API views: parse the request, call one service or selector, answer.

``/query`` answers with the day file streamed from disk as it is (framed by a
small JSON head), so a big file is neither held in memory nor decoded and
re-encoded.
"""

from __future__ import annotations

import json
import re

from django.conf import settings
from django.db import connection
from django.http import JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from reports import payload as payload_schema
from reports import forms, inventory_selectors, outage, paging, processes, selectors, services, store
from reports.api import schema as _openapi_extensions  # noqa: F401 (registers the token scheme)
from reports.api import serializers
from reports.alerts import outbox as alerts_outbox
from reports.api.errors import DayFileFull, InvalidParameters, InvalidPayload, NothingStored
from reports.api.parsers import SnapshotParser
from reports.auth import HostMismatch, IsAgent, IsReader, check_host_binding, enroll_secret_valid
from reports.middleware import note_host_id
from reports.addresses import client_ip
from reports.throttling import EnrollThrottle, UploadThrottle, auth_failure

_POSITIVE_INT = re.compile(r"[1-9][0-9]*")


class WrongMethodFirstMixin:
    """Answers a wrong method with 405 before asking for credentials, as clients expect."""

    def initial(self, request, *args, **kwargs):
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise exceptions.MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)


class BaseAPIView(WrongMethodFirstMixin, APIView):
    pass


def _errors(*codes: int) -> dict:
    return {code: serializers.ErrorSerializer for code in codes}


@extend_schema(
    summary="Upload one snapshot (agent token)",
    description="The body is one schema-v1 snapshot (docs/payload.md), optionally gzip-compressed "
                "(Content-Encoding: gzip). A host-bound token (from /enroll) may upload only its own host.id.",
    request=None,  # reports.api.schema puts the msgspec-generated payload schema here
    responses={201: serializers.UploadResultSerializer, 200: serializers.UploadResultSerializer,
               **_errors(400, 401, 403, 405, 413, 415, 429, 503, 507)},
    tags=["agents"],
)
class UploadView(BaseAPIView):
    """POST one snapshot (``docs/payload.md``); 201 when stored, 200 for a replayed snapshot_id."""

    permission_classes = [IsAgent]
    parser_classes = [SnapshotParser]
    throttle_classes = [UploadThrottle]

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
            alerts_outbox.rejected_alert(token_host_id=request.auth.host_id, body=raw, error=exc)
            raise InvalidPayload(exc.message, exc.errors) from None
        note_host_id(request, snapshot.host.id)
        check_host_binding(request.auth, snapshot.host.id)
        try:
            ip = client_ip(request)
        except ValueError:
            raise InvalidParameters("The server cannot tell which address this upload came from.") from None
        try:
            result = services.snapshot_ingest(payload=snapshot, ip=ip, host_binding=request.auth.host_id)
        except services.SnapshotOfAnotherHost:
            raise HostMismatch("This token is bound to another host than the one this snapshot_id "
                               "is stored for; choose a new snapshot_id.") from None
        except services.DayFileFull as exc:
            raise DayFileFull(
                f"The day file {exc.file_name} has reached its size limit of {exc.limit_bytes} bytes "
                "(INVENTORY_DAY_FILE_MAX_BYTES): no more snapshots are stored for this address on that day. "
                "Keep this snapshot aside; retrying it will not help."
            ) from None
        return Response(result.as_dict(), status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


def _filters(serializer_class, request, *, detail: str = "The request is not valid.") -> dict:
    """The query parameters, validated by the endpoint's filter serializer; a 400 naming each bad one.

    ``detail`` keeps the sentence each endpoint has always answered with.
    """
    filters = serializer_class(data=request.query_params)
    if not filters.is_valid():
        raise InvalidParameters(detail, filters.errors)
    return filters.validated_data


@extend_schema(
    summary="The snapshots stored for one IP address",
    parameters=[serializers.QueryFilterSerializer],
    responses={200: serializers.QueryResultSerializer, **_errors(400, 401, 403, 404, 429)},
    tags=["read"],
)
class QueryView(BaseAPIView):
    """GET the snapshots stored for one address: a day (default the newest), or only the latest one."""

    permission_classes = [IsReader]

    def get(self, request):
        filters = _filters(serializers.QueryFilterSerializer, request, detail="The query parameters are not valid.")
        ip, day, latest = filters["ip"], filters.get("date"), filters.get("latest", False)
        answer = selectors.snapshots_for_ip(ip=ip, day=day, latest=latest)
        if answer is None:
            where = f"on {day.isoformat()}" if day else "on any day"
            raise NothingStored(f"No snapshots are stored for {ip} {where}.")
        head = json.dumps({
            "ip": answer.ip,
            "date": answer.date.isoformat(),
            "available_dates": [d.isoformat() for d in answer.available_dates],
        })
        body = answer.snapshots.framed(head[:-1].encode() + b', "snapshots": ', b"}")
        response = StreamingHttpResponse(body, content_type="application/json")
        response["Content-Length"] = str(len(body))
        return response


# --- enrollment ------------------------------------------------------------------------

@extend_schema(
    summary="Trade the fleet's enroll secret for a token bound to one host",
    request=serializers.EnrollRequestSerializer,
    responses={201: serializers.EnrollResultSerializer, **_errors(400, 401, 403, 405, 415, 429)},
    auth=[],
    tags=["agents"],
)
class EnrollView(BaseAPIView):
    """POST {enroll_secret, host_id, hostname?}: 201 with a new host-bound agent token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [EnrollThrottle]

    def post(self, request):
        serializer = serializers.EnrollRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if not enroll_secret_valid(data["enroll_secret"]):
            auth_failure(request)
            raise exceptions.AuthenticationFailed("The enroll secret is not valid.")
        token, raw = services.agent_token_enroll(host_id=data["host_id"], hostname=data["hostname"])
        body = {"token": raw, "host_id": token.host_id, "token_name": token.name}
        return Response(body, status=status.HTTP_201_CREATED)

    def get_authenticate_header(self, request) -> str:
        return "EnrollSecret"  # a wrong secret is a 401, which needs a WWW-Authenticate challenge

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not settings.INVENTORY_ENROLL_SECRETS:
            raise exceptions.PermissionDenied("Enrollment is off: the server has no INVENTORY_ENROLL_SECRET.")


# --- read API -----------------------------------------------------------------------------

class ReadPagination(PageNumberPagination):
    """Pages of 50 (``page_size`` up to 500), with both parameters as strict as the schema says.

    DRF reads an empty ``page`` as page 1 and ignores a ``page_size`` it cannot
    parse, so ``page=`` or ``page_size=null`` were answered although the
    schema says "integer". Here either is a positive integer or a 400; a page
    past the last is DRF's 404, and a larger ``page_size`` is read as 500.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        errors = {}
        for name in (self.page_query_param, self.page_size_query_param):
            raw = request.query_params.get(name)
            if raw is not None and not _POSITIVE_INT.fullmatch(raw):
                errors[name] = [f"{raw!r} is not a whole number of 1 or more."]
        if errors:
            raise InvalidParameters("The query parameters are not valid.", errors)
        if len(request.query_params.get(self.page_query_param, "")) > 18:
            # Past the last page whatever the data; and int() refuses texts over 4,300 digits.
            raise exceptions.NotFound("Invalid page.")
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return self.max_page_size if len(raw) > 4 else min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
            elif parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = f"Results per page (default {self.page_size}; larger than " \
                                           f"{self.max_page_size} is read as {self.max_page_size})."
        return parameters


class CappedReadPagination(ReadPagination):
    """``ReadPagination`` that counts up to 10,000 (``reports.paging``): past it, ``count`` is 10,001 and ``count_capped`` true.

    Counting every host of a search that a third of a large fleet matches
    cost more than reading its page; a page past the cap counts exactly.
    """

    django_paginator_class = paging.CappedPaginator

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data = {"count": response.data["count"], "count_capped": self.page.paginator.capped,
                         **{k: v for k, v in response.data.items() if k != "count"}}
        return response

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        schema["properties"] = {"count": schema["properties"]["count"], "count_capped": {
            "type": "boolean", "description": f"The count stopped at {paging.COUNT_CAP + 1:,}: more than "
                                              f"{paging.COUNT_CAP:,} match (a page past it counts exactly)."},
            **{k: v for k, v in schema["properties"].items() if k != "count"}}
        schema["required"] = [*schema.get("required", []), "count_capped"]
        return schema


class ReadAPIMixin(WrongMethodFirstMixin):
    """Readers only (session or user API token); a wrong method is 405 before auth."""

    permission_classes = [IsReader]
    pagination_class = ReadPagination

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": timezone.now()}


@extend_schema(summary="Hosts: search, filter by OS and status, ordering, pages",
               parameters=[serializers.HostFilterSerializer],
               responses={200: serializers.HostSerializer(many=True), **_errors(400, 401, 403, 404, 429)},
               tags=["read"])
class HostListView(ReadAPIMixin, generics.ListAPIView):
    serializer_class = serializers.HostSerializer

    def get_queryset(self):
        return selectors.with_latest_snapshot(hosts_filtered(self.request))


def hosts_filtered(request):
    """The hosts /api/hosts/ (and its CSV) answer with: the list's filters, then the inventory's."""
    filters = _filters(serializers.HostFilterSerializer, request)
    hosts = selectors.host_list(search=filters.get("search", ""), os_name=filters.get("os", ""),
                                os_version=filters.get("os_version", ""),
                                status=filters.get("status", ""), ordering=filters.get("ordering") or "hostname",
                                identity_conflict=filters.get("identity_conflict", False))
    return inventory_selectors.hosts_narrowed(hosts, software=filters.get("software", ""), port=filters.get("port"),
                                              disk_full=filters.get("disk_full", False))


@extend_schema(summary="One host", responses={200: serializers.HostSerializer, **_errors(401, 403, 404, 429)},
               tags=["read"])
class HostDetailView(ReadAPIMixin, APIView):
    def get(self, request, pk: int):
        host = selectors.host_get(pk=pk)
        if host is None:
            raise exceptions.NotFound("No host with this id.")
        return Response(serializers.HostSerializer(host, context={"now": timezone.now()}).data)


@extend_schema(summary="A host's snapshots, newest first",
               responses={200: serializers.SnapshotSummarySerializer(many=True), **_errors(400, 401, 403, 404, 429)},
               tags=["read"])
class HostSnapshotListView(ReadAPIMixin, generics.ListAPIView):
    serializer_class = serializers.SnapshotSummarySerializer

    def get_queryset(self):
        host = selectors.host_get(pk=self.kwargs["pk"])
        if host is None:
            raise exceptions.NotFound("No host with this id.")
        return selectors.host_snapshots(host=host)


@extend_schema(summary="One snapshot with its stored document",
               responses={200: serializers.SnapshotDetailSerializer, **_errors(401, 403, 404, 429)},
               tags=["read"])
class SnapshotDetailView(ReadAPIMixin, APIView):
    def get(self, request, snapshot_id):
        snapshot = selectors.snapshot_get(snapshot_id=snapshot_id)
        if snapshot is None:
            raise exceptions.NotFound("No snapshot with this id.")
        return Response(serializers.SnapshotDetailSerializer(snapshot, context={"now": timezone.now()}).data)


@extend_schema(summary="Hosts that run (or, with since/until, ran) a process matching ?name=",
               parameters=[serializers.ProcessFilterSerializer],
               responses={200: serializers.ProcessMatchSerializer(many=True), **_errors(400, 401, 403, 404, 429)},
               tags=["read"])
class ProcessSearchView(ReadAPIMixin, generics.ListAPIView):
    serializer_class = serializers.ProcessMatchSerializer
    pagination_class = CappedReadPagination

    def get_queryset(self):
        filters = _filters(serializers.ProcessFilterSerializer, self.request)
        now = timezone.now()
        since, until = forms.process_range(filters.get("since"), filters.get("until"), now)
        return selectors.process_search(query=filters["name"], match=filters.get("match") or processes.MATCH_CMDLINE,
                                        since=since, until=until, now=now, with_processes=True)


@require_GET
def healthz(request):
    """The process is alive and answering; checks nothing else, so it is cheap for load balancers."""
    return JsonResponse({"status": "ok"})


_migrations_applied = False


def _migrated() -> bool:
    """Whether the database has every migration applied; once true, true for this process.

    Reading the migration graph costs milliseconds, too much for a probe that
    a load balancer calls every few seconds; and a database does not become
    unmigrated under a running process (a release with new migrations starts
    new processes).
    """
    global _migrations_applied
    if not _migrations_applied:
        _migrations_applied = not outage.migrations_unapplied()
    return _migrations_applied


@require_GET
def readyz(request):
    """Ready to take uploads: the database answers and is migrated, the data folder is writable and not nearly full.

    ``free_space`` fails below ``INVENTORY_MIN_FREE_BYTES``, before uploads start
    getting 507, so a load balancer can send them to another node meanwhile.
    ``migrated`` fails while the database has migrations left to apply, when
    every request would get 503 ``database_not_migrated``.
    """
    writable = store.is_writable()  # first: it creates a missing folder, whose free space is read next
    free = store.free_bytes()
    checks = {"database": False, "migrated": False, "data_dir": writable,
              "free_space": free is not None and free >= settings.INVENTORY_MIN_FREE_BYTES}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = True
        checks["migrated"] = _migrated()
    except Exception:  # any driver error means "not ready"; the probe must answer, not raise
        checks["database"] = False
    ready = all(checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks, "data_dir_free_bytes": free},
                        status=200 if ready else 503)
