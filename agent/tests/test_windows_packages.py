"""The Windows packages, installed and run as an administrator would, under Wine.

``make test-windows`` (``pytest -m windows``). Builds the zip and the MSI with
``relevo_packaging.windows`` (cached under build/packages/ by the hash of their
inputs), then:

- MSI: ``msiexec /i ... /qn SERVER=... ENROLL_SECRET=...`` into a FRESH Wine
  prefix with no other Python; the installed agent, run from Program Files with
  its bundled interpreter exactly as the Scheduled Task runs it, enrolls and
  delivers a snapshot to a live Relevo server; ``msiexec /x`` removes it all.
- zip: unzipped into a prefix folder, ``relevo-agent.cmd`` delivers to a live server.

What Wine cannot show (its icacls is a stub that changes nothing; its Task
Scheduler keeps a task's name and settings but drops triggers, actions and
principal, and runs nothing) is checked as far as it goes: the exact icacls
calls that ran (setup.log), that a task of that name was registered and is
removed, and the task definition itself in test_windows_setup.py.
Under CI=true a missing Wine, wixl or msitools fails these tests.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests

from agent import windows_setup
from relevo_packaging import windows as packages

from .prerequisites import require
from .windows.build_env import WINE_ENV, WindowsEnv, build_env, find_wine, to_windows_path

pytestmark = [pytest.mark.windows, pytest.mark.backend_free]

SECRET = "fleet-enroll-secret-for-the-msi-0123456789"
TIMEOUT = 300
DIST = packages.REPO / "build" / "packages" / "test-dist"


@pytest.fixture(scope="module")
def artifacts() -> dict[str, Path]:
    require(find_wine() is not None, "Wine is not installed: apt-get install -y wine64")
    require(shutil.which("wixl") and shutil.which("msibuild"), "wixl/msitools are not installed: "
            "apt-get install -y wixl msitools")
    try:
        built = packages.build(DIST)
    except (subprocess.SubprocessError, OSError) as exc:
        require(False, f"could not build the Windows packages: {exc}")
    return {path.suffix: path for path in built}


def _wine(prefix: Path, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    # Pipes, not files, for the standard handles: Wine 8 hands CPython an invalid
    # handle for a regular file, and it then dies in init_sys_streams.
    return subprocess.run([find_wine(), *args], env={**os.environ, **WINE_ENV, "WINEPREFIX": str(prefix)},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                          timeout=timeout)


def _stored(server) -> list[dict]:
    answer = requests.get(f"{server.url}/query", params={"ip": "127.0.0.1"},
                          headers={"Authorization": f"Token {server.reader_token}"}, timeout=10)
    return answer.json()["snapshots"] if answer.status_code == 200 else []


def test_each_artifact_has_its_sha256_and_the_version(artifacts):
    version = packages.version()
    assert artifacts[".zip"].name == f"relevo-agent-{version}-windows-amd64.zip"
    assert artifacts[".msi"].name == f"relevo-agent-{version}-x64.msi"
    for artifact in artifacts.values():
        check = subprocess.run(["sha256sum", "-c", artifact.name + ".sha256"], cwd=artifact.parent,
                               capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout.strip() == f"{artifact.name}: OK", check.stdout


def test_msi_tables_run_setup_as_system_after_the_files_and_hide_the_secret(artifacts):
    msi = artifacts[".msi"]
    actions = {row.split("\t")[0]: row.split("\t") for row in
               subprocess.run(["msiinfo", "export", str(msi), "CustomAction"], capture_output=True, text=True,
                              check=True).stdout.splitlines()[3:]}
    sequence = {row.split("\t")[0]: row.split("\t") for row in
                subprocess.run(["msiinfo", "export", str(msi), "InstallExecuteSequence"], capture_output=True,
                               text=True, check=True).stdout.splitlines()[3:]}
    configure_type = int(actions["RelevoConfigure"][1])
    assert configure_type & 0x3F == 50 and configure_type & 1024 and configure_type & 2048 and configure_type & 8192
    assert int(actions["RelevoUnconfigure"][1]) & 2048
    assert "[INSTALLDIR]python\\pythonw.exe" in actions["RelevoConfigure"][3]
    seq = {name: int(row[2]) for name, row in sequence.items()}
    assert seq["InstallInitialize"] < seq["InstallFiles"] < seq["RelevoConfigure"] < seq["InstallFinalize"]
    assert seq["InstallInitialize"] < seq["RelevoUnconfigure"] < seq["RemoveFiles"]
    assert seq["CostFinalize"] < seq["SetCmdExe"] < seq["InstallInitialize"]
    properties = subprocess.run(["msiinfo", "export", str(msi), "Property"], capture_output=True, text=True,
                                check=True).stdout
    assert "MsiHiddenProperties\tENROLL_SECRET;TOKEN" in properties
    assert "SERVER;ENROLL_SECRET;TOKEN" in properties  # SecureCustomProperties


@pytest.fixture
def fresh_prefix(tmp_path) -> Path:
    prefix = tmp_path / "prefix"
    boot = _wine(prefix, "wineboot", "-i")
    assert boot.returncode == 0, boot.stderr
    return prefix


def test_msi_installs_enrolls_delivers_and_uninstalls(artifacts, fresh_prefix, relevo_server_factory):
    server = relevo_server_factory(extra_env={"INVENTORY_ENROLL_SECRET": SECRET})
    drive = fresh_prefix / "drive_c"
    assert not [p for p in drive.rglob("python*.exe")], "the fresh prefix must have no Python of its own"

    install = _wine(fresh_prefix, "msiexec", "/i", to_windows_path(artifacts[".msi"]), "/qn",
                    f"SERVER={server.url}", f"ENROLL_SECRET={SECRET}")
    assert install.returncode == 0, install.stderr[-2000:]

    home = drive / "Program Files" / "Relevo Agent"
    state = drive / "ProgramData" / "Relevo"
    assert (home / "python" / "python.exe").is_file() and (home / "relevo-agent.cmd").is_file()
    assert (home / "python" / "app" / "agent" / "__main__.py").is_file()
    config = (state / "agent.conf").read_text()
    assert f"INVENTORY_SERVER={server.url}\n" in config and f"INVENTORY_ENROLL_SECRET={SECRET}\n" in config
    assert "INVENTORY_TOKEN" not in config
    log = (state / "setup.log").read_text()
    print(log)
    # Wine's icacls is a stub: this proves the calls made and their success, not the resulting ACL.
    assert "icacls.exe C:\\ProgramData\\Relevo /setowner *S-1-5-32-544 /T /C /Q: exit 0" in log
    assert ("/inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F /T /C /Q: exit 0") in log
    assert 'schtasks.exe /Create /TN "Relevo Agent" /XML C:\\ProgramData\\Relevo\\task.xml /F: exit 0' in log
    assert (drive / "windows" / "system32" / "tasks" / "Relevo Agent").is_file()
    assert not (state / "task.xml").exists()

    # Run what the task runs (Wine's scheduler keeps no action, so take it from the definition).
    definition = ElementTree.fromstring(windows_setup.task_xml(
        python_exe=Path(r"C:\Program Files\Relevo Agent\python\python.exe"),
        config=Path(r"C:\ProgramData\Relevo\agent.conf")).encode("utf-16"))
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    command = definition.find("t:Actions/t:Exec/t:Command", ns).text
    arguments = definition.find("t:Actions/t:Exec/t:Arguments", ns).text
    assert command == r"C:\Program Files\Relevo Agent\python\python.exe"
    run = _wine(fresh_prefix, command, *shlex.split(arguments.replace("--splay 60", "--splay 1")))
    print(run.stderr)
    assert run.returncode == 0, run.stderr  # ExitStatus.DELIVERED
    assert SECRET not in run.stderr
    [stored] = _stored(server)
    assert stored["os"]["name"] == "Windows"
    assert (state / "token").is_file()

    uninstall = _wine(fresh_prefix, "msiexec", "/x", to_windows_path(artifacts[".msi"]), "/qn")
    assert uninstall.returncode == 0, uninstall.stderr[-2000:]
    assert not home.exists(), sorted(str(p) for p in home.rglob("*"))[:20]
    assert not state.exists()
    assert not (drive / "windows" / "system32" / "tasks" / "Relevo Agent").exists()


@pytest.fixture(scope="module")
def shared_prefix(artifacts) -> WindowsEnv:
    try:
        return build_env()
    except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
        require(False, f"could not build the Wine prefix: {exc}")


def test_zip_unzips_and_the_launcher_delivers(artifacts, shared_prefix, live_relevo, tmp_path):
    target = shared_prefix.prefix / "drive_c" / f"relevo-zip-{tmp_path.name}"
    try:
        with zipfile.ZipFile(artifacts[".zip"]) as archive:
            archive.extractall(target)
        launcher = f"C:\\{target.name}\\relevo-agent.cmd"
        version = _wine(shared_prefix.prefix, "cmd", "/c", launcher, "--version")
        assert version.stdout.strip() == f"relevo-agent {packages.version()}", version.stderr
        run = _wine(shared_prefix.prefix, "cmd", "/c", launcher, "--once", "--server", live_relevo.url,
                    "--token", live_relevo.agent_token, "--state-dir", to_windows_path(tmp_path / "state"),
                    "--sample-seconds", "0")
        print(run.stderr)
        assert run.returncode == 0, run.stderr
        [stored] = _stored(live_relevo)
        assert stored["os"]["name"] == "Windows"
    finally:
        shutil.rmtree(target, ignore_errors=True)
