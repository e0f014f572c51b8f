"""The agent packages this server offers on its "Add hosts" page.

The only module that reads ``settings.INVENTORY_PACKAGES_DIR`` (``make
packages`` fills ``<repo>/dist``). Only files whose names have the shape of
our artifacts are listed or served, and a download is looked up by exact name
in the folder's listing, so no request can name a path. Each package's
SHA-256 comes from the ``<name>.sha256`` file beside it (written by the
builder); it is computed when that file is missing or malformed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

# kind -> the artifact names of relevo_packaging (Windows) and packages-linux (.deb, .rpm).
PATTERNS = {
    "msi": re.compile(r"relevo-agent-(?P<version>\d+\.\d+\.\d+)-x64\.msi"),
    "zip": re.compile(r"relevo-agent-(?P<version>\d+\.\d+\.\d+)-windows-amd64\.zip"),
    "deb": re.compile(r"relevo-agent_(?P<version>\d+\.\d+\.\d+)(?:-\d+)?_all\.deb"),
    "rpm": re.compile(r"relevo-agent-(?P<version>\d+\.\d+\.\d+)(?:-\d+)?(?:\.[a-z0-9_]+)*\.noarch\.rpm"),
}
_SHA256_LINE = re.compile(r"([0-9a-f]{64})\s+\*?(\S+)\s*")


@dataclass(frozen=True)
class AgentPackage:
    name: str
    kind: str
    version: str
    size_bytes: int
    sha256: str


def _kind(name: str) -> tuple[str, str] | None:
    for kind, pattern in PATTERNS.items():
        match = pattern.fullmatch(name)
        if match:
            return kind, match.group("version")
    return None


def _sha256(path: Path) -> str:
    sidecar = path.with_name(path.name + ".sha256")
    try:
        match = _SHA256_LINE.fullmatch(sidecar.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError):
        match = None
    if match and match.group(2) == path.name:
        return match.group(1)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _folder() -> Path:
    return Path(settings.INVENTORY_PACKAGES_DIR)


def package_list() -> list[AgentPackage]:
    """The packages in the folder, newest version first within each kind; [] when there is no folder."""
    try:
        entries = sorted(p for p in _folder().iterdir() if p.is_file() and not p.is_symlink())
    except OSError:
        return []
    packages = []
    for path in entries:
        known = _kind(path.name)
        if known:
            packages.append(AgentPackage(name=path.name, kind=known[0], version=known[1],
                                         size_bytes=path.stat().st_size, sha256=_sha256(path)))
    packages.sort(key=lambda p: (list(PATTERNS).index(p.kind), [-int(x) for x in p.version.split(".")]))
    return packages


def package_path(name: str) -> Path | None:
    """The file for ``name`` if it is one of the listed packages, else None (never a path built from input)."""
    if _kind(name) is None:
        return None
    try:
        for path in _folder().iterdir():
            if path.name == name and path.is_file() and not path.is_symlink():
                return path
    except OSError:
        return None
    return None


def package_newest(packages: list[AgentPackage]) -> dict[str, AgentPackage]:
    """The newest package of each kind."""
    newest: dict[str, AgentPackage] = {}
    for package in packages:
        newest.setdefault(package.kind, package)
    return newest


def package_open(name: str):
    """The open file of package ``name`` for a download, or None."""
    path = package_path(name)
    return path.open("rb") if path is not None else None
