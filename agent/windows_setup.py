"""What the Windows MSI does besides copying files: settings, their ACL, and the Scheduled Task.

The MSI runs ``python.exe -I -m agent.windows_setup install ...`` (a deferred
custom action, as SYSTEM, with the bundled interpreter under Program Files)
after its files are in place, and ``... uninstall`` before removing them.
Kept in Python, not in MSI tables, because wixl (which builds the MSI on
Linux) has no ``util:PermissionEx`` and no task table, and because this
module can be tested.

Install, in this order so that no secret is ever written to an open folder:

1. create ``%ProgramData%\\Relevo`` and take it over: owner Administrators,
   inheritance removed, full control for SYSTEM and Administrators only,
   recursively (a user may have created the folder first: ProgramData lets
   users create folders, which is how GLPI Agent's CVE-2024-28240 happened);
2. write ``agent.conf`` there (``config_file`` format) from the public
   properties ``SERVER``, ``ENROLL_SECRET``, ``TOKEN``; a repair or upgrade
   that passes none keeps the existing file;
3. register the Scheduled Task ``Relevo Agent``: every 5 minutes and at boot,
   as SYSTEM, the bundled ``python.exe`` under Program Files (not writable by
   users) with ``--config``; the agent's ``--splay`` adds the per-run jitter
   (a trigger's RandomDelay applies once, not to each repetition).

Uninstall deletes the task and the whole state folder (settings, enrolled
token, spool, host id).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from .config_file import ConfigError, config_read, config_render
from .state import default_state_dir, write_atomic

TASK_NAME = "Relevo Agent"
CONFIG_NAME = "agent.conf"
SETUP_LOG = "setup.log"
INTERVAL_MINUTES = 5
SPLAY_SECONDS = 60
SID_SYSTEM = "*S-1-5-18"
SID_ADMINISTRATORS = "*S-1-5-32-544"

Runner = Callable[[Sequence[str]], int]


def _system_tool(name: str) -> str:
    """An absolute path into System32, so no folder on PATH can supply the tool."""
    return str(Path(os.environ.get("SystemRoot") or r"C:\Windows") / "System32" / name)


def acl_commands(state_dir: Path) -> list[list[str]]:
    """icacls calls that make ``state_dir`` owned by Administrators, readable only by SYSTEM and Administrators."""
    icacls = _system_tool("icacls.exe")
    return [
        [icacls, str(state_dir), "/setowner", SID_ADMINISTRATORS, "/T", "/C", "/Q"],
        [icacls, str(state_dir), "/inheritance:r", "/grant:r", f"{SID_SYSTEM}:(OI)(CI)F",
         f"{SID_ADMINISTRATORS}:(OI)(CI)F", "/T", "/C", "/Q"],
    ]


def task_xml(*, python_exe: Path, config: Path) -> str:
    """The Task Scheduler 1.2 definition: every 5 minutes and at boot, as SYSTEM, never two at once."""
    arguments = f'-I -B -m agent --once --config "{config}" --splay {SPLAY_SECONDS}'
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo><Description>Sends an inventory snapshot to the Relevo server.</Description></RegistrationInfo>
  <Triggers>
    <TimeTrigger>
      <Repetition><Interval>PT{INTERVAL_MINUTES}M</Interval><StopAtDurationEnd>false</StopAtDurationEnd></Repetition>
      <StartBoundary>2000-01-01T00:00:00</StartBoundary>
      <Enabled>true</Enabled>
    </TimeTrigger>
    <BootTrigger><Enabled>true</Enabled><Delay>PT1M</Delay></BootTrigger>
  </Triggers>
  <Principals>
    <Principal id="System"><UserId>S-1-5-18</UserId><RunLevel>HighestAvailable</RunLevel></Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <ExecutionTimeLimit>PT10M</ExecutionTimeLimit>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="System">
    <Exec><Command>{escape(str(python_exe))}</Command><Arguments>{escape(arguments)}</Arguments></Exec>
  </Actions>
</Task>
"""


def _log(message: str) -> None:
    """Append to ``setup.log`` in the state folder (the MSI shows a custom action's output nowhere)."""
    state_dir = default_state_dir()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with open(state_dir / SETUP_LOG, "a", encoding="utf-8") as log:
            log.write(message.rstrip() + "\n")
    except OSError:
        pass
    if sys.stderr is not None:  # None under pythonw.exe
        print(message, file=sys.stderr)


def _run(argv: Sequence[str]) -> int:
    # Explicit pipes: under pythonw.exe in a custom action there are no standard handles to inherit.
    result = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=120)
    output = result.stdout.decode("utf-8", "replace").strip()
    _log(f"ran {subprocess.list2cmdline(argv)}: exit {result.returncode}" + (f"\n{output}" if output else ""))
    return result.returncode


def settings_values(*, server: str, enroll_secret: str, token: str) -> dict[str, str]:
    """Validate the MSI's public properties and map them to the settings file's keys."""
    server, enroll_secret, token = server.strip(), enroll_secret.strip(), token.strip()
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("SERVER must be an http(s) URL such as https://relevo.example")
    if not (enroll_secret or token):
        raise ConfigError("give ENROLL_SECRET=... or TOKEN=... with SERVER=...")
    return {"INVENTORY_SERVER": server, "INVENTORY_ENROLL_SECRET": enroll_secret, "INVENTORY_TOKEN": token}


def install(*, server: str, enroll_secret: str, token: str, state_dir: Path, python_exe: Path,
            run: Runner = _run) -> int:
    """Lock the state folder, write the settings, register the task; 0 on success."""
    config = state_dir / CONFIG_NAME
    values = settings_values(server=server, enroll_secret=enroll_secret, token=token) if server.strip() else None
    if values is None and not config.is_file():
        raise ConfigError("no SERVER given: msiexec /i relevo-agent.msi SERVER=https://... ENROLL_SECRET=...")
    # is_junction: Python 3.12+ (the bundled 3.13 has it; this machine's test Python may not).
    if state_dir.is_symlink() or getattr(state_dir, "is_junction", lambda: False)():
        # Someone pointed the folder elsewhere before us: never follow it with SYSTEM's rights.
        raise ConfigError(f"{state_dir} is a link or junction: remove it and install again")
    state_dir.mkdir(parents=True, exist_ok=True)
    for command in acl_commands(state_dir):
        if run(command) != 0:
            _log(f"error: could not restrict {state_dir} to SYSTEM and Administrators")
            return 1
    if values is not None:
        write_atomic(config, config_render(values).encode("utf-8"))
    else:
        config_read(config)  # a repair keeps the file, but only a valid one
    xml_path = state_dir / "task.xml"
    write_atomic(xml_path, task_xml(python_exe=python_exe, config=config).encode("utf-16"))
    try:
        status = run([_system_tool("schtasks.exe"), "/Create", "/TN", TASK_NAME, "/XML", str(xml_path), "/F"])
    finally:
        xml_path.unlink(missing_ok=True)
    if status != 0:
        _log(f"error: schtasks could not register the task {TASK_NAME!r}")
        return 1
    _log(f"installed: settings in {config}, task {TASK_NAME!r} every {INTERVAL_MINUTES} min as SYSTEM")
    return 0


def uninstall(*, state_dir: Path, install_dir: Path | None = None, run: Runner = _run) -> int:
    """Remove the task, the state folder and any bytecode a hand run left; best effort, never blocking."""
    run([_system_tool("schtasks.exe"), "/Delete", "/TN", TASK_NAME, "/F"])
    shutil.rmtree(state_dir, ignore_errors=True)
    if install_dir is not None:
        # The MSI removes only the files it installed; a run without -B may have added __pycache__.
        for cache in sorted(install_dir.rglob("__pycache__"), reverse=True):
            shutil.rmtree(cache, ignore_errors=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.windows_setup")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("install")
    add.add_argument("--server", default="")
    add.add_argument("--enroll-secret", default="")
    add.add_argument("--token", default="")
    sub.add_parser("uninstall")
    args = parser.parse_args(argv)
    state_dir = default_state_dir()
    if args.action == "uninstall":
        # sys.executable is <install dir>\\python\\pythonw.exe
        return uninstall(state_dir=state_dir, install_dir=Path(sys.executable).resolve().parent.parent)
    try:
        return install(server=args.server, enroll_secret=args.enroll_secret, token=args.token,
                       state_dir=state_dir, python_exe=Path(sys.executable).with_name("python.exe"))
    except ConfigError as exc:
        _log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
