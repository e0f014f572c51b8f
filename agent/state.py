"""The agent's state folder: where it lives, and crash-safe writes into it.

The state folder holds what must survive between runs (the spool, a generated
host id, an enrolled token, and the digest of the last software list sent). Its location follows each platform's
convention so that a root service and a user's test run never share files.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

STATE_DIR_ROOT_LINUX = Path("/var/lib/relevo-agent")
HOST_ID_FILE = "host-id"


def default_state_dir(
    *, env: Mapping[str, str] | None = None, platform: str | None = None, is_root: bool | None = None
) -> Path:
    """Return the platform's conventional state folder for the agent.

    Root on Linux uses ``/var/lib/relevo-agent`` (what the systemd unit
    expects), Windows uses ``%ProgramData%\\Relevo`` (readable by the
    scheduled task running as SYSTEM), and anyone else gets their own XDG
    state directory so that a trial run never needs privileges.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform.startswith("win"):
        base = env.get("ProgramData") or env.get("PROGRAMDATA") or r"C:\ProgramData"
        return Path(base) / "Relevo"
    if is_root is None:
        is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root:
        return STATE_DIR_ROOT_LINUX
    xdg = env.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return base / "relevo-agent"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    The bytes go to a temporary file in the same folder, are fsynced, then
    ``os.replace`` swaps it in; the folder is fsynced too on POSIX so the
    rename itself survives a power cut.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Windows cannot open a folder for fsync; NTFS journals the rename anyway.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def host_id_load_or_create(state_dir: Path) -> str:
    """Return the host id kept in the state folder, generating it on first use.

    Used only when the platform has no machine id of its own, so the id must
    stay the same across runs or the server would see a new host every time.
    """
    path = state_dir / HOST_ID_FILE
    try:
        existing = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    new_id = uuid.uuid4().hex
    write_atomic(path, (new_id + "\n").encode("ascii"))
    return new_id


SOFTWARE_STATE_FILE = "software.json"


@dataclass(frozen=True)
class SoftwareState:
    """What the agent remembers of the software list it last delivered in full.

    ``digest`` and ``sent_at`` (UTC) name the last full list the server
    acknowledged; ``wanted`` is set when the server answered
    ``software_wanted``, so the next run sends the full list whatever else holds.
    """

    digest: str | None = None
    sent_at: datetime | None = None
    wanted: bool = False


def software_state_load(state_dir: Path) -> SoftwareState:
    """The kept software state; an empty one (so the next run sends the full list) if missing or unreadable."""
    path = state_dir / SOFTWARE_STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sent_at = datetime.fromisoformat(data["sent_at"]) if data.get("sent_at") else None
        if sent_at is not None and sent_at.tzinfo is None:
            raise ValueError("sent_at has no time zone")
        digest = data.get("digest")
        if digest is not None and not isinstance(digest, str):
            raise ValueError("digest is not a string")
        return SoftwareState(digest=digest, sent_at=sent_at, wanted=bool(data.get("wanted", False)))
    except FileNotFoundError:
        return SoftwareState()
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        # A torn or hand-edited file costs one full list, never a failed run.
        log.warning("software state %s unreadable (%s); the full list will be sent", path, exc)
        return SoftwareState()


def software_state_save(state_dir: Path, state: SoftwareState) -> None:
    """Keep the software state, crash-safe (a torn file would only cost one full list anyway)."""
    data = {"digest": state.digest, "sent_at": state.sent_at.isoformat() if state.sent_at else None,
            "wanted": state.wanted}
    write_atomic(state_dir / SOFTWARE_STATE_FILE, json.dumps(data).encode("utf-8"))
