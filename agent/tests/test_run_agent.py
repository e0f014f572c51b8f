"""The CLI end to end on this machine: real collection, a real local server, real spool files."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import run_agent
from agent.config import config_build
from agent.run_agent import ExitStatus, build_parser, main
from agent.spool import Spool

from .conftest import Reply, UploadServer

TOKEN = "agent-token-0123456789"
REPO = Path(__file__).resolve().parents[2]


def _run(server_url: str, tmp_path: Path, *extra: str) -> int:
    argv = ["--server", server_url, "--token", TOKEN, "--once", "--state-dir", str(tmp_path / "state"),
            "--spool-dir", str(tmp_path / "spool"), "--sample-seconds", "0", "--retries", "1", *extra]
    return main(argv, env={})


def test_dry_run_prints_the_snapshot_and_sends_nothing(upload_server, tmp_path, capsys):
    status = main(["--dry-run", "--sample-seconds", "0", "--state-dir", str(tmp_path)], env={})
    assert status == ExitStatus.DELIVERED
    snapshot = json.loads(capsys.readouterr().out)
    assert snapshot["schema_version"] == 1 and snapshot["processes"]
    assert upload_server.requests == []


def test_once_delivers_and_leaves_no_spool(upload_server, tmp_path):
    assert _run(upload_server.url, tmp_path) == ExitStatus.DELIVERED
    [snapshot] = upload_server.received
    assert snapshot["os"]["name"] == "Linux"
    assert any(p["pid"] == os.getpid() for p in snapshot["processes"])
    assert Spool(tmp_path / "spool").pending() == []


def test_environment_fallbacks(upload_server, tmp_path):
    env = {"INVENTORY_SERVER": upload_server.url, "INVENTORY_TOKEN": TOKEN}
    status = main(["--state-dir", str(tmp_path), "--sample-seconds", "0"], env=env)
    assert status == ExitStatus.DELIVERED
    assert upload_server.requests[0]["headers"]["Authorization"] == f"Token {TOKEN}"


def test_token_file(upload_server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    status = main(["--server", upload_server.url, "--token-file", str(token_file), "--state-dir", str(tmp_path),
                   "--sample-seconds", "0"], env={})
    assert status == ExitStatus.DELIVERED
    assert upload_server.requests[0]["headers"]["Authorization"] == f"Token {TOKEN}"


@pytest.mark.parametrize("argv", [
    ["--server", "http://127.0.0.1:1", "--token-file", "/nonexistent/token"],
    [],
    ["--server", "http://127.0.0.1:1"],
    ["--server", "ftp://x", "--token", "t"],
    ["--server", "http://127.0.0.1:1", "--token", "t", "--interval", "0"],
    ["--server", "http://127.0.0.1:1", "--token", "t", "--ca-bundle", "/nonexistent.pem"],
    ["--once", "--interval", "5"],
    ["--no-such-option"],
])
def test_bad_usage(argv, tmp_path, capsys):
    assert main(argv + ["--state-dir", str(tmp_path)], env={}) == ExitStatus.USAGE
    assert "usage:" in capsys.readouterr().err


def test_no_cmdline_reaches_the_server_without_command_lines(upload_server, tmp_path):
    assert _run(upload_server.url, tmp_path, "--no-cmdline") == ExitStatus.DELIVERED
    assert all(p["cmdline"] is None for p in upload_server.received[0]["processes"])


def test_server_down_then_up_delivers_every_spooled_snapshot_once(free_port, tmp_path):
    url = f"http://127.0.0.1:{free_port}"
    for _ in range(3):
        assert _run(url, tmp_path) == ExitStatus.SPOOLED
    spooled = [e.snapshot_id for e in Spool(tmp_path / "spool").pending()]
    assert len(spooled) == 3

    server = UploadServer(port=free_port)
    try:
        assert _run(url, tmp_path) == ExitStatus.DELIVERED
        fresh, *replayed = server.snapshot_ids
        assert replayed == spooled  # oldest first, after the fresh one
        assert fresh not in spooled
        assert Spool(tmp_path / "spool").pending() == []

        assert _run(url, tmp_path) == ExitStatus.DELIVERED
        ids = server.snapshot_ids
        assert len(ids) == 5 and len(set(ids)) == 5  # nothing delivered twice
    finally:
        server.close()


def test_spool_delivery_pauses_when_the_server_fails_again(upload_server, tmp_path):
    spool = Spool(tmp_path / "spool")
    for i in range(3):
        spool.put(snapshot_id=f"0000000{i}-0000-0000-0000-000000000000",
                  body_gz=gzip.compress(json.dumps({"snapshot_id": f"s{i}"}).encode()))
    upload_server.script = [Reply(201), Reply(201), Reply(503)]
    assert _run(upload_server.url, tmp_path) == ExitStatus.SPOOLED
    assert upload_server.snapshot_ids[1:] == ["s0"]
    assert len(spool.pending()) == 2


def test_401_stops_with_a_clear_message_and_keeps_the_snapshot(upload_server, tmp_path, capsys):
    upload_server.script = [Reply(401, body='{"detail": "Invalid token."}')]
    assert _run(upload_server.url, tmp_path) == ExitStatus.AUTH_REFUSED
    err = capsys.readouterr().err
    assert "refused the agent token" in err and "Invalid token." in err
    assert TOKEN not in err
    assert len(Spool(tmp_path / "spool").pending()) == 1
    assert len(upload_server.requests) == 1


def test_400_sets_the_snapshot_aside_and_never_resends_it(upload_server, tmp_path):
    upload_server.script = [Reply(400, body='{"collected_at": ["must have a UTC offset"]}')]
    assert _run(upload_server.url, tmp_path) == ExitStatus.REJECTED
    spool = Spool(tmp_path / "spool")
    [rejected] = spool.rejected()
    error = rejected.with_name(rejected.name.replace(".json.gz", ".error.txt")).read_text()
    assert "HTTP 400" in error and "must have a UTC offset" in error
    assert spool.pending() == []

    assert _run(upload_server.url, tmp_path) == ExitStatus.DELIVERED
    assert len(upload_server.requests) == 2  # the rejected one was not sent again


def test_429_with_retry_after_then_delivered(upload_server, tmp_path):
    upload_server.script = [Reply(429, headers={"Retry-After": "1"})]
    assert _run(upload_server.url, tmp_path, "--retries", "2") == ExitStatus.DELIVERED
    first, second = upload_server.requests
    assert second["at"] - first["at"] >= 1.0
    assert len(upload_server.received) == 1


def test_a_full_server_disk_spools_the_snapshot_and_a_later_run_delivers_it(upload_server, tmp_path):
    """507 storage_full asks for minutes (Retry-After 300): spool at once, never set aside."""
    upload_server.script = [Reply(507, body='{"error": "storage_full", "detail": "no room"}',
                                  headers={"Retry-After": "300"})]
    started = time.monotonic()
    assert _run(upload_server.url, tmp_path, "--retries", "4") == ExitStatus.SPOOLED
    assert time.monotonic() - started < 5
    spool = Spool(tmp_path / "spool")
    assert len(spool.pending()) == 1 and spool.rejected() == []
    assert len(upload_server.requests) == 1

    assert _run(upload_server.url, tmp_path) == ExitStatus.DELIVERED
    assert spool.pending() == [] and len(upload_server.received) == 2


def test_database_outage_503_is_retried_after_its_retry_after(upload_server, tmp_path):
    upload_server.script = [Reply(503, body='{"error": "database_unavailable"}', headers={"Retry-After": "1"})]
    assert _run(upload_server.url, tmp_path, "--retries", "2") == ExitStatus.DELIVERED
    first, second = upload_server.requests
    assert second["at"] - first["at"] >= 1.0
    assert Spool(tmp_path / "spool").pending() == []


def test_slow_server_times_out_and_the_snapshot_is_spooled(upload_server, tmp_path):
    upload_server.script = [Reply(delay=3.0)]
    started = time.monotonic()
    assert _run(upload_server.url, tmp_path, "--timeout", "0.5") == ExitStatus.SPOOLED
    assert time.monotonic() - started < 2.5
    assert len(Spool(tmp_path / "spool").pending()) == 1


@pytest.mark.parametrize(("signum", "expected"), [
    (signal.SIGTERM, ExitStatus.DELIVERED),  # a service manager's orderly stop
    (signal.SIGINT, ExitStatus.INTERRUPTED),  # Ctrl-C: 130, as a shell expects
])
def test_daemon_mode_repeats_and_stops_cleanly_on_a_signal(upload_server, tmp_path, signum, expected):
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--interval", "0.3", "--sample-seconds", "0",
         "--state-dir", str(tmp_path)],
        cwd=REPO, env={**os.environ, "INVENTORY_SERVER": upload_server.url, "INVENTORY_TOKEN": TOKEN},
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while len(upload_server.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(upload_server.received) >= 2
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == expected
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "stopping" in err and TOKEN not in err


def _spool_two(tmp_path: Path) -> Spool:
    spool = Spool(tmp_path / "spool")
    for i in range(2):
        spool.put(snapshot_id=f"0000000{i}-0000-0000-0000-000000000000",
                  body_gz=gzip.compress(json.dumps({"snapshot_id": f"s{i}"}).encode()))
    return spool


def test_ctrl_c_during_a_delivery_exits_130_and_the_spool_waits(upload_server, tmp_path):
    """The step under way finishes (the fresh snapshot is delivered); the spool is left for the next run."""
    spool = _spool_two(tmp_path)
    upload_server.script = [Reply(delay=1.5)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--once", "--sample-seconds", "0", "--retries", "1",
         "--state-dir", str(tmp_path / "state"), "--spool-dir", str(spool.directory)],
        cwd=REPO, env={**os.environ, "INVENTORY_SERVER": upload_server.url, "INVENTORY_TOKEN": TOKEN},
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not upload_server.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upload_server.requests, "the agent never sent"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == ExitStatus.INTERRUPTED
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted" in proc.stderr.read()
    assert len(upload_server.requests) == 1
    assert [e.snapshot_id for e in spool.pending()] == [f"0000000{i}-0000-0000-0000-000000000000" for i in range(2)]


def test_keyboard_interrupt_exits_130_and_reports_nothing_delivered(upload_server, tmp_path, monkeypatch, capsys):
    """Where no handler turns Ctrl-C into a stop request, KeyboardInterrupt itself reaches main()."""
    def interrupted(**_kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(run_agent, "snapshot_collect", interrupted)
    spool = _spool_two(tmp_path)
    assert _run(upload_server.url, tmp_path) == ExitStatus.INTERRUPTED == 130
    assert upload_server.requests == [] and len(spool.pending()) == 2
    assert "interrupted" in capsys.readouterr().err


def test_an_unexpected_failure_is_logged_and_exits_1(upload_server, tmp_path, monkeypatch, capsys):
    def broken(**_kwargs):
        raise RuntimeError("collector bug")
    monkeypatch.setattr(run_agent, "snapshot_collect", broken)
    assert _run(upload_server.url, tmp_path) == ExitStatus.ERROR
    err = capsys.readouterr().err
    assert "unexpected failure" in err and "collector bug" in err


def test_the_configuration_is_built_once_and_frozen(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    args = build_parser().parse_args(["--server", "https://relevo.example", "--token-file", str(token_file),
                                      "--state-dir", str(tmp_path), "--no-cmdline"])
    config = config_build(args, {"INVENTORY_TOKEN": "from-the-environment"})
    assert config.token == TOKEN and config.spool_dir == tmp_path / "spool" and not config.include_cmdline
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.token = "changed"  # type: ignore[misc]
