"""The local, git-ignored ``.env`` file.

``make run`` and ``make test`` create it with a freshly generated secret key so
that ``python manage.py runserver`` works by hand on a developer's machine
without exporting anything. Production sets real environment variables
instead; a variable already in the environment always wins over the file.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def load(path: Path) -> None:
    """Put ``KEY=VALUE`` lines of *path* into ``os.environ`` unless already set."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(key.strip(), value)


def set_value(path: Path, key: str, value: str) -> None:
    """Add or replace one ``KEY=VALUE`` line, keeping the file private (0600)."""
    lines = []
    if path.exists():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith(f"{key}=")]
    lines.append(f"{key}={value}")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def create(path: Path) -> None:
    """Write a development ``.env`` with a new secret key if there is none yet."""
    if path.exists():
        return
    set_value(path, "DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    set_value(path, "DJANGO_DEBUG", "false")
    set_value(path, "DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
    print(f"wrote {path} with a new local secret key (git-ignored)")


if __name__ == "__main__":
    create(Path(sys.argv[1] if len(sys.argv) > 1 else ".env"))
