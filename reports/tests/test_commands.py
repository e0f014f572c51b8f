"""The management commands an operator runs, as subprocesses against a real database file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from relevo_testing import live


@pytest.fixture
def env(tmp_path):
    env = live.server_env(tmp_path)
    live.manage(env, "migrate", "--noinput", "-v", "0")
    return env


def run(env, *args):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=live.ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_create_agent_token_prints_the_token_alone_on_the_last_line(env):
    result = run(env, "create_agent_token", "fleet-a")
    assert result.returncode == 0
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("rlv_a_") and " " not in token


def test_create_api_token_needs_an_existing_user(env):
    missing = run(env, "create_api_token", "nobody")
    assert missing.returncode != 0 and "No user named 'nobody'" in missing.stderr
    live.manage({**env, "DJANGO_SUPERUSER_PASSWORD": "pw-for-tests-1"}, "createsuperuser", "--noinput",
                "--username", "ops", "--email", "ops@example.invalid")
    token = run(env, "create_api_token", "ops").stdout.strip().splitlines()[-1]
    assert token.startswith("rlv_u_")


def test_demo_setup_creates_an_admin_and_a_token_once(env, tmp_path):
    env_file = tmp_path / "demo.env"
    first = run(env, "demo_setup", "--env-file", str(env_file))
    assert first.returncode == 0 and "Created the admin user" in first.stdout
    saved = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert saved["INVENTORY_TOKEN"].startswith("rlv_a_")
    assert (env_file.stat().st_mode & 0o777) == 0o600
    second = run(env, "demo_setup", "--env-file", str(env_file))
    assert "Created" not in second.stdout
    assert dict(line.split("=", 1) for line in env_file.read_text().splitlines()) == saved


def test_settings_refuse_to_start_without_a_secret_key(tmp_path):
    env = live.server_env(tmp_path)
    del env["DJANGO_SECRET_KEY"]
    env["RELEVO_ENV_FILE"] = str(tmp_path / "no.env")
    result = run(env, "check")
    assert result.returncode != 0 and "DJANGO_SECRET_KEY is not set" in result.stderr


def test_the_system_check_passes_with_a_fresh_data_folder(env):
    assert "no issues" in run(env, "check").stdout
