"""Enrollment end to end: the real agent enrolls with a real Relevo server (gunicorn).

The server runs with INVENTORY_ENROLL_SECRET set; the agent starts with only
that secret, gets a per-host token, keeps it 0600 in its state folder, and
uploads with it. Revoking the token makes the next run enroll again.
"""

from __future__ import annotations

import os
import stat

import pytest
import requests

from agent.run_agent import ExitStatus, main

SECRET = "fleet-enroll-secret-0123456789"


@pytest.fixture
def enroll_server(relevo_server_factory):
    return relevo_server_factory(extra_env={"INVENTORY_ENROLL_SECRET": f"old-secret-9876543210,{SECRET}"})


def run(server, tmp_path, *extra, env=None):
    argv = ["--server", server.url, "--once", "--state-dir", str(tmp_path / "state"),
            "--sample-seconds", "0", "--retries", "1", *extra]
    return main(argv, env=env or {})


def stored_snapshots(server) -> list[dict]:
    answer = requests.get(f"{server.url}/query", params={"ip": "127.0.0.1"},
                          headers={"Authorization": f"Token {server.reader_token}"}, timeout=10)
    return answer.json()["snapshots"] if answer.status_code == 200 else []


def test_first_run_enrolls_keeps_the_token_private_and_uploads(enroll_server, tmp_path):
    assert run(enroll_server, tmp_path, env={"INVENTORY_ENROLL_SECRET": SECRET}) == ExitStatus.DELIVERED
    token_file = tmp_path / "state" / "token"
    token = token_file.read_text().strip()
    assert token.startswith("rlv_a_")
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    [first] = stored_snapshots(enroll_server)

    # The second run uses the kept token; the secret is not needed any more.
    assert run(enroll_server, tmp_path) == ExitStatus.DELIVERED
    assert token_file.read_text().strip() == token
    snapshots = stored_snapshots(enroll_server)
    assert len(snapshots) == 2 and snapshots[1]["host"]["id"] == first["host"]["id"]


def test_a_revoked_enrolled_token_is_replaced_by_enrolling_again(enroll_server, tmp_path):
    assert run(enroll_server, tmp_path, "--enroll-secret", SECRET) == ExitStatus.DELIVERED
    old = (tmp_path / "state" / "token").read_text().strip()
    host_id = stored_snapshots(enroll_server)[0]["host"]["id"]
    enroll_server.manage("revoke_agent_token", "--host-id", host_id)

    assert run(enroll_server, tmp_path, "--enroll-secret", SECRET) == ExitStatus.DELIVERED
    new = (tmp_path / "state" / "token").read_text().strip()
    assert new != old and len(stored_snapshots(enroll_server)) == 2


def test_a_wrong_secret_is_refused_and_the_snapshot_waits_in_the_spool(enroll_server, tmp_path):
    assert run(enroll_server, tmp_path, "--enroll-secret", "not-the-secret-at-all") == ExitStatus.AUTH_REFUSED
    assert not (tmp_path / "state" / "token").exists()
    assert len(list((tmp_path / "state" / "spool").glob("*.json.gz"))) == 1
    assert stored_snapshots(enroll_server) == []


def test_enrollment_with_the_server_down_spools_the_snapshot(tmp_path, free_port):
    argv = ["--server", f"http://127.0.0.1:{free_port}", "--once", "--state-dir", str(tmp_path / "state"),
            "--sample-seconds", "0", "--retries", "1", "--enroll-secret", SECRET]
    assert main(argv, env={}) == ExitStatus.SPOOLED
    assert len(list((tmp_path / "state" / "spool").glob("*.json.gz"))) == 1


def test_without_token_or_secret_it_is_a_usage_error(tmp_path, capsys):
    argv = ["--server", "http://127.0.0.1:9", "--once", "--state-dir", str(tmp_path / "state")]
    assert main(argv, env={}) == ExitStatus.USAGE
    assert "--enroll-secret" in capsys.readouterr().err
