"""The inventory read API: fleet software with host counts, who has a package, each host's inventory.

Thin views like the rest of the read API: one parameters serializer checks
the query string (``reports.api.inventory_serializers``), one selector of
``reports.inventory_selectors`` answers, pages as ``ReadPagination`` cuts
them. The ``.csv`` routes stream the same rows as CSV (``reports.csv_export``)
without pages: the whole fleet list, one host's software, the hosts list as
filtered by the same parameters as ``/api/hosts/``.
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics
from rest_framework.response import Response
from rest_framework.views import APIView

from reports import csv_export, inventory_selectors, selectors
from reports.api import inventory_serializers as s
from reports.api.serializers import HostFilterSerializer, HostSerializer
from reports.api.views import ReadAPIMixin, _errors, _filters, hosts_filtered
from reports.models import Host

CSV = {(200, "text/csv"): OpenApiTypes.STR}


def _host(pk: int) -> Host:
    host = selectors.host_get(pk=pk)
    if host is None:
        raise exceptions.NotFound("No host with this id.")
    return host


def _csv_response(file_name: str, header, rows) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_export.csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response


@extend_schema(summary="The fleet's software with host counts (filters: search, name, version, vendor, source)",
               parameters=[s.SoftwareListParams],
               responses={200: s.SoftwareSerializer(many=True), **_errors(400, 401, 403, 404, 429)}, tags=["read"])
class SoftwareListView(ReadAPIMixin, generics.ListAPIView):
    serializer_class = s.SoftwareSerializer

    def get_queryset(self):
        return inventory_selectors.software_list(**_filters(s.SoftwareListParams, self.request))


def _host_search(summary: str, params_class, search):
    """A list of hosts matching one search of ``inventory_selectors``, shaped like /api/hosts/."""

    @extend_schema(summary=summary, parameters=[params_class],
                   responses={200: HostSerializer(many=True), **_errors(400, 401, 403, 404, 429)}, tags=["read"])
    class HostSearchView(ReadAPIMixin, generics.ListAPIView):
        serializer_class = HostSerializer

        def get_queryset(self):
            return selectors.with_latest_snapshot(search(**_filters(params_class, self.request)))

    return HostSearchView


SoftwareHostListView = _host_search(
    "Hosts whose current software has a package (?name=, optional version, vendor, source)",
    s.SoftwareHostsParams, inventory_selectors.hosts_with_software)
ListeningHostListView = _host_search(
    "Hosts whose newest snapshot listens on a port (?port=, optional protocol)",
    s.ListeningHostsParams, inventory_selectors.hosts_listening)
DiskHostListView = _host_search(
    "Hosts with a file system at least ?used_percent= full (default 90)",
    s.DiskHostsParams, inventory_selectors.hosts_with_full_disk)


@extend_schema(summary="A host's current software list, by name", parameters=[s.HostSoftwareParams],
               responses={200: s.HostPackageSerializer(many=True), **_errors(400, 401, 403, 404, 429)},
               tags=["read"])
class HostSoftwareListView(ReadAPIMixin, generics.ListAPIView):
    serializer_class = s.HostPackageSerializer

    def get_queryset(self):
        params = _filters(s.HostSoftwareParams, self.request)
        return inventory_selectors.host_software(host=_host(self.kwargs["pk"]), **params)


def _host_area(summary: str, serializer_class, rows):
    """One host's list of one inventory area (``rows(host)``), paginated; 404 for an unknown host."""

    @extend_schema(summary=summary, responses={200: serializer_class(many=True),
                                               **_errors(400, 401, 403, 404, 429)}, tags=["read"])
    class HostAreaView(ReadAPIMixin, generics.ListAPIView):
        def get_serializer_class(self):
            return serializer_class

        def get_queryset(self):
            return rows(_host(self.kwargs["pk"]))

    return HostAreaView


HostListeningListView = _host_area(
    "The sockets a host listens on (its newest snapshot)", s.ListeningSocketSerializer,
    lambda host: inventory_selectors.host_listening(host=host))
HostDiskListView = _host_area(
    "A host's mounted file systems (its newest snapshot)", s.DiskSerializer,
    lambda host: inventory_selectors.host_disks(host=host))
HostInterfaceListView = _host_area(
    "A host's network interfaces (its newest snapshot)", s.InterfaceSerializer,
    lambda host: inventory_selectors.host_inventory(host=host).interfaces or [])
HostServiceListView = _host_area(
    "A host's services (its newest snapshot)", s.ServiceSerializer,
    lambda host: inventory_selectors.host_inventory(host=host).services or [])


@extend_schema(summary="A host's hardware (its newest snapshot)",
               responses={200: s.HardwareSerializer, **_errors(401, 403, 404, 429)}, tags=["read"])
class HostHardwareView(ReadAPIMixin, APIView):
    def get(self, request, pk: int):
        hardware = inventory_selectors.host_inventory(host=_host(pk)).hardware
        data = s.HardwareSerializer(hardware).data if hardware is not None else \
            dict.fromkeys(s.HardwareSerializer().fields)
        return Response(data)


# --- CSV ------------------------------------------------------------------------------

SOFTWARE_COLUMNS = ["name", "version", "vendor", "arch", "source", "host_count"]
HOST_SOFTWARE_COLUMNS = ["name", "version", "vendor", "arch", "source", "install_date"]
HOST_COLUMNS = ["id", "host_id", "hostname", "fqdn", "last_ip", "os_name", "os_version", "cpu_model",
                "memory_total_bytes", "process_count", "user_count", "first_seen", "last_seen", "status"]


@extend_schema(summary="The fleet's software with host counts, as CSV (the filters of /api/software/)",
               parameters=[s.SoftwareListParams], responses={**CSV, **_errors(400, 401, 403, 429)},
               tags=["read"])
class SoftwareCSVView(ReadAPIMixin, APIView):
    def get(self, request):
        rows = inventory_selectors.software_list(**_filters(s.SoftwareListParams, request))
        return _csv_response("software.csv", SOFTWARE_COLUMNS,
                             rows.values_list(*SOFTWARE_COLUMNS).iterator(chunk_size=2000))


@extend_schema(summary="A host's current software list, as CSV", parameters=[s.HostSoftwareParams],
               responses={**CSV, **_errors(400, 401, 403, 404, 429)}, tags=["read"])
class HostSoftwareCSVView(ReadAPIMixin, APIView):
    def get(self, request, pk: int):
        params = _filters(s.HostSoftwareParams, request)
        host = _host(pk)
        packages = inventory_selectors.host_software(host=host, **params)
        rows = ([getattr(p, column) for column in HOST_SOFTWARE_COLUMNS] for p in packages)
        return _csv_response(f"host-{host.pk}-software.csv", HOST_SOFTWARE_COLUMNS, rows)


@extend_schema(summary="The hosts list as CSV, filtered by the parameters of /api/hosts/",
               parameters=[HostFilterSerializer], responses={**CSV, **_errors(400, 401, 403, 429)}, tags=["read"])
class HostCSVView(ReadAPIMixin, APIView):
    def get(self, request):
        hosts = hosts_filtered(request).defer("process_index")
        now = timezone.now()

        def rows():
            for host in hosts.iterator(chunk_size=1000):
                yield [*(getattr(host, column) for column in HOST_COLUMNS[:-1]), selectors.host_status(host, now)]

        return _csv_response("hosts.csv", HOST_COLUMNS, rows())
