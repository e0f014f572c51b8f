"""The typed snapshot payload (schema v1) and its validator.

This module is the server's half of ``docs/payload.md``: each field there has
one line here. msgspec decodes and validates a 400-process snapshot in well
under a millisecond, where a nested DRF serializer takes about 12 ms; the
OpenAPI schema is generated from these same structs, so the docs, the API
schema and the validator cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import json
import logging
import operator
import re
import threading
import uuid
from typing import Annotated, Literal, Optional

import msgspec
from msgspec import Meta

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_PROCESSES = 20_000
MAX_USERS = 1_000
MAX_STRING = 4_096
MAX_CMDLINE_CHARS = 8_192
MAX_CMDLINE_ARGS = 1_024
MAX_IPS = 256
# Inventory breadth (docs/payload.md, "Inventory"): bounds of the optional lists.
MAX_SOFTWARE = 20_000
MAX_SOCKETS = 10_000
MAX_SERVICES = 10_000
MAX_DISKS = 1_000
MAX_INTERFACES = 1_000
MAX_INTERFACE_ADDRESSES = 256
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)

# Rules the validator checks outside msgspec are written into the JSON Schema
# here too (``extra_json_schema`` documents, it does not validate), so the
# OpenAPI document refuses what the server refuses: NUL characters in any
# string (one scan of the raw body, in _check_semantics) and host.ips entries
# that are not addresses.
NO_NUL = {"pattern": "^[^\\u0000]*$"}
IP_ADDRESS = {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}


def _text(*, min_length: int = 0, max_length: int = MAX_STRING, **extra) -> Meta:
    return Meta(min_length=min_length or None, max_length=max_length, extra_json_schema={**NO_NUL, **extra})


Str = Annotated[str, _text()]
NonEmptyStr = Annotated[str, _text(min_length=1)]
Time = Annotated[dt.datetime, Meta(tz=True)]
U32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]
Bytes = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Cores = Annotated[int, Meta(ge=1, le=65_536)]
Percent = Annotated[float, Meta(ge=0, le=100)]
ProcessCpuPercent = Annotated[float, Meta(ge=0, le=1_000_000)]
LongName = Annotated[str, Meta(min_length=1, max_length=1_024)]
Short = Annotated[str, Meta(max_length=256)]
NonEmptyShort = Annotated[str, Meta(min_length=1, max_length=256)]
Word = Annotated[str, Meta(max_length=64)]
# An address as text; the schema says so, and _check_semantics/_check_inventory parse it.
IPText = Annotated[str, Meta(max_length=64, extra_json_schema=IP_ADDRESS)]
Digest = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]


class _Untracked(msgspec.Struct, gc=False):
    """Base of the payload's structs: not tracked by the garbage collector.

    A decoded snapshot is a tree built from JSON: it can hold no reference
    cycle, so the collector has nothing to find among its structs (one per
    process). Tracking them cost 0.05 ms per upload in allocation, collection
    and release: decode + encode of a 400-process snapshot took 0.505 ms with
    them tracked, 0.453 ms without.
    """


class Agent(_Untracked):
    version: Annotated[str, _text(min_length=1, max_length=64)]


# The ``host`` object, named apart from the Host model (a struct docstring would land in the OpenAPI schema).
class HostIdentity(_Untracked):
    id: Annotated[str, _text(min_length=1, max_length=256)]
    hostname: NonEmptyStr
    fqdn: Optional[Str] = None
    ips: Annotated[list[IPText], Meta(max_length=MAX_IPS)] = []
    boot_time: Optional[Time] = None


class OperatingSystem(_Untracked):
    name: NonEmptyStr
    version: Optional[Str] = None
    release: Optional[Str] = None
    build: Optional[Str] = None
    distribution: Optional[Str] = None
    distribution_version: Optional[Str] = None
    kernel: Optional[Str] = None
    arch: Optional[Str] = None


class Cpu(_Untracked):
    model: Optional[Str] = None
    vendor: Optional[Str] = None
    arch: Optional[Str] = None
    physical_cores: Optional[Cores] = None
    logical_cores: Optional[Cores] = None
    frequency_mhz: Optional[Annotated[float, Meta(ge=0, le=1_000_000)]] = None
    usage_percent: Optional[Percent] = None


class Memory(_Untracked):
    total_bytes: Optional[Bytes] = None
    available_bytes: Optional[Bytes] = None


# One entry of ``users``: an open session, named apart from Django's User model.
class SessionUser(_Untracked):
    name: NonEmptyStr
    terminal: Optional[Str] = None
    host: Optional[Str] = None
    started: Optional[Time] = None


class Process(_Untracked):
    pid: U32
    ppid: Optional[U32] = None
    name: Optional[Str] = None
    username: Optional[Str] = None
    status: Optional[Annotated[str, _text(max_length=64)]] = None
    create_time: Optional[Time] = None
    cpu_percent: Optional[ProcessCpuPercent] = None
    memory_rss_bytes: Optional[Bytes] = None
    memory_percent: Optional[Percent] = None
    num_threads: Optional[Annotated[int, Meta(ge=0, le=10_000_000)]] = None
    exe: Optional[Str] = None
    cmdline: Optional[Annotated[list[Annotated[str, _text(max_length=MAX_CMDLINE_CHARS)]], Meta(max_length=MAX_CMDLINE_ARGS)]] = None


class Software(_Untracked, kw_only=True):
    """One installed package or program (dpkg, rpm, apk, the Windows Uninstall keys)."""

    name: LongName
    version: Optional[Short] = None
    vendor: Optional[Annotated[str, Meta(max_length=1_024)]] = None
    arch: Optional[Word] = None
    source: Annotated[str, Meta(pattern="^[a-z0-9_-]{1,16}$")]
    install_date: Optional[dt.date] = None


class ListeningSocket(_Untracked):
    """A listening TCP socket or a bound, unconnected UDP socket."""

    protocol: Literal["tcp", "udp"]
    address: IPText
    port: Annotated[int, Meta(ge=0, le=65_535)]
    pid: Optional[U32] = None
    process: Optional[Short] = None


class Disk(_Untracked):
    """One mounted file system backed by a device."""

    mount_point: LongName
    device: Optional[Annotated[str, Meta(max_length=1_024)]] = None
    fs_type: Optional[Word] = None
    total_bytes: Optional[Bytes] = None
    free_bytes: Optional[Bytes] = None


class InterfaceAddress(_Untracked):
    address: IPText
    prefix_length: Optional[Annotated[int, Meta(ge=0, le=128)]] = None


class Interface(_Untracked):
    """One network interface; ``mac`` in one format on every platform (lower-case, ``:``)."""

    name: NonEmptyShort
    mac: Optional[Annotated[str, Meta(pattern="^[0-9a-f]{2}(:[0-9a-f]{2}){0,19}$")]] = None
    addresses: Annotated[list[InterfaceAddress], Meta(max_length=MAX_INTERFACE_ADDRESSES)] = []
    up: Optional[bool] = None
    speed_mbps: Optional[Annotated[int, Meta(ge=0, le=100_000_000)]] = None
    mtu: Optional[Annotated[int, Meta(ge=0, le=2**31 - 1)]] = None


class Service(_Untracked, omit_defaults=True):
    """A systemd service (active_state, sub_state, enabled) or a Windows service (the rest).

    Null fields are left out when stored (``omit_defaults``), as the agent
    leaves them out when sending: the other platform's fields would
    otherwise cost every snapshot ~90 bytes per service.
    """

    name: NonEmptyShort
    display_name: Optional[Short] = None
    active_state: Optional[Word] = None
    sub_state: Optional[Word] = None
    enabled: Optional[Word] = None
    status: Optional[Word] = None
    start_type: Optional[Word] = None
    account: Optional[Short] = None
    binary_path: Optional[Str] = None


class Hardware(_Untracked):
    vendor: Optional[Short] = None
    model: Optional[Short] = None
    serial: Optional[Short] = None
    uuid: Optional[Word] = None
    bios_vendor: Optional[Short] = None
    bios_version: Optional[Short] = None
    bios_date: Optional[dt.date] = None
    virtual: Optional[bool] = None
    hypervisor: Optional[Word] = None


class SnapshotPayload(_Untracked, kw_only=True):
    """One snapshot as the agent sends it; field order is the stored order."""

    schema_version: Literal[1]
    snapshot_id: uuid.UUID
    collected_at: Annotated[dt.datetime, Meta(tz=True, description=(
        "When the agent collected the snapshot: not before 2000-01-01 and at most 5 minutes "
        "in the future of the server's clock (a rule JSON Schema cannot state)."))]
    agent: Agent
    host: HostIdentity
    os: OperatingSystem
    cpu: Cpu
    memory: Optional[Memory] = None
    users: Annotated[list[SessionUser], Meta(max_length=MAX_USERS)]
    users_source: Optional[Annotated[str, _text(max_length=32)]] = None
    processes: Annotated[list[Process], Meta(max_length=MAX_PROCESSES)]
    # Inventory breadth: optional, so agents older than these fields keep working.
    software: Optional[Annotated[list[Software], Meta(max_length=MAX_SOFTWARE)]] = None
    software_digest: Optional[Digest] = None
    software_count: Optional[Annotated[int, Meta(ge=0, le=MAX_SOFTWARE)]] = None
    listening: Optional[Annotated[list[ListeningSocket], Meta(max_length=MAX_SOCKETS)]] = None
    disks: Optional[Annotated[list[Disk], Meta(max_length=MAX_DISKS)]] = None
    interfaces: Optional[Annotated[list[Interface], Meta(max_length=MAX_INTERFACES)]] = None
    services: Optional[Annotated[list[Service], Meta(max_length=MAX_SERVICES)]] = None
    hardware: Optional[Hardware] = None


class PayloadError(Exception):
    """The body is not a valid schema-v1 snapshot; ``errors`` maps field paths to messages."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


_decoder = msgspec.json.Decoder(SnapshotPayload)
_encoder = msgspec.json.Encoder()
_CMDLINE = operator.attrgetter("cmdline")
_AT_PATH = re.compile(r"^(?P<msg>.*?) - at `\$(?P<path>[^`]*)`$", re.S)
# How a NUL can arrive in JSON: only as this escape. Searched for from the end
# (``rfind``): CPython's search then skips on the needle's first byte, a
# backslash, rare in JSON, where a forward search skips on its last, "0",
# common in JSON, so it is several times faster than ``in`` or the regex
# engine's literal search (docs/performance.md).
_NUL_ESCAPE = b"\\u0000"


def _field_error(path: str, message: str) -> PayloadError:
    return PayloadError("The snapshot is not valid.", {path or "$": [message]})


def decode(raw: bytes, *, now: dt.datetime) -> SnapshotPayload:
    """Decode and validate one snapshot from JSON bytes, or raise PayloadError.

    ``now`` is the server's clock, passed in so tests can pin it.
    """
    try:
        payload = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        if _WHOLE_FLOAT.search(str(exc)):
            payload = _decode_whole_floats(raw)
        else:
            raise _validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise PayloadError(f"The body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise PayloadError("The body is not valid UTF-8.") from None
    except RecursionError:
        raise PayloadError("The body is nested too deeply.") from None
    _check_semantics(payload, now=now, raw=raw)
    _check_inventory(payload)
    return payload


_WHOLE_FLOAT = re.compile(r"^Expected `int[^`]*`, got `float`")


def _validation_error(exc: msgspec.ValidationError) -> PayloadError:
    match = _AT_PATH.match(str(exc))
    if match:
        return _field_error(match["path"].lstrip("."), match["msg"])
    return _field_error("", str(exc))


def _decode_whole_floats(raw: bytes) -> SnapshotPayload:
    """Decode a body that spells a whole number as a float (``"pid": 42.0``), or raise PayloadError.

    In JSON (and the JSON Schema of the OpenAPI document, draft 2020-12) 42.0
    is the integer 42, but msgspec's typed decoder refuses it, and its lax
    mode would also read "42" as 42. So only when the fast path fails on a
    float: decode untyped, turn whole floats into ints, and validate strictly.
    """
    try:
        return msgspec.convert(_whole_floats_as_ints(msgspec.json.decode(raw)), SnapshotPayload)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
    except msgspec.DecodeError as exc:  # the typed pass stopped before the broken part
        raise PayloadError(f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("The body is nested too deeply.") from None


def _whole_floats_as_ints(value):
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    return value


def _check_semantics(payload: SnapshotPayload, *, now: dt.datetime, raw: bytes) -> None:
    """Rules a type cannot say: time window, cmdline budget, addresses, NUL bytes."""
    if payload.collected_at > now + FUTURE_TOLERANCE:
        raise _field_error("collected_at", "collected_at is more than 5 minutes in the future of the server's clock.")
    if payload.collected_at < EARLIEST:
        raise _field_error("collected_at", "collected_at is before 2000-01-01.")
    for index, address in enumerate(payload.host.ips):
        if not _is_ip(address):
            raise _field_error(f"host.ips[{index}]", f"{address!r} is not an IP address.")
    # The length of a list joined with "" is the sum of its arguments' lengths;
    # joining in C costs 60 us for 400 processes where a Python loop summing
    # lengths cost 150 us. The loop runs only to name the process at fault.
    cmdlines = filter(None, map(_CMDLINE, payload.processes))
    if max(map(len, map("".join, cmdlines)), default=0) > MAX_CMDLINE_CHARS:
        for index, process in enumerate(payload.processes):
            if process.cmdline and len("".join(process.cmdline)) > MAX_CMDLINE_CHARS:
                raise _field_error(f"processes[{index}].cmdline",
                                   f"cmdline is longer than {MAX_CMDLINE_CHARS} characters in all.")
    # A NUL can only arrive as the escape \u0000; look for it in the raw bytes
    # first so that the common case costs one scan in C.
    if raw.rfind(_NUL_ESCAPE) >= 0:
        path = _find_nul(msgspec.to_builtins(payload), "")
        if path is not None:
            raise _field_error(path, "NUL characters are not allowed in strings.")


def software_digest(entries: list[Software]) -> str:
    """The canonical sha256 of a software list; the agent's ``agent.inventory.software_digest`` twin.

    Each entry is the JSON array ``[name, version, vendor, arch, source,
    install_date]`` (compact, UTF-8 unescaped); the arrays are sorted by their
    text and joined into one JSON array. Written with ``json.dumps`` on both
    sides so the two encoders cannot differ in an escape.
    """
    rows = sorted(json.dumps([e.name, e.version, e.vendor, e.arch, e.source,
                              e.install_date.isoformat() if e.install_date else None],
                             ensure_ascii=False, separators=(",", ":")) for e in entries)
    return hashlib.sha256(("[" + ",".join(rows) + "]").encode("utf-8")).hexdigest()


def _check_inventory(payload: SnapshotPayload) -> None:
    """Rules of the inventory fields a type cannot say: addresses, and the software digest."""
    for index, sock in enumerate(payload.listening or ()):
        if not _is_ip(sock.address):
            raise _field_error(f"listening[{index}].address", f"{sock.address!r} is not an IP address.")
    for index, interface in enumerate(payload.interfaces or ()):
        for number, entry in enumerate(interface.addresses):
            if not _is_ip(entry.address):
                raise _field_error(f"interfaces[{index}].addresses[{number}].address",
                                   f"{entry.address!r} is not an IP address.")
    if payload.software is None:
        return
    # The list is the truth: its digest and count are derived from it here, so
    # the host's record names exactly the list the server holds, and later
    # digest-only uploads are compared with that (docs/payload.md, "The
    # software rule"). An agent that sent other values is logged, not refused:
    # a schema cannot say "the sha256 of this list", so a valid request is not
    # turned away for it, and the agent's next digest-only upload will differ
    # and be asked for the list again.
    digest, count = software_digest(payload.software), len(payload.software)
    if (payload.software_digest, payload.software_count) not in {(digest, count), (digest, None), (None, None)}:
        logger.warning("host %s sent software_digest %s and software_count %s for a list of %d entries "
                       "whose digest is %s; kept the list's own", payload.host.id, payload.software_digest,
                       payload.software_count, count, digest)
    payload.software_digest, payload.software_count = digest, count


@functools.lru_cache(maxsize=4096)
def _is_ip(text: str) -> bool:
    # Cached: the same few addresses (0.0.0.0, ::, 127.0.0.1, the host's own)
    # come in every upload, and parsing them each time cost ~3 us apiece.
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _find_nul(value: object, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_nul(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_nul(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


_encode_buffers = threading.local()
_ENCODE_BUFFER_KEPT_BYTES = 1 << 20


def encode_stored(payload: SnapshotPayload, *, received_at: dt.datetime, ip: str) -> bytes:
    """The stored document: the validated payload plus ``received_at`` and ``ip``, one JSON line.

    Both objects are encoded into one buffer kept by the thread, the second
    over the first's closing brace, so a document of a hundred kilobytes is
    copied once (into the returned bytes) instead of once per growth of the
    encoder's buffer and once per concatenation.
    """
    buffer = getattr(_encode_buffers, "buffer", None)
    if buffer is None:
        buffer = _encode_buffers.buffer = bytearray()
    _encoder.encode_into(payload, buffer)
    brace = len(buffer) - 1
    _encoder.encode_into({"received_at": received_at, "ip": ip}, buffer, brace)
    buffer[brace] = ord(",")  # the second object's "{" continues the first one's members
    document = bytes(buffer)
    if len(buffer) > _ENCODE_BUFFER_KEPT_BYTES:
        del _encode_buffers.buffer  # a rare large upload does not keep its memory in the worker
    return document


class _ServerFields(msgspec.Struct):
    received_at: dt.datetime
    ip: str


class StoredSnapshot(msgspec.Struct):
    """A document read back from a day file: the payload and what the server added."""

    payload: SnapshotPayload
    received_at: dt.datetime
    ip: str


_server_fields_decoder = msgspec.json.Decoder(_ServerFields)


def decode_stored(document: bytes) -> StoredSnapshot:
    """Read a stored document back (rebuilds, crash recovery); PayloadError if it is not one."""
    try:
        payload = _decoder.decode(document)
        extra = _server_fields_decoder.decode(document)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"not a stored snapshot document: {exc}") from None
    return StoredSnapshot(payload=payload, received_at=extra.received_at, ip=extra.ip)
