"""The Linux packages of the agent: what `make packages-linux` builds, read back with dpkg-deb, lintian and rpm.

Installing the .deb on a booted Debian and delivering from it is
``reports/tests/test_booted_debian.py``; here the .rpm is installed with
``rpm --root`` into a scratch root (``--nodeps --noscripts``: the scratch root
has no shell or systemctl for the scriptlets, and no Python to satisfy them).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent import __version__
from relevo_testing.prerequisites import require

pytestmark = [pytest.mark.slow, pytest.mark.backend_free]
ROOT = Path(__file__).resolve().parents[2]
FILES = {
    "usr/bin/relevo-agent", "usr/lib/relevo-agent/agent/__init__.py", "usr/lib/relevo-agent/agent/run_agent.py",
    "usr/lib/relevo-agent/agent/collector.py", "usr/lib/relevo-agent/agent/sender.py",
    "etc/relevo-agent/agent.env", "usr/share/man/man1/relevo-agent.1.gz", "usr/share/doc/relevo-agent/copyright",
}
UNITS = ("relevo-agent.service", "relevo-agent-once.service", "relevo-agent.timer")


def _run(*args: str, **kwargs) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    for tool in ("dpkg-deb", "rpmbuild", "rpm"):
        require(shutil.which(tool) is not None, f"{tool} is missing: apt-get install dpkg-dev rpm")
    work = tmp_path_factory.mktemp("packages")
    out = _run("bash", str(ROOT / "scripts/packages/build-linux.sh"), str(work / "dist"), cwd=ROOT,
               env={**os.environ, "WORK": str(work / "stage"), "PYTHON": sys.executable})
    print(out)
    return work / "dist"


def test_the_packages_are_named_by_the_agents_version_with_a_checksum_each(dist):
    names = sorted(p.name for p in dist.iterdir())
    deb, rpm = f"relevo-agent_{__version__}_all.deb", f"relevo-agent-{__version__}.noarch.rpm"
    assert names == sorted([deb, f"{deb}.sha256", rpm, f"{rpm}.sha256"])
    for artifact in (deb, rpm):
        digest, name = (dist / f"{artifact}.sha256").read_text().split()
        assert name == artifact and digest == hashlib.sha256((dist / artifact).read_bytes()).hexdigest()
    _run("sha256sum", "-c", f"{deb}.sha256", f"{rpm}.sha256", cwd=dist)


def test_the_deb_declares_its_dependencies_and_keeps_the_settings_private(dist, tmp_path):
    deb = dist / f"relevo-agent_{__version__}_all.deb"
    fields = _run("dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture", "Depends")
    assert f"Version: {__version__}" in fields and "Architecture: all" in fields
    depends = fields.split("Depends:", 1)[1]
    for needed in ("python3 (>= 3.11)", "python3-psutil", "python3-requests"):
        assert needed in depends
    listing = _run("dpkg-deb", "-c", str(deb))
    assert "-rw------- root/root" in next(line for line in listing.splitlines() if "agent.env" in line)
    assert "-rwxr-xr-x root/root" in next(line for line in listing.splitlines() if "usr/bin/relevo-agent" in line)
    _run("dpkg-deb", "-R", str(deb), str(tmp_path / "x"))
    extracted = tmp_path / "x"
    assert (extracted / "DEBIAN/conffiles").read_text().split() == ["/etc/relevo-agent/agent.env"]
    assert FILES <= {str(p.relative_to(extracted)) for p in extracted.rglob("*") if p.is_file()}
    for unit in UNITS:
        text = (extracted / "lib/systemd/system" / unit).read_text()
        assert "/opt/relevo-agent" not in text
        assert unit.endswith(".timer") or "ProtectSystem=strict" in text
    once = (extracted / "lib/systemd/system/relevo-agent-once.service").read_text()
    assert "ExecStart=/usr/bin/relevo-agent --once" in once
    assert (extracted / "usr/bin/relevo-agent").read_text().startswith("#!/usr/bin/python3 -I\n")
    postinst = (extracted / "DEBIAN/postinst").read_text()
    assert "deb-systemd-helper enable 'relevo-agent.timer'" in postinst and "[ -d /run/systemd/system ]" in postinst
    assert "rm -rf /var/lib/relevo-agent" in (extracted / "DEBIAN/postrm").read_text()


def test_lintian_passes_the_deb(dist):
    require(shutil.which("lintian") is not None, "lintian is missing: apt-get install lintian")
    deb = dist / f"relevo-agent_{__version__}_all.deb"
    result = subprocess.run(["lintian", "--pedantic", "--display-info", "--fail-on", "error,warning,info,pedantic",
                             str(deb)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout  # every override is in scripts/packages/deb/lintian-overrides


def test_lintian_does_fail_on_a_broken_deb(dist, tmp_path):
    """The lintian test above can fail: the same package with its settings world-readable and no copyright."""
    require(shutil.which("lintian") is not None, "lintian is missing: apt-get install lintian")
    tree = tmp_path / "tree"
    _run("dpkg-deb", "-R", str(dist / f"relevo-agent_{__version__}_all.deb"), str(tree))
    (tree / "usr/share/doc/relevo-agent/copyright").unlink()
    (tree / "usr/share/lintian/overrides/relevo-agent").unlink()
    _run("dpkg-deb", "--root-owner-group", "--build", str(tree), str(tmp_path / "broken.deb"))
    result = subprocess.run(["lintian", "--fail-on", "error,warning", str(tmp_path / "broken.deb")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "no-copyright-file" in result.stdout


def test_the_rpm_lists_the_same_layout_and_requirements(dist):
    rpm = dist / f"relevo-agent-{__version__}.noarch.rpm"
    listing = set(_run("rpm", "-qpl", str(rpm)).split())
    assert {f"/{f}" for f in FILES} <= listing
    assert {f"/usr/lib/systemd/system/{unit}" for unit in UNITS} <= listing
    requires = _run("rpm", "-qpR", str(rpm)).splitlines()
    for needed in ("python3 >= 3.11", "python3-psutil", "python3-requests"):
        assert needed in requires
    assert _run("rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}", str(rpm)) == f"relevo-agent {__version__} noarch"
    config = _run("rpm", "-qpc", str(rpm)).split()
    assert config == ["/etc/relevo-agent/agent.env"]
    scripts = _run("rpm", "-qp", "--scripts", str(rpm))
    assert "systemctl enable relevo-agent.timer" in scripts and "disable --now relevo-agent.timer" in scripts


def test_the_rpm_installs_into_a_scratch_root_and_erases_cleanly(dist, tmp_path):
    rpm = dist / f"relevo-agent-{__version__}.noarch.rpm"
    scratch = tmp_path / "root"
    scratch.mkdir()
    _run("rpm", "--root", str(scratch), "--initdb")
    _run("rpm", "--root", str(scratch), "-i", "--nodeps", "--noscripts", str(rpm))
    assert oct((scratch / "etc/relevo-agent/agent.env").stat().st_mode & 0o777) == "0o600"
    assert os.access(scratch / "usr/bin/relevo-agent", os.X_OK)
    assert (scratch / "usr/lib/systemd/system/relevo-agent.timer").exists()
    assert _run("rpm", "--root", str(scratch), "-q", "relevo-agent").strip() == f"relevo-agent-{__version__}-1.noarch"
    _run("rpm", "--root", str(scratch), "-V", "--nodeps", "relevo-agent")  # every file as packaged
    _run("rpm", "--root", str(scratch), "-e", "--noscripts", "relevo-agent")
    assert not (scratch / "usr/lib/relevo-agent").exists() and not (scratch / "usr/bin/relevo-agent").exists()
