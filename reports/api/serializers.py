"""Output (and the enroll input) of the JSON API; reads come from ``reports.selectors``.

The upload body is not here: it is validated by the msgspec structs in
``reports.payload`` (see ``reports.api.schema`` for how they reach OpenAPI).
"""

from __future__ import annotations

import json

import msgspec
from django.core.validators import ProhibitNullCharactersValidator, RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from reports import selectors
from reports.models import Host, Snapshot


class ErrorSerializer(serializers.Serializer):
    """The one error shape (``reports.api.errors``)."""

    error = serializers.CharField()
    detail = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class UploadResultSerializer(serializers.Serializer):
    snapshot_id = serializers.UUIDField()
    ip = serializers.IPAddressField()
    date = serializers.DateField()
    file = serializers.CharField()
    software_wanted = serializers.BooleanField(
        help_text="True when the upload sent only software_digest and the server holds no list with that "
                  "digest: the agent sends its full software list on its next run (docs/payload.md).")


@extend_schema_field({"$ref": "#/components/schemas/StoredSnapshot"})
class StoredDocumentField(serializers.Field):
    """A stored snapshot document, embedded as JSON (documented by the payload schema)."""

    def to_representation(self, value: bytes):
        return json.loads(value)


class QueryResultSerializer(serializers.Serializer):
    """What /query returns (built as bytes by the view; this is its documentation)."""

    ip = serializers.IPAddressField()
    date = serializers.DateField()
    available_dates = serializers.ListField(child=serializers.DateField())
    snapshots = serializers.ListField(child=StoredDocumentField())


NO_NUL = RegexValidator(r"\A[^\x00]*\Z", message="Null characters are not allowed.")


class TextField(serializers.CharField):
    """A string taken as sent (no trimming), whose OpenAPI schema states every rule it checks.

    DRF trims whitespace before checking blank and max_length, and refuses NUL
    with a validator drf-spectacular cannot describe, so " " or a string with a
    NUL was valid by the schema and refused by the server. Here nothing is
    trimmed, a required string says ``minLength: 1``, and the NUL rule is a
    ``RegexValidator``, which drf-spectacular publishes as ``pattern``.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        if not kwargs.get("allow_blank"):
            kwargs.setdefault("min_length", 1)
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]
        self.validators.append(NO_NUL)


class EnrollRequestSerializer(serializers.Serializer):
    enroll_secret = TextField(max_length=256)
    host_id = TextField(max_length=256, help_text="The host.id this agent will send (as in the payload's host.id).")
    hostname = TextField(max_length=255, required=False, default="", allow_blank=True)


class EnrollResultSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The agent token, shown once: keep it in a file only its owner can read.")
    host_id = serializers.CharField()
    token_name = serializers.CharField()


class HostSerializer(serializers.ModelSerializer):
    """A host in lists; ``status`` is online / offline / stale (settings INVENTORY_OFFLINE_AFTER/STALE_AFTER)."""

    status = serializers.SerializerMethodField()
    latest_snapshot_id = serializers.SerializerMethodField()

    class Meta:
        model = Host
        fields = ["id", "host_id", "hostname", "fqdn", "last_ip", "os_name", "os_version", "cpu_model",
                  "memory_total_bytes", "process_count", "user_count", "first_seen", "last_seen", "status",
                  "latest_snapshot_id"]

    def get_status(self, host: Host) -> str:
        return selectors.host_status(host, self.context.get("now"))

    def get_latest_snapshot_id(self, host: Host) -> str | None:
        snapshot = host.latest_snapshot
        return str(snapshot.snapshot_id) if snapshot is not None else None


class SnapshotSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["snapshot_id", "ip", "day", "collected_at", "received_at", "os_name", "os_version",
                  "cpu_model", "process_count", "user_count", "memory_total_bytes", "memory_available_bytes",
                  "file_name"]


class SnapshotDetailSerializer(SnapshotSummarySerializer):
    host = HostSerializer()
    document = serializers.SerializerMethodField()

    class Meta(SnapshotSummarySerializer.Meta):
        fields = [*SnapshotSummarySerializer.Meta.fields, "host", "document"]

    @extend_schema_field({"$ref": "#/components/schemas/StoredSnapshot"})
    def get_document(self, snapshot: Snapshot):
        return json.loads(selectors.snapshot_document_json(snapshot=snapshot))


class ProcessSerializer(serializers.Serializer):
    pid = serializers.IntegerField()
    ppid = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    username = serializers.CharField(allow_null=True)
    cmdline = serializers.ListField(child=serializers.CharField(), allow_null=True)

    def to_representation(self, process):
        return {key: value for key, value in msgspec.to_builtins(process).items() if key in self.fields}


class ProcessMatchSerializer(serializers.Serializer):
    host = HostSerializer()
    processes = ProcessSerializer(many=True)
