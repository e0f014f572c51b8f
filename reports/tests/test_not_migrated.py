"""A server started before ``migrate`` answers 503 database_not_migrated, never 500, and writes nothing.

The live test runs a real gunicorn on a database nobody migrated (as
``runserver`` then an agent's upload did, and got a 500), then migrates it
and sees the same requests reach Relevo's ordinary answers.
"""

from __future__ import annotations

import pytest
import requests

from relevo_testing import live

NOT_MIGRATED_DETAIL = "run python manage.py migrate"


@pytest.mark.slow
def test_requests_before_migrate_answer_503_and_store_nothing(tmp_path):
    env = live.server_env(tmp_path)
    credentials = {"agent_token": "rlv_a_" + "x" * 40, "reader_token": "rlv_u_" + "x" * 40, "admin_password": "-"}
    server = live.start(tmp_path, workers=1, prepared=(env, credentials))
    try:
        upload = requests.post(f"{server.url}/upload", data=b"{}", timeout=10,
                               headers={"Authorization": f"Token {server.agent_token}",
                                        "Content-Type": "application/json"})
        api = requests.get(f"{server.url}/api/hosts/", timeout=10,
                           headers={"Authorization": f"Token {server.reader_token}"})
        ready = requests.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["migrated"] is False  # a balancer skips it
        for response in (upload, api):
            assert response.status_code == 503 and response.headers["Retry-After"] == "60"
            body = response.json()
            assert body["error"] == "database_not_migrated" and NOT_MIGRATED_DETAIL in body["detail"]

        session = requests.Session()
        session.get(f"{server.url}/accounts/login/", timeout=10)
        page = session.post(f"{server.url}/accounts/login/", timeout=10,
                            data={"username": "admin", "password": "nope",
                                  "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                            headers={"Referer": f"{server.url}/accounts/login/"})
        assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
        assert NOT_MIGRATED_DETAIL in page.text

        assert list(server.data_dir.glob("*.json")) == []
        log = server.log_path.read_text()
        assert log.count("the database has unapplied migrations") == 1
        assert "Traceback" not in log and '"status":500' not in log

        server.manage("migrate", "--noinput", "-v", "0")
        after = requests.post(f"{server.url}/upload", data=b"{}", timeout=10,
                              headers={"Authorization": f"Token {server.agent_token}",
                                       "Content-Type": "application/json"})
        assert after.status_code == 401  # the token was never made: Relevo's ordinary answer now
        ready = requests.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["checks"]["migrated"] is True
    finally:
        live.stop_process(server.process, timeout=server.stop_timeout)
