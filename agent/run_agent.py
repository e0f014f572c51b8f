"""Command line of the agent: collect, send, spool, and report with an exit code.

httpie's shape: ``main(argv=None, env=None) -> int`` turns the arguments and
the environment into one frozen :class:`~agent.config.AgentConfig`, maps
errors and Ctrl-C to exit codes and never calls ``sys.exit``, so tests call it
with their own argv and environment; :func:`program` does the work. Each run
sends the fresh snapshot first, then delivers the spool oldest first; whatever
cannot be delivered is spooled, and a snapshot the server refuses as malformed
is set aside so it never loops.
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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import __version__
from . import enroll
from .config import AgentConfig, UsageError, config_build
from .config_file import ConfigError
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
from .state import software_state_load

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
    INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The CLI definition; environment and settings-file fallbacks are applied by :func:`config_build`."""
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


@dataclass(frozen=True)
class Token:
    """The token a run sends with, and whether an enrollment gave it (so a refusal may be cured by enrolling)."""

    value: str
    enrolled: bool


def token_initial(config: AgentConfig) -> Token | None:
    """The operator's token, else the one an earlier enrollment kept; ``None``: enroll before the first send."""
    if config.token:
        return Token(config.token, enrolled=False)
    kept = enroll.token_load(config.state_dir)
    if kept:
        return Token(kept, enrolled=True)
    if not config.enroll_secret:
        raise UsageError("no token: pass --token TOKEN (or set INVENTORY_TOKEN), or --enroll-secret SECRET to enroll")
    return None


def _encode(snapshot: dict[str, Any]) -> bytes:
    raw = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=6)


class Agent:
    """One configured agent: collects, delivers and drains its spool.

    It holds the run's state that configuration cannot know in advance: the
    current :class:`Token` (replaced when the agent enrolls) and the
    :class:`Sender` that uses it. Use it as a context manager so the
    connection pool is released.
    """

    def __init__(self, config: AgentConfig, *, token: Token | None, stop: threading.Event) -> None:
        self.config = config
        self.stop = stop
        self.state_dir = config.state_dir
        self.sources = Sources(state_dir=self.state_dir)
        self.spool = Spool(config.spool_dir)
        self.token: Token | None = None
        self.sender: Sender | None = None
        if token is not None:
            self._use(token)
        log.debug("server %s, token %s, state folder %s", cmdline_redact([config.server])[0],
                  mask_token(token.value) if token else "none yet (will enroll)", self.state_dir)

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the sender's connection pool."""
        if self.sender is not None:
            self.sender.close()

    def _use(self, token: Token) -> None:
        """Send with ``token`` from now on."""
        self.close()
        config = self.config
        self.token = token
        self.sender = Sender(server=config.server, token=token.value, ca_bundle=config.ca_bundle,
                             connect_timeout=config.connect_timeout, read_timeout=config.timeout,
                             policy=RetryPolicy(attempts=config.retries), wait=self.stop.wait)

    def _enroll(self, snapshot: dict[str, Any]) -> None:
        """Get a per-host token with the enroll secret, keep it, and send with it from now on."""
        config = self.config
        value = enroll.enroll(server=config.server, secret=config.enroll_secret,
                              host_id=snapshot["host"]["id"], hostname=snapshot["host"].get("hostname"),
                              ca_bundle=config.ca_bundle, timeout=(config.connect_timeout, config.timeout))
        where = enroll.token_save(self.state_dir, value)
        log.info("enrolled as host %s; token %s kept in %s", snapshot["host"]["id"], mask_token(value), where)
        self._use(Token(value, enrolled=True))

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
            if not (self.config.enroll_secret and self.token.enrolled):
                raise
            log.warning("the enrolled token was refused; enrolling again")
            self._enroll(snapshot)
            return self.sender.send(body)

    def run_once(self) -> ExitStatus:
        """Collect and send one snapshot, then the spool; return what happened."""
        snapshot = snapshot_collect(src=self.sources, include_cmdline=self.config.include_cmdline,
                                    sample_seconds=self.config.sample_seconds, sleep=self.stop.wait)
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


class StopRequest(threading.Event):
    """Set when the agent is asked to stop; remembers whether Ctrl-C (SIGINT) asked.

    SIGTERM is a service manager's orderly stop (exit 0 once the current step
    is done); Ctrl-C is an operator's interruption and exits 130, as a shell
    expects of an interrupted command.
    """

    interrupted = False

    def request(self, signum: int) -> None:
        if signum == signal.SIGINT:
            self.interrupted = True
        self.set()


def _install_signal_handlers(stop: StopRequest) -> dict[int, Any]:
    """Turn SIGTERM / Ctrl-C into a stop request; return the handlers to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d received, stopping after the current step", signum)
        stop.request(signum)

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


def program(config: AgentConfig, *, token: Token | None, stop: threading.Event) -> ExitStatus:
    """Do what ``config`` asks: print one snapshot (``--dry-run``), run once, or run every interval."""
    if config.dry_run:
        snapshot = snapshot_collect(src=Sources(state_dir=config.state_dir), include_cmdline=config.include_cmdline,
                                    sample_seconds=config.sample_seconds, sleep=stop.wait)
        # ASCII escapes: a Windows console or pipe (cp1252) cannot encode every process name.
        json.dump(snapshot, sys.stdout, ensure_ascii=True, indent=2)
        sys.stdout.write("\n")
        return ExitStatus.DELIVERED
    with Agent(config, token=token, stop=stop) as agent:
        if config.interval is not None:
            return agent.run_forever(config.interval)
        if config.splay and stop.wait(random.uniform(0, config.splay)):
            return ExitStatus.DELIVERED  # stopped before collecting: nothing was due
        return agent.run_once()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of ``python -m agent``: configuration, then :func:`program`; returns an :class:`ExitStatus`.

    Never calls ``sys.exit``, so tests pass their own ``argv`` and ``env``.
    Ctrl-C is a stop request like SIGTERM: the step under way finishes and
    whatever was not delivered is spooled, so nothing is lost; only the exit
    code (130) says the run was cut short.
    """
    env = os.environ if env is None else env
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return ExitStatus.DELIVERED if exc.code == 0 else ExitStatus.USAGE
    _configure_logging(args.verbose)
    stop = StopRequest()
    previous_handlers = _install_signal_handlers(stop)
    try:
        try:
            config = config_build(args, env)
            token = None if config.dry_run else token_initial(config)
        except (ConfigError, UsageError) as exc:
            parser.print_usage(sys.stderr)
            print(f"error: {exc}", file=sys.stderr)
            return ExitStatus.USAGE
        status = program(config, token=token, stop=stop)
    except KeyboardInterrupt:
        # Raised only where our SIGINT handler is not in charge (main() off the main thread, an embedder's handler).
        stop.interrupted = True
    except Exception:
        log.exception("unexpected failure")
        return ExitStatus.ERROR
    finally:
        for signum, previous in previous_handlers.items():
            signal.signal(signum, previous)
    if stop.interrupted:
        log.warning("interrupted (Ctrl-C); whatever was not delivered waits in the spool")
        return ExitStatus.INTERRUPTED
    return status
