"""The agent's settings file: ``KEY=VALUE`` lines, the format of Linux's ``agent.env``.

On Windows the MSI writes ``%ProgramData%\\Relevo\\agent.conf`` (readable only
by SYSTEM and Administrators) and the Scheduled Task passes it with
``--config``, so the server address and the secret never appear in the task
definition or on a command line. Only the ``INVENTORY_*`` settings the agent
knows are accepted: a misspelt key is an error, not a silently ignored line.
"""

from __future__ import annotations

from pathlib import Path

KNOWN_KEYS = frozenset({"INVENTORY_SERVER", "INVENTORY_TOKEN", "INVENTORY_TOKEN_FILE", "INVENTORY_ENROLL_SECRET"})


class ConfigError(ValueError):
    """The settings file cannot be read or has a line the agent does not understand."""


def config_parse(text: str, *, source: str = "settings file") -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines; ``#`` starts a comment line; one pair of surrounding quotes is removed."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in KNOWN_KEYS:
            raise ConfigError(f"{source}, line {number}: expected one of {', '.join(sorted(KNOWN_KEYS))} as KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def config_read(path: Path) -> dict[str, str]:
    """Read and parse the settings file; empty values are left out (an empty TOKEN= means none)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read the settings file {path}: {exc.strerror}") from None
    return {key: value for key, value in config_parse(text, source=str(path)).items() if value}


def config_render(values: dict[str, str]) -> str:
    """The file's text for ``values`` (keys in a stable order, empty values left out)."""
    lines = ["# Relevo agent settings (written by the installer). Readable only by SYSTEM and Administrators."]
    for key in sorted(values):
        if key not in KNOWN_KEYS:
            raise ConfigError(f"unknown setting {key}")
        value = values[key]
        if value:
            if any(c in value for c in "\r\n"):
                raise ConfigError(f"{key} must be on one line")
            lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"
