"""Output, the enroll input and the query parameters of the JSON API; reads come from ``reports.selectors``.

Each read endpoint's query string is validated by one ``...FilterSerializer``
(HackSoft's ``UserListApi`` shape): the view validates ``request.query_params``
with it, calls the selector with ``validated_data``, and drf-spectacular
documents the parameters from the same fields. The upload body is not here: it
is validated by the msgspec structs in ``reports.payload`` (see
``reports.api.schema`` for how they reach OpenAPI).
"""

from __future__ import annotations

import datetime as dt
import json
import re

import msgspec
from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator, RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from reports import addresses, forms
from reports import payload as payload_schema
from reports import processes as process_rule
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


# --- query parameters ----------------------------------------------------------------------

class QueryTextField(serializers.Field):
    """A query-string text taken as sent; an empty optional one counts as not sent, a required one is refused.

    Not a ``CharField``: drf-spectacular gives every CharField query parameter
    that refuses blank values ``minLength: 1`` (so the schema would refuse
    ``?search=``, which the server takes), and one that allows them a
    ``oneOf``. The length and NUL rules are validators, which it publishes as
    ``maxLength`` and ``pattern``; their messages are Django's form messages,
    which the read API answered with before its parameters moved from
    django-filter to serializers.
    """

    default_error_messages = {"blank": "This field is required.", "invalid": "Not a valid string."}

    def __init__(self, *, max_length: int, **kwargs):
        kwargs["validators"] = [MaxLengthValidator(max_length), NO_NUL]
        super().__init__(**kwargs)
        extend_schema_field({"type": "string", "minLength": 1} if self.required else {"type": "string"})(self)

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if not data:
            self.fail("blank")
        return data

    def to_representation(self, value) -> str:
        return value


class QueryChoiceField(serializers.ChoiceField):
    """One of a fixed list, compared exactly as sent, or empty for "any" (so the schema lists "" too)."""

    default_error_messages = {"invalid_choice": "Select a valid choice. {input} is not one of the available choices."}

    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, **kwargs)


class ExactParameter(serializers.Field):
    """A parameter read exactly as sent: an empty value is a value, not an absent parameter.

    DRF reads ``?date=`` on an optional field as "not sent"; /query answers it
    with a 400, as it always has.
    """

    def get_value(self, dictionary):
        return dictionary.get(self.field_name, empty)


class ExactIntegerParameter(ExactParameter, serializers.IntegerField):
    """An integer parameter; ``?port=`` is refused (400) as the schema says, not taken as "not sent"."""


class ExactBooleanParameter(ExactParameter, serializers.BooleanField):
    """A boolean parameter; ``?disk_full=`` is refused (400) as the schema says, not taken as "false"."""


class ExactFloatParameter(ExactParameter, serializers.FloatField):
    """A number parameter; an empty value is refused (400) as the schema says, not taken as the default."""


class ExactRegexParameter(ExactParameter, serializers.RegexField):
    """A text parameter with a pattern; an empty value is refused (400) as the pattern says."""


class HostFilterSerializer(serializers.Serializer):
    """The parameters of /api/hosts/; the host list page takes the same rules (``reports.forms.HostFilterForm``)."""

    search = QueryTextField(max_length=forms.SEARCH_MAX_LENGTH, required=False,
                            help_text="Substring of hostname, FQDN, host id, the host's own or seen address, "
                                      "OS, version, kernel or CPU (any case).")
    os = QueryTextField(max_length=Host._meta.get_field("os_name").max_length, required=False,
                        help_text="Exact OS name, e.g. Linux.")
    os_version = QueryTextField(max_length=Host._meta.get_field("os_version").max_length, required=False,
                                help_text="Exact OS version as listed, e.g. 'CentOS Linux 7' or "
                                          "'Windows Server 2016 Datacenter'.")
    status = QueryChoiceField(choices=selectors.HOST_STATUSES, required=False,
                              help_text="online, offline or stale (see INVENTORY_OFFLINE_AFTER / INVENTORY_STALE_AFTER).")
    ordering = QueryChoiceField(choices=forms.HOST_SORTS, required=False,
                                help_text="A field, with '-' for descending.")
    software = QueryTextField(max_length=1024, required=False,
                              help_text="Exact package name: hosts whose current software list has it.")
    port = ExactIntegerParameter(min_value=1, max_value=65_535, required=False,
                                 help_text="Hosts with a listening socket on this port.")
    disk_full = ExactBooleanParameter(required=False, help_text="true: hosts with a disk at least 90% full.")
    identity_conflict = ExactBooleanParameter(
        required=False, help_text="true: hosts flagged as two machines sending one host id (docs/agent.md).")


class ProcessFilterSerializer(serializers.Serializer):
    """The parameters of /api/processes/: the process search page's, with the same limits and range rule."""

    name = QueryTextField(max_length=forms.SEARCH_MAX_LENGTH,
                          help_text="Substring of a process name, or of its name or command line with "
                                    "match=cmdline (any case).")
    match = QueryChoiceField(choices=process_rule.MATCH_MODES, required=False,
                             help_text="cmdline (the default): name or command line; name: the name alone.")
    since = serializers.DateTimeField(required=False, help_text=(
        "ISO 8601 time: hosts that ran a matching process at any time from then (to 'until', default now). "
        "Without since and until: the processes of each host's newest snapshot."))
    until = serializers.DateTimeField(required=False, help_text=(
        "ISO 8601 time: the end of the range (alone: that moment). Not before since, and at most "
        f"{forms.PROCESS_RANGE_MAX.days} days after it: otherwise 400."))

    def validate(self, attrs):
        errors = forms.process_range_errors(attrs.get("since"), attrs.get("until"))
        if errors:
            raise serializers.ValidationError({field: [message] for field, message in errors.items()})
        return attrs


@extend_schema_field({"type": "string", **payload_schema.IP_ADDRESS})
class IPAddressParameter(ExactParameter):
    default_error_messages = {
        "required": "This parameter is required.",
        "invalid": "{input!r} is not an IP address (scope ids are not accepted).",
    }

    def to_internal_value(self, data) -> addresses.IPAddress:
        if not data:
            self.fail("required")
        try:
            return addresses.parse_ip(data)
        except ValueError:
            self.fail("invalid", input=data)


@extend_schema_field(OpenApiTypes.DATE)
class DateParameter(ExactParameter):
    """YYYY-MM-DD exactly (``fromisoformat`` alone also takes 20240101 or a week date)."""

    default_error_messages = {"invalid": "{input!r} is not a date in the form YYYY-MM-DD."}
    _FORM = re.compile(r"^\d{4}-\d{2}-\d{2}$")

    def to_internal_value(self, data) -> dt.date:
        try:
            if not self._FORM.match(data):
                raise ValueError
            return dt.date.fromisoformat(data)
        except ValueError:
            self.fail("invalid", input=data)


@extend_schema_field(OpenApiTypes.BOOL)
class BooleanParameter(ExactParameter):
    """true/1/yes or false/0/no/empty, any case, spaces around ignored; nothing else."""

    default_error_messages = {"invalid": "Use {name}=true or {name}=false."}
    _TRUE = frozenset({"true", "1", "yes"})
    _FALSE = frozenset({"false", "0", "no", ""})

    def to_internal_value(self, data) -> bool:
        word = data.strip().lower()
        if word not in self._TRUE | self._FALSE:
            self.fail("invalid", name=self.field_name)
        return word in self._TRUE


class QueryFilterSerializer(serializers.Serializer):
    """The parameters of /query."""

    ip = IPAddressParameter(help_text="IPv4 or IPv6 address, nothing around it (no scope id).")
    date = DateParameter(required=False, help_text="YYYY-MM-DD; default: the newest day.")
    latest = BooleanParameter(required=False, help_text="Only the newest snapshot of that day.")


class EnrollResultSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The agent token, shown once: keep it in a file only its owner can read.")
    host_id = serializers.CharField()
    token_name = serializers.CharField()


class HostSerializer(serializers.ModelSerializer):
    """A host in lists; ``status`` is online / offline / stale (settings INVENTORY_OFFLINE_AFTER/STALE_AFTER)."""

    status = serializers.SerializerMethodField()
    identity_conflict = serializers.BooleanField(
        read_only=True, help_text="Snapshots of this host id seem to come from two machines (docs/agent.md).")
    latest_snapshot_id = serializers.SerializerMethodField()

    class Meta:
        model = Host
        fields = ["id", "host_id", "hostname", "fqdn", "last_ip", "own_address", "os_name", "os_version", "cpu_model",
                  "memory_total_bytes", "process_count", "user_count", "agent_version", "boot_time", "first_seen",
                  "last_seen", "status", "latest_snapshot_id", "identity_conflict", "identity_conflict_since",
                  "identity_conflict_fields"]
        extra_kwargs = {"identity_conflict_fields": {"help_text": "What the two machines differ in, e.g. 'hostname, address'."}}

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


class ProcessTextSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Lower-cased process name.")
    cmdline = serializers.CharField(help_text="Lower-cased command line, cut at 200 characters.")

    def to_representation(self, pair):
        return {"name": pair[0], "cmdline": pair[1]}


class ProcessMatchSerializer(serializers.Serializer):
    """One host of a process search, with when it ran matching processes (within the range) and which."""

    host = HostSerializer()
    first_seen = serializers.DateTimeField(help_text="First time a matching process was seen (within the range).")
    last_seen = serializers.DateTimeField(help_text="Last time one was seen (within the range; an open run ends at "
                                                    "the host's last snapshot).")
    running = serializers.BooleanField(help_text="The host's newest snapshot has a matching process.")
    matches = ProcessTextSerializer(many=True, help_text="Matching process texts (at most 5).")
    match_count = serializers.IntegerField(help_text="How many distinct matching texts in all.")
    processes = ProcessSerializer(many=True, help_text="The matching processes of the host's newest snapshot.")
