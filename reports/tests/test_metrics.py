"""/metrics (who may read it, what it counts) and the JSON request log lines."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from relevo_testing import live
from relevo_testing.factories import encode, make_payload
from reports import services

pytestmark = pytest.mark.django_db


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(ip="127.0.0.1", **headers):
    return APIClient(REMOTE_ADDR=ip).get("/metrics", **headers)


def post(token, body: bytes):
    client = APIClient(REMOTE_ADDR="10.0.0.5")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.generic("POST", "/upload", body, content_type="application/json")


def test_metrics_are_served_to_loopback_only_by_default():
    assert scrape().status_code == 200
    denied = scrape(ip="203.0.113.9")
    assert denied.status_code == 403 and denied.json()["error"] == "permission_denied"


def test_the_metrics_token_opens_metrics_from_anywhere(settings):
    settings.INVENTORY_METRICS_TOKEN = "metrics-secret-for-tests"
    assert scrape(ip="203.0.113.9", HTTP_AUTHORIZATION="Bearer metrics-secret-for-tests").status_code == 200
    assert scrape(ip="203.0.113.9", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    settings.INVENTORY_METRICS_ALLOWED = []
    assert scrape().status_code == 403


def test_uploads_are_counted_by_result_and_reason_and_hosts_by_status(data_dir):
    token = services.agent_token_create(name="t")[1]
    before = samples(scrape().content.decode())
    payload = make_payload()
    assert post(token, encode(payload)).status_code == 201
    assert post(token, encode(payload)).status_code == 200
    assert post(token, b"{").status_code == 400
    assert post("rlv_a_wrong", encode(make_payload())).status_code == 401
    after = samples(scrape().content.decode())

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("relevo_uploads_accepted_total", result="stored") == 1
    assert delta("relevo_uploads_accepted_total", result="replayed") == 1
    assert delta("relevo_uploads_rejected_total", reason="invalid_payload") == 1
    assert delta("relevo_uploads_rejected_total", reason="authentication_failed") == 1
    assert delta("relevo_ingest_duration_seconds_count") == 2
    assert delta("relevo_day_file_append_seconds_count") == 1
    assert after[("relevo_hosts", (("status", "online"),))] == 1
    assert after[("relevo_hosts", (("status", "stale"),))] == 0


@pytest.mark.slow
def test_metrics_add_up_all_gunicorn_workers_and_log_lines_are_json(relevo_server_factory, tmp_path):
    server = relevo_server_factory(workers=3, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")})
    headers = {"Authorization": f"Token {server.agent_token}", "Content-Type": "application/json"}
    for index in range(9):
        payload = make_payload(host_id=f"host-{index % 3}", hostname="secret-hostname-not-logged")
        response = requests.post(f"{server.url}/upload", data=encode(payload), headers=headers, timeout=30)
        assert response.status_code == 201, response.text
    assert requests.post(f"{server.url}/upload", data=b"{", headers=headers, timeout=30).status_code == 400
    found = samples(requests.get(f"{server.url}/metrics", timeout=30).text)
    assert found[("relevo_uploads_accepted_total", (("result", "stored"),))] == 9
    assert found[("relevo_uploads_rejected_total", (("reason", "invalid_payload"),))] == 1
    assert found[("relevo_hosts", (("status", "online"),))] == 3
    assert found[("relevo_data_dir_free_bytes", ())] > 0

    log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith('{"time"')]
    uploads = [line for line in lines if line["path"] == "/upload"]
    assert len(uploads) == 10
    assert {line["host_id"] for line in uploads if line["status"] == 201} == {"host-0", "host-1", "host-2"}
    assert all(line["client_ip"] == "127.0.0.1" and line["method"] == "POST" and line["duration_ms"] >= 0
               for line in uploads)
    assert [line["error"] for line in uploads if line["status"] == 400] == ["invalid_payload"]
    assert server.agent_token not in log and "secret-hostname-not-logged" not in log


def test_bad_operations_settings_are_reported_by_the_system_checks(settings):
    from reports.checks import check_operations_settings

    settings.INVENTORY_METRICS_ALLOWED = ["10.0.0.0/8", "office"]
    settings.INVENTORY_RETENTION_DAYS = -1
    settings.INVENTORY_METRICS_TOKEN = "short"
    assert sorted(message.id for message in check_operations_settings()) == [
        "reports.E007", "reports.E008", "reports.W002"]


def test_importing_metrics_creates_no_folder(tmp_path):
    """Whoever imports first must not own the metrics folder: on EC2 that was root's collectstatic.

    The server's launcher makes the folder as the serving user; an import with
    the variable pointing nowhere stops with a message that says so.
    """
    folder = tmp_path / "var" / "metrics"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "DJANGO_SETTINGS_MODULE": "inventory_site.settings"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup(); import reports.metrics"],
                            cwd=live.ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert not (tmp_path / "var").exists()
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr
    assert f"PROMETHEUS_MULTIPROC_DIR={folder} is not a folder" in result.stderr



@pytest.mark.parametrize("module", ["metrics", "addresses"])
def test_leaf_modules_import_nothing_of_relevo_anywhere(module):
    """Not even inside a function: such an import once hid a cycle store -> metrics -> selectors -> store."""
    tree = ast.parse((live.ROOT / "reports" / f"{module}.py").read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "." for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert [name for name in imported if name.split(".")[0] in ("reports", "inventory_site", ".")] == []


def test_recording_loads_neither_the_database_nor_the_scrape_side():
    """Importing the storage module loads the metric declarations and the address rules, nothing more."""
    code = ("import json, sys, reports.store; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('reports'))))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "inventory_site.settings"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run([sys.executable, "-c", code], cwd=live.ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["reports", "reports.addresses", "reports.metrics", "reports.store"]
