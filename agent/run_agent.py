"""Command line of the agent: collect, send, spool, and report with an exit code.

``main(argv=None, env=None) -> int`` never calls ``sys.exit`` itself, so tests
call it directly with their own argv and environment. Each run sends the fresh
snapshot first, then delivers the spool oldest first; whatever cannot be
delivered is spooled, and a snapshot the server refuses as malformed is set
aside so it never loops.
"""

from __future__ import annotations

import argparse
import enum
import gzip
import json
import logging
import os
import random
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from . import __version__
from . import enroll
from .config_file import ConfigError, config_read
from .collector import DEFAULT_SAMPLE_SECONDS, Sources, snapshot_collect
from .redact import cmdline_redact
from .sender import (
    AuthRefused,
    DeliveryError,
    RequestRefused,
    RetryPolicy,
    Sender,
    ServerUnavailable,
    SnapshotRejected,
    mask_token,
)
from .software_rule import software_delivered, software_trim
from .spool import Spool
from .state import default_state_dir, software_state_load

log = logging.getLogger("agent")


def _rejection_hint(exc: SnapshotRejected) -> str:
    """What an operator should know about a refusal beyond the server's own words."""
    if exc.code == "day_file_full":
        return ("; the server's day file for this host is full, so it stores no more of its snapshots for that "
                "day: not retried (raise INVENTORY_DAY_FILE_MAX_BYTES on the server to take more)")
    return ""


class ExitStatus(enum.IntEnum):
    """Exit codes a service manager or a wrapper script can act on."""

    DELIVERED = 0
    ERROR = 1
    USAGE = 2
    SPOOLED = 3
    AUTH_REFUSED = 4
    REJECTED = 5


def build_parser() -> argparse.ArgumentParser:
    """The CLI definition; environment fallbacks are applied in :func:`main`."""
    parser = argparse.ArgumentParser(
        prog="python -m agent",
        description="Collect an inventory snapshot of this host and send it to a Relevo server.",
    )
    parser.add_argument("--server", help="server base URL, e.g. https://relevo.example (env INVENTORY_SERVER)")
    parser.add_argument("--token", help="agent token (env INVENTORY_TOKEN); prefer the environment or --token-file")
    parser.add_argument("--token-file", type=Path, metavar="PATH",
                        help="read the token from a file readable only by the agent (env INVENTORY_TOKEN_FILE)")
    parser.add_argument("--enroll-secret", metavar="SECRET",
                        help="the fleet's enroll secret: without a token, enroll once and keep the per-host "
                             "token in the state folder (env INVENTORY_ENROLL_SECRET)")
    parser.add_argument("--config", type=Path, metavar="PATH",
                        help="settings file of INVENTORY_*=VALUE lines (env INVENTORY_CONFIG); flags and the "
                             "environment win over it. The Windows MSI writes %%ProgramData%%\\Relevo\\agent.conf")
    parser.add_argument("--splay", type=float, default=0.0, metavar="SECONDS",
                        help="with --once, first wait a random 0..SECONDS so a fleet started by one schedule "
                             "does not upload in step (default 0)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="collect and send once, then exit (default)")
    mode.add_argument("--interval", type=float, metavar="SECONDS",
                      help="run forever, one snapshot every SECONDS (±10%% jitter)")
    parser.add_argument("--spool-dir", type=Path, help="where undelivered snapshots wait (default: STATE_DIR/spool)")
    parser.add_argument("--state-dir", type=Path, help="state folder (default: /var/lib/relevo-agent as root, "
                        "the user's state directory otherwise, %%ProgramData%%\\Relevo on Windows)")
    parser.add_argument("--dry-run", action="store_true", help="print the snapshot as JSON on stdout, send nothing")
    parser.add_argument("--no-cmdline", action="store_true", help="do not collect process command lines at all")
    parser.add_argument("--ca-bundle", help="CA bundle (PEM) to verify the server's TLS certificate")
    parser.add_argument("--retries", type=int, default=RetryPolicy.attempts, metavar="N",
                        help="delivery attempts per snapshot before it is spooled (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="read timeout of one request (default %(default)s; connect timeout is 5 s)")
    parser.add_argument("--sample-seconds", type=float, default=DEFAULT_SAMPLE_SECONDS, help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    parser.add_argument("--version", action="version", version=f"relevo-agent {__version__}")
    return parser


class _UsageError(Exception):
    pass


def _validate(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    args.server = args.server or env.get("INVENTORY_SERVER")
    token_file = args.token_file or (None if env.get("INVENTORY_TOKEN") else env.get("INVENTORY_TOKEN_FILE"))
    if not args.token and token_file:
        try:
            args.token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _UsageError(f"cannot read the token file {token_file}: {exc.strerror}") from None
    args.token = args.token or env.get("INVENTORY_TOKEN")
    args.enroll_secret = args.enroll_secret or env.get("INVENTORY_ENROLL_SECRET")
    args.state_dir = args.state_dir or default_state_dir(env=env)
    # A token given by the operator wins; otherwise the one an earlier enrollment kept.
    args.token_enrolled = False
    if not args.token:
        args.token = enroll.token_load(args.state_dir)
        args.token_enrolled = bool(args.token)
    if args.interval is not None and args.interval <= 0:
        raise _UsageError("--interval must be a positive number of seconds")
    if args.retries < 1:
        raise _UsageError("--retries must be at least 1")
    if args.timeout <= 0:
        raise _UsageError("--timeout must be positive")
    if args.sample_seconds < 0:
        raise _UsageError("--sample-seconds must not be negative")
    if args.splay < 0:
        raise _UsageError("--splay must not be negative")
    if args.dry_run:
        return
    if not args.server:
        raise _UsageError("no server: pass --server URL or set INVENTORY_SERVER")
    if not args.token and not args.enroll_secret:
        raise _UsageError("no token: pass --token TOKEN (or set INVENTORY_TOKEN), or --enroll-secret SECRET to enroll")
    parts = urlsplit(args.server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _UsageError(f"--server must be an http(s) URL, got {cmdline_redact([args.server])[0]!r}")
    if args.ca_bundle and not Path(args.ca_bundle).is_file():
        raise _UsageError(f"--ca-bundle {args.ca_bundle!r} is not a file")


def _encode(snapshot: dict[str, Any]) -> bytes:
    raw = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=6)


class Agent:
    """One configured agent: collects, delivers and drains its spool."""

    def __init__(self, args: argparse.Namespace, *, stop: threading.Event, env: Mapping[str, str]) -> None:
        self.args = args
        self.stop = stop
        self.state_dir = args.state_dir
        self.sources = Sources(state_dir=self.state_dir)
        self.spool = Spool(args.spool_dir or self.state_dir / "spool")
        self.sender: Sender | None = self._sender(args.token) if args.token else None
        log.debug("server %s, token %s, state folder %s", cmdline_redact([args.server])[0],
                  mask_token(args.token) if args.token else "none yet (will enroll)", self.state_dir)

    def _sender(self, token: str) -> Sender:
        if getattr(self, "sender", None) is not None:
            self.sender.close()
        return Sender(server=self.args.server, token=token, ca_bundle=self.args.ca_bundle,
                      connect_timeout=min(5.0, self.args.timeout), read_timeout=self.args.timeout,
                      policy=RetryPolicy(attempts=self.args.retries), wait=self.stop.wait)

    def _enroll(self, snapshot: dict[str, Any]) -> None:
        """Get a per-host token with the enroll secret, keep it, and send with it from now on."""
        token = enroll.enroll(server=self.args.server, secret=self.args.enroll_secret,
                              host_id=snapshot["host"]["id"], hostname=snapshot["host"].get("hostname"),
                              ca_bundle=self.args.ca_bundle, timeout=(min(5.0, self.args.timeout), self.args.timeout))
        where = enroll.token_save(self.state_dir, token)
        log.info("enrolled as host %s; token %s kept in %s", snapshot["host"]["id"], mask_token(token), where)
        self.args.token, self.args.token_enrolled = token, True
        self.sender = self._sender(token)

    def _send(self, body: bytes, snapshot: dict[str, Any]) -> dict[str, Any]:
        """Send with the current token, enrolling first if there is none.

        A refused token that came from an earlier enrollment (revoked, or the
        server's database was rebuilt) is replaced by enrolling again, once.
        """
        if self.sender is None:
            self._enroll(snapshot)
        try:
            return self.sender.send(body)
        except AuthRefused:
            if not (self.args.enroll_secret and self.args.token_enrolled):
                raise
            log.warning("the enrolled token was refused; enrolling again")
            self._enroll(snapshot)
            return self.sender.send(body)

    def run_once(self) -> ExitStatus:
        """Collect and send one snapshot, then the spool; return what happened."""
        snapshot = snapshot_collect(src=self.sources, include_cmdline=not self.args.no_cmdline,
                                    sample_seconds=self.args.sample_seconds, sleep=self.stop.wait)
        snapshot_id = snapshot["snapshot_id"]
        now = datetime.now(timezone.utc)
        sent_full = software_trim(snapshot, state=software_state_load(self.state_dir), now=now)
        body = _encode(snapshot)
        log.debug("snapshot %s: %d processes, software %s, %d bytes gzip", snapshot_id, len(snapshot["processes"]),
                  "in full" if sent_full else "digest only", len(body))
        try:
            answer = self._send(body, snapshot)
        except AuthRefused as exc:
            self.spool.put(snapshot_id=snapshot_id, body_gz=body)
            log.error("%s; the snapshot is spooled, fix the token and run again", exc)
            return ExitStatus.AUTH_REFUSED
        except SnapshotRejected as exc:
            where = self.spool.set_aside(snapshot_id=snapshot_id, body_gz=body, error=str(exc))
            log.error("%s; set aside in %s%s", exc, where, _rejection_hint(exc))
            status = self.drain()
            return ExitStatus.REJECTED if status is ExitStatus.DELIVERED else status
        except (ServerUnavailable, RequestRefused) as exc:
            self.spool.put(snapshot_id=snapshot_id, body_gz=body)
            log.warning("delivery failed (%s); snapshot %s spooled in %s", exc, snapshot_id, self.spool.directory)
            return ExitStatus.SPOOLED
        log.info("snapshot %s delivered to %s", snapshot_id, self.sender.display_url)
        self._software_delivered(snapshot, sent_full=sent_full, answer=answer, now=now)
        return self.drain()

    def _software_delivered(self, snapshot: dict[str, Any], *, sent_full: bool, answer: dict[str, Any],
                            now: datetime) -> None:
        try:
            software_delivered(self.state_dir, snapshot=snapshot, sent_full=sent_full, answer=answer, now=now)
        except OSError as exc:
            # The snapshot is delivered; an unwritable state only means a full list again next run.
            log.warning("cannot keep the software state in %s: %s", self.state_dir, exc)

    def drain(self) -> ExitStatus:
        """Deliver spooled snapshots oldest first; stop at the first sign the server is unwell."""
        for entry in self.spool.pending():
            if self.stop.is_set():
                return ExitStatus.SPOOLED
            try:
                body = entry.read()
            except FileNotFoundError:
                continue  # another run delivered it meanwhile
            try:
                answer = self.sender.send(body)
            except SnapshotRejected as exc:
                where = self.spool.set_aside(snapshot_id=entry.snapshot_id, body_gz=body, error=str(exc), entry=entry)
                log.error("spooled %s; set aside in %s%s", exc, where, _rejection_hint(exc))
                continue
            except AuthRefused as exc:
                log.error("%s", exc)
                return ExitStatus.AUTH_REFUSED
            except DeliveryError as exc:
                log.warning("spool delivery paused (%s); %d snapshot(s) wait", exc, len(self.spool.pending()))
                return ExitStatus.SPOOLED
            self.spool.remove(entry)
            log.info("spooled snapshot %s delivered", entry.snapshot_id)
            if answer.get("software_wanted"):
                self._software_delivered({}, sent_full=False, answer=answer, now=datetime.now(timezone.utc))
        return ExitStatus.DELIVERED

    def run_forever(self, interval: float) -> ExitStatus:
        """Daemon mode: one run per interval ±10% until SIGTERM / Ctrl-C or a refused token."""
        rng = random.Random()
        while not self.stop.is_set():
            status = self.run_once()
            if status is ExitStatus.AUTH_REFUSED:
                return status
            # Jitter spreads a fleet started at the same moment across the interval.
            if self.stop.wait(interval * rng.uniform(0.9, 1.1)):
                break
        log.info("stopping")
        return ExitStatus.DELIVERED


def _install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    """Turn SIGTERM / Ctrl-C into a stop request; return the handlers to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d received, stopping after the current step", signum)
        stop.set()

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _configure_logging(verbose: bool) -> None:
    # A handler on our own logger, bound to the current stderr, so repeated
    # main() calls (tests, an embedding program) neither stack nor go stale.
    logger = logging.getLogger("agent")
    for old in [h for h in logger.handlers if getattr(h, "_relevo", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler._relevo = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of ``python -m agent``; returns an :class:`ExitStatus`."""
    env = os.environ if env is None else env
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return ExitStatus.DELIVERED if exc.code == 0 else ExitStatus.USAGE
    _configure_logging(args.verbose)
    try:
        config = args.config or env.get("INVENTORY_CONFIG")
        if config:
            # Flags > environment > file: an operator's one-off override needs no edit of the file.
            env = {**config_read(Path(config)), **env}
        _validate(args, env)
    except (ConfigError, _UsageError) as exc:
        parser.print_usage(sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE

    if args.dry_run:
        state_dir = args.state_dir
        snapshot = snapshot_collect(src=Sources(state_dir=state_dir), include_cmdline=not args.no_cmdline,
                                    sample_seconds=args.sample_seconds)
        # ASCII escapes: a Windows console or pipe (cp1252) cannot encode every process name.
        json.dump(snapshot, sys.stdout, ensure_ascii=True, indent=2)
        sys.stdout.write("\n")
        return ExitStatus.DELIVERED

    stop = threading.Event()
    previous_handlers = _install_signal_handlers(stop)
    agent = Agent(args, stop=stop, env=env)
    try:
        if args.interval is not None:
            return agent.run_forever(args.interval)
        if args.splay and stop.wait(random.uniform(0, args.splay)):
            return ExitStatus.DELIVERED
        return agent.run_once()
    except KeyboardInterrupt:
        return ExitStatus.DELIVERED
    finally:
        if agent.sender is not None:
            agent.sender.close()
        for signum, previous in previous_handlers.items():
            signal.signal(signum, previous)
