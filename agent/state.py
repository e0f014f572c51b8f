"""The agent's state folder: where it lives, and crash-safe writes into it.

The state folder holds what must survive between runs (the spool, a generated
host id, later an enrolled token). Its location follows each platform's
convention so that a root service and a user's test run never share files.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Mapping

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
