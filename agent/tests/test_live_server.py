"""The real agent on this Linux machine against the real server (gunicorn, via live_relevo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .prerequisites import live_server

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_agent_snapshot_is_accepted_and_stored_by_the_server(request, tmp_path):
    relevo = live_server(request)
    env = {**os.environ, "INVENTORY_SERVER": relevo.url, "INVENTORY_TOKEN": relevo.agent_token}
    result = subprocess.run([sys.executable, "-m", "agent", "--once", "--state-dir", str(tmp_path), "-v"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert relevo.agent_token not in result.stderr

    answer = requests.get(f"{relevo.url}/query", params={"ip": "127.0.0.1", "latest": "true"},
                          headers={"Authorization": f"Token {relevo.reader_token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    [stored] = answer.json()["snapshots"]
    assert stored["os"]["name"] == "Linux"
    assert stored["host"]["hostname"]
    assert any(p["name"] and "python" in p["name"] for p in stored["processes"])


def test_wrong_token_is_refused_with_its_exit_code(request, tmp_path):
    relevo = live_server(request)
    result = subprocess.run([sys.executable, "-m", "agent", "--once", "--server", relevo.url, "--token",
                             "not-a-real-token-000000", "--state-dir", str(tmp_path), "--sample-seconds", "0"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 4, result.stderr  # ExitStatus.AUTH_REFUSED
    assert "refused the agent token" in result.stderr


def test_a_full_day_file_sets_the_snapshot_aside_with_a_clear_message(request, tmp_path):
    """413 day_file_full from the real server: kept in rejected/, exit 5, never resent, and the log says why."""
    try:
        factory = request.getfixturevalue("relevo_server_factory")
    except pytest.FixtureLookupError:
        live_server(request)  # skips, or fails under CI, with the reason
        return
    relevo = factory(extra_env={"INVENTORY_DAY_FILE_MAX_BYTES": "1000"})  # smaller than any snapshot
    env = {**os.environ, "INVENTORY_SERVER": relevo.url, "INVENTORY_TOKEN": relevo.agent_token}
    command = [sys.executable, "-m", "agent", "--once", "--state-dir", str(tmp_path), "--sample-seconds", "0"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 5, result.stderr  # ExitStatus.REJECTED
    assert "day_file_full" in result.stderr and "limit of 1000 bytes" in result.stderr
    assert "day file for this host is full" in result.stderr and "not retried" in result.stderr
    [kept] = (tmp_path / "spool" / "rejected").glob("*.json.gz")
    assert not list((tmp_path / "spool").glob("*.json.gz"))  # aside, not queued for another try
    assert "day_file_full" in kept.with_name(kept.name.replace(".json.gz", ".error.txt")).read_text()

    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 5
    assert len(list((tmp_path / "spool" / "rejected").glob("*.json.gz"))) == 2  # the first was not resent


def test_software_rule_end_to_end(request, tmp_path):
    """The full list when the server lacks it, the digest only otherwise, through a real server."""
    import json
    from datetime import datetime, timezone

    from agent import inventory
    from agent.collector import Sources

    software = inventory.software_info(Sources())
    if software is None:
        pytest.skip("no package database on this machine")
    digest = inventory.software_digest(software)
    relevo = live_server(request)
    # An agent that delivered its list to a server that has since lost it (a
    # rebuilt database): its state says "sent a minute ago", the server has nothing.
    (tmp_path / "software.json").write_text(json.dumps(
        {"digest": digest, "sent_at": datetime.now(timezone.utc).isoformat(), "wanted": False}))
    env = {**os.environ, "INVENTORY_SERVER": relevo.url, "INVENTORY_TOKEN": relevo.agent_token}

    def run_and_read() -> dict:
        result = subprocess.run([sys.executable, "-m", "agent", "--once", "--state-dir", str(tmp_path),
                                 "--sample-seconds", "0"], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        answer = requests.get(f"{relevo.url}/query", params={"ip": "127.0.0.1", "latest": "true"},
                              headers={"Authorization": f"Token {relevo.reader_token}"}, timeout=10)
        [stored] = answer.json()["snapshots"]
        return stored

    first = run_and_read()
    assert first["software"] is None and first["software_digest"] == digest
    assert json.loads((tmp_path / "software.json").read_text())["wanted"] is True  # the server asked

    second = run_and_read()
    assert len(second["software"]) == len(software) and second["software_digest"] == digest
    assert json.loads((tmp_path / "software.json").read_text())["wanted"] is False

    third = run_and_read()
    assert third["software"] is None and third["software_digest"] == digest
    assert third["software_count"] == len(software)
    assert third["listening"] is not None and third["interfaces"] and third["disks"]
