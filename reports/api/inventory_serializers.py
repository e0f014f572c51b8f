"""Query parameters and output of the inventory read API (``reports.api.inventory_views``).

Each endpoint's query parameters are one small serializer: it validates them
(a bad value is the usual 400 ``invalid_parameters`` body, with ``fields``)
and drf-spectacular publishes the same rules in the schema.
"""

from __future__ import annotations

from rest_framework import serializers

from reports.api.serializers import ExactFloatParameter, ExactRegexParameter, QueryChoiceField, QueryTextField
from reports.models import HostDisk, HostListeningSocket, Software

SOURCE_RULE = r"\A[a-z0-9_-]{1,16}\Z"


class SoftwareFilterParams(serializers.Serializer):
    """Exact matches on a package's fields (each optional)."""

    version = QueryTextField(max_length=256, required=False, help_text="Exact version, e.g. 3.0.11-1~deb12u2.")
    vendor = QueryTextField(max_length=1024, required=False, help_text="Exact vendor or publisher.")
    source = ExactRegexParameter(SOURCE_RULE, required=False, help_text="deb, rpm, apk, windows, ...")


class SoftwareListParams(SoftwareFilterParams):
    search = QueryTextField(max_length=256, required=False, help_text="Substring of the package name (any case).")
    name = QueryTextField(max_length=1024, required=False, help_text="Exact package name.")


class SoftwareHostsParams(SoftwareFilterParams):
    name = QueryTextField(max_length=1024, help_text="Exact package name, e.g. openssl.")


class ListeningHostsParams(serializers.Serializer):
    port = serializers.IntegerField(min_value=0, max_value=65_535, help_text="The port, e.g. 3389.")
    protocol = QueryChoiceField(choices=["tcp", "udp"], required=False, help_text="Default: either.")


class DiskHostsParams(serializers.Serializer):
    used_percent = ExactFloatParameter(
        min_value=0, max_value=100, required=False, default=90.0,
        help_text="Hosts with a file system at least this full, in percent (default 90).")


class HostSoftwareParams(serializers.Serializer):
    search = QueryTextField(max_length=256, required=False, help_text="Substring of the package name (any case).")


class SoftwareSerializer(serializers.ModelSerializer):
    """A package in the fleet with the number of hosts whose current list has it."""

    class Meta:
        model = Software
        fields = ["name", "version", "vendor", "arch", "source", "host_count"]


class HostPackageSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField(help_text="Empty when the host did not say.")
    vendor = serializers.CharField()
    arch = serializers.CharField()
    source = serializers.CharField()
    install_date = serializers.DateField(allow_null=True)


class ListeningSocketSerializer(serializers.ModelSerializer):
    class Meta:
        model = HostListeningSocket
        fields = ["protocol", "address", "port", "pid", "process"]


class DiskSerializer(serializers.ModelSerializer):
    class Meta:
        model = HostDisk
        fields = ["mount_point", "device", "fs_type", "total_bytes", "free_bytes", "used_percent"]


class InterfaceAddressSerializer(serializers.Serializer):
    address = serializers.IPAddressField()
    prefix_length = serializers.IntegerField(allow_null=True)


class InterfaceSerializer(serializers.Serializer):
    name = serializers.CharField()
    mac = serializers.CharField(allow_null=True, help_text="Lower-case, colon-separated on every platform.")
    addresses = InterfaceAddressSerializer(many=True)
    up = serializers.BooleanField(allow_null=True)
    speed_mbps = serializers.IntegerField(allow_null=True)
    mtu = serializers.IntegerField(allow_null=True)


class ServiceSerializer(serializers.Serializer):
    """systemd services fill active_state, sub_state and enabled; Windows services the rest."""

    name = serializers.CharField()
    display_name = serializers.CharField(allow_null=True)
    active_state = serializers.CharField(allow_null=True)
    sub_state = serializers.CharField(allow_null=True)
    enabled = serializers.CharField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    start_type = serializers.CharField(allow_null=True)
    account = serializers.CharField(allow_null=True)
    binary_path = serializers.CharField(allow_null=True)


class HardwareSerializer(serializers.Serializer):
    """Every field is null when the host's newest snapshot did not report it."""

    vendor = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    serial = serializers.CharField(allow_null=True)
    uuid = serializers.CharField(allow_null=True)
    bios_vendor = serializers.CharField(allow_null=True)
    bios_version = serializers.CharField(allow_null=True)
    bios_date = serializers.DateField(allow_null=True)
    virtual = serializers.BooleanField(allow_null=True)
    hypervisor = serializers.CharField(allow_null=True)
