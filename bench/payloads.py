"""Benchmark payloads: a real snapshot of this machine from the agent's collector, padded to 400 processes.

``agent.collector.snapshot_collect`` collects the snapshot exactly as a
deployed agent would (redaction included). A 2-core test box runs far fewer
than 400 processes, so the real list is repeated (with fresh, unused pids)
until it holds 400, the size of a busy server's list: about 100-150 KB of JSON.

``UploadTemplate`` turns one snapshot into many distinct uploads cheaply: the
snapshot_id and collected_at are fixed-width fields, replaced by byte slicing,
so the load generator spends its CPU on sending, not on encoding JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.collector import snapshot_collect  # noqa: E402
from agent.software_rule import software_trim  # noqa: E402
from agent.state import SoftwareState  # noqa: E402

TARGET_PROCESSES = 400
# The agent's default CPU window is longer; the benchmark needs a snapshot, not precise percentages.
SAMPLE_SECONDS = 0.2


def pad_processes(processes: list[dict], count: int = TARGET_PROCESSES) -> list[dict]:
    """Repeat the real list (with unused pids) until it has *count* entries."""
    if not processes:
        raise RuntimeError("the collector returned no processes")
    padded = list(processes[:count])
    next_pid = max(p["pid"] for p in processes) + 1
    index = 0
    while len(padded) < count:
        clone = dict(processes[index % len(processes)])
        clone["pid"] = next_pid
        next_pid += 1
        index += 1
        padded.append(clone)
    return padded


def collect_snapshot(processes: int = TARGET_PROCESSES) -> dict:
    """One schema-v1 snapshot of this machine, from the agent's collector, with *processes* processes."""
    snapshot = snapshot_collect(sample_seconds=SAMPLE_SECONDS)
    snapshot["processes"] = pad_processes(snapshot["processes"], processes)
    # The usual upload carries the software list's digest, not the list (the
    # software rule, docs/payload.md): the full list goes once a day per host.
    now = dt.datetime.now(dt.timezone.utc)
    software_trim(snapshot, state=SoftwareState(digest=snapshot["software_digest"], sent_at=now), now=now)
    return snapshot


_ID_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
_TIME_PLACEHOLDER = "2000-01-01T00:00:00.000000+00:00"


class UploadTemplate:
    """Many distinct upload bodies from one snapshot, by replacing fixed-width fields."""

    def __init__(self, snapshot: dict, *, host_id: str | None = None, hostname: str | None = None):
        snapshot = json.loads(json.dumps(snapshot))
        snapshot["snapshot_id"] = _ID_PLACEHOLDER
        snapshot["collected_at"] = _TIME_PLACEHOLDER
        if host_id is not None:
            snapshot["host"]["id"] = host_id
        if hostname is not None:
            snapshot["host"]["hostname"] = hostname
        raw = json.dumps(snapshot, separators=(",", ":")).encode()
        self._id_at = raw.index(_ID_PLACEHOLDER.encode())
        self._time_at = raw.index(_TIME_PLACEHOLDER.encode())
        if self._id_at > self._time_at:
            raise RuntimeError("snapshot_id must come before collected_at in the template")
        self._raw = raw

    def __len__(self) -> int:
        return len(self._raw)

    def body(self, *, snapshot_id: uuid.UUID | None = None, collected_at: dt.datetime | None = None) -> bytes:
        snapshot_id = snapshot_id or uuid.uuid4()
        collected_at = (collected_at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        stamp = collected_at.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").encode()
        raw = self._raw
        i, t = self._id_at, self._time_at
        return b"".join((raw[:i], str(snapshot_id).encode(), raw[i + 36:t], stamp, raw[t + len(_TIME_PLACEHOLDER):]))


if __name__ == "__main__":
    # --save FILE keeps the snapshot, so that two runs (or two commits) can send the same one.
    snapshot = collect_snapshot()
    template = UploadTemplate(snapshot)
    print(f"payload processes: {len(snapshot['processes'])}")
    print(f"payload size: {len(template.body())} bytes")
    if len(sys.argv) == 3 and sys.argv[1] == "--save":
        Path(sys.argv[2]).write_text(json.dumps(snapshot))
        print(f"saved to {sys.argv[2]}")
