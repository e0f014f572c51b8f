"""One run's configuration: built once from the arguments, the environment and the settings file.

:func:`config_build` turns argparse's namespace into a frozen
:class:`AgentConfig` and checks it, so the rest of the agent reads settings
that cannot change under it and never sees argparse. Precedence: flags, then
the environment, then the ``--config`` file, so an operator's one-off
override needs no edit of the file. What a run learns later (a token from
enrollment) is state the running agent holds, never written back here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from .config_file import config_read
from .redact import cmdline_redact
from .state import default_state_dir


class UsageError(ValueError):
    """The options, environment or settings file do not make a runnable agent (exit code 2)."""


@dataclass(frozen=True)
class AgentConfig:
    """What one run of the agent was asked to do; see ``docs/agent.md`` for each option.

    ``token`` is the one the operator gave (flag, environment, token file or
    settings file); ``None`` means "use the kept enrolled token, or enroll".
    """

    server: str | None
    token: str | None
    enroll_secret: str | None
    state_dir: Path
    spool_dir: Path
    interval: float | None
    splay: float
    dry_run: bool
    include_cmdline: bool
    ca_bundle: str | None
    retries: int
    timeout: float
    sample_seconds: float

    @property
    def connect_timeout(self) -> float:
        """Connecting is quick or hopeless: at most 5 s, and never longer than the read timeout."""
        return min(5.0, self.timeout)


def config_build(args: argparse.Namespace, env: Mapping[str, str]) -> AgentConfig:
    """The checked configuration; raise :class:`UsageError` (or the settings file's ``ConfigError``)."""
    settings_file = args.config or env.get("INVENTORY_CONFIG")
    if settings_file:
        env = {**config_read(Path(settings_file)), **env}
    state_dir = args.state_dir or default_state_dir(env=env)
    config = AgentConfig(
        server=args.server or env.get("INVENTORY_SERVER"),
        token=_token(args, env),
        enroll_secret=args.enroll_secret or env.get("INVENTORY_ENROLL_SECRET"),
        state_dir=state_dir,
        spool_dir=args.spool_dir or state_dir / "spool",
        interval=args.interval,
        splay=args.splay,
        dry_run=args.dry_run,
        include_cmdline=not args.no_cmdline,
        ca_bundle=args.ca_bundle,
        retries=args.retries,
        timeout=args.timeout,
        sample_seconds=args.sample_seconds,
    )
    _check(config)
    return config


def _token(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """The operator's token: ``--token``, then ``--token-file``, then the environment's token or token file."""
    if args.token:
        return args.token
    token_file = args.token_file or (None if env.get("INVENTORY_TOKEN") else env.get("INVENTORY_TOKEN_FILE"))
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the token file {token_file}: {exc.strerror}") from None
        if token:
            return token
    return env.get("INVENTORY_TOKEN") or None


def _check(config: AgentConfig) -> None:
    if config.interval is not None and config.interval <= 0:
        raise UsageError("--interval must be a positive number of seconds")
    if config.retries < 1:
        raise UsageError("--retries must be at least 1")
    if config.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if config.sample_seconds < 0:
        raise UsageError("--sample-seconds must not be negative")
    if config.splay < 0:
        raise UsageError("--splay must not be negative")
    if config.dry_run:
        return
    if not config.server:
        raise UsageError("no server: pass --server URL or set INVENTORY_SERVER")
    parts = urlsplit(config.server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--server must be an http(s) URL, got {cmdline_redact([config.server])[0]!r}")
    if config.ca_bundle and not Path(config.ca_bundle).is_file():
        raise UsageError(f"--ca-bundle {config.ca_bundle!r} is not a file")

