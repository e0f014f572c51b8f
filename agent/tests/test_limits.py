"""The agent's bounds agree with the server's, so the agent never sends what the server refuses.

``agent/limits.py`` trims; ``reports/payload.py`` validates. This test reads
every ``max_length`` (and ``le``) of the server's payload structs through
``msgspec.inspect`` and compares it with the bound the agent applies to that
field: a bound changed on one side only, or a new bounded field the agent
does not trim, fails here. Importing the server's code is fine in a test; the
agent itself never does (checked below), it needs only psutil and requests.

The upload's size (``INVENTORY_MAX_UPLOAD_BYTES``) has no agent counterpart:
it is a per-server setting the agent cannot know, and a 413 sets the snapshot
aside like any other refusal (``docs/agent.md``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec.inspect as mi
import pytest

from agent import limits
from reports import payload

REPO = Path(__file__).resolve().parents[2]

# Server field path ("[]" = each item of a list) -> the bound the agent trims it to.
AGENT_BOUNDS = {
    "host.id": limits.MAX_SHORT,
    "host.hostname": limits.MAX_STRING,
    "host.fqdn": limits.MAX_STRING,
    "host.ips": limits.MAX_IPS,
    **{f"os.{name}": limits.MAX_STRING for name in (
        "name", "version", "release", "build", "distribution", "distribution_version", "kernel", "arch")},
    **{f"cpu.{name}": limits.MAX_STRING for name in ("model", "vendor", "arch")},
    "users": limits.MAX_USERS,
    **{f"users[].{name}": limits.MAX_STRING for name in ("name", "terminal", "host")},
    "processes": limits.MAX_PROCESSES,
    **{f"processes[].{name}": limits.MAX_STRING for name in ("name", "username", "exe")},
    "processes[].cmdline": limits.MAX_CMDLINE_ARGS,
    "processes[].cmdline[]": limits.MAX_CMDLINE_CHARS,
    "software": limits.MAX_SOFTWARE,
    "software_count": limits.MAX_SOFTWARE,
    "software[].name": limits.MAX_NAME,
    "software[].version": limits.MAX_SHORT,
    "software[].vendor": limits.MAX_NAME,
    "software[].arch": limits.MAX_WORD,
    "listening": limits.MAX_SOCKETS,
    "listening[].address": limits.MAX_WORD,
    "listening[].process": limits.MAX_SHORT,
    "disks": limits.MAX_DISKS,
    "disks[].mount_point": limits.MAX_NAME,
    "disks[].device": limits.MAX_NAME,
    "disks[].fs_type": limits.MAX_WORD,
    "interfaces": limits.MAX_INTERFACES,
    "interfaces[].name": limits.MAX_SHORT,
    "interfaces[].addresses": limits.MAX_ADDRESSES,
    "interfaces[].addresses[].address": limits.MAX_WORD,
    "services": limits.MAX_SERVICES,
    **{f"services[].{name}": limits.MAX_SHORT for name in ("name", "display_name", "account")},
    **{f"services[].{name}": limits.MAX_WORD for name in ("active_state", "sub_state", "enabled", "status",
                                                          "start_type")},
    "services[].binary_path": limits.MAX_STRING,
    **{f"hardware.{name}": limits.MAX_SHORT for name in ("vendor", "model", "serial", "bios_vendor",
                                                         "bios_version")},
    "hardware.uuid": limits.MAX_WORD,
    "hardware.hypervisor": limits.MAX_WORD,
}

# Bounded on the server, never trimmed by the agent: it writes these values itself, always short.
AGENT_WRITES_ITSELF = {
    "agent.version",  # agent.__version__
    "host.ips[]",  # str() of a parsed address, zone removed: at most 45 characters
    "users_source",  # one of a few fixed words
    "processes[].status",  # psutil's status constants
}


def _unwrap(t: mi.Type) -> mi.Type:
    while True:
        if isinstance(t, mi.Metadata):
            t = t.type
        elif isinstance(t, mi.UnionType):
            [t] = [member for member in t.types if not isinstance(member, mi.NoneType)]
        else:
            return t


def _server_bounds() -> dict[str, int]:
    """Every bounded field of the payload: path -> its ``max_length`` (strings, lists) or ``le`` (counts)."""
    bounds: dict[str, int] = {}

    def walk(t: mi.Type, path: str) -> None:
        t = _unwrap(t)
        bound = getattr(t, "max_length", None)
        if bound is None and isinstance(t, mi.IntType) and path.endswith("_count"):
            bound = t.le
        if bound is not None:
            bounds[path] = bound
        if isinstance(t, mi.StructType):
            for f in t.fields:
                walk(f.type, f"{path}.{f.name}" if path else f.name)
        elif isinstance(t, mi.ListType):
            walk(t.item_type, f"{path}[]")

    walk(mi.type_info(payload.SnapshotPayload), "")
    return bounds


SERVER_BOUNDS = _server_bounds()


@pytest.mark.parametrize(("path", "agent_bound"), sorted(AGENT_BOUNDS.items()))
def test_the_agent_trims_each_field_to_the_servers_bound(path, agent_bound):
    assert path in SERVER_BOUNDS, f"{path} is no longer bounded by the server"
    assert agent_bound == SERVER_BOUNDS[path], f"{path}: agent {agent_bound}, server {SERVER_BOUNDS[path]}"


def test_every_field_the_server_bounds_is_bounded_by_the_agent():
    unaccounted = set(SERVER_BOUNDS) - set(AGENT_BOUNDS) - AGENT_WRITES_ITSELF
    assert not unaccounted, f"bounded by the server, not trimmed by the agent: {sorted(unaccounted)}"


def test_the_command_line_budget_in_all_matches_the_servers():
    """The server also checks the sum of a command line's arguments, outside the structs."""
    assert limits.MAX_CMDLINE_CHARS == payload.MAX_CMDLINE_CHARS


def test_the_agent_never_imports_the_server_at_run_time():
    code = ("import sys, agent.run_agent, agent.windows_setup; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'reports', 'msgspec', 'rest_framework'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
