"""The EC2 user data and the agent's .deb, on a booted Debian 12 (see debian_root.py for the harness).

Debian 12 stands in for Ubuntu 24.04, whose archive is not reachable here
(docs/deploy-ec2.md lists what differs). ``deploy/ec2/user-data.sh`` runs as it
is, with its settings in the environment as cloud-init would leave them
edited, cloning this working tree; then the services must be active, nginx
must pass ``scripts/smoke.sh`` on port 80, and ``apt-get install`` of the
freshly built ``relevo-agent_<version>_all.deb`` must leave a running timer
whose service delivers a snapshot to that server.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import pytest

from agent import __version__
from relevo_testing import live
from relevo_testing.prerequisites import require
from reports.tests import debian_root

pytestmark = [pytest.mark.slow, pytest.mark.backend_free]


def _log(message: str, started: float) -> None:
    print(f"[booted-debian +{time.monotonic() - started:6.1f}s] {message}", flush=True)


def _relevo(booted: debian_root.Booted, command: str) -> str:
    """A management command as the service user, with the service's settings (docs/deploy-ec2.md, section 4)."""
    script = ("set -a; . /etc/relevo/relevo.env; set +a; cd /opt/relevo/app; "
              f"/opt/relevo/venv/bin/python manage.py {command}")
    return booted.run(f"runuser -u relevo -- bash -c {_quote(script)}", timeout=120).stdout


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _wait(booted: debian_root.Booted, script: str, *, timeout: float) -> subprocess.CompletedProcess:
    deadline = time.monotonic() + timeout
    while True:
        result = booted.run(script, check=False, timeout=60)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_user_data_and_the_agent_deb_on_a_booted_debian(tmp_path):
    missing = debian_root.missing_prerequisites()
    require(not missing, f"booting a Debian root needs: {', '.join(missing)} (apt-get install debootstrap "
                         "slirp4netns; run as root)")
    for tool in ("dpkg-deb", "rpmbuild"):
        require(subprocess.run(["which", tool], capture_output=True).returncode == 0, f"{tool} is missing")
    started = time.monotonic()

    dist = tmp_path / "dist"
    subprocess.run(["bash", str(live.ROOT / "scripts/packages/build-linux.sh"), str(dist)], cwd=live.ROOT,
                   env={**os.environ, "WORK": str(tmp_path / "work"), "PYTHON": sys.executable},
                   check=True, capture_output=True, timeout=300)
    deb = dist / f"relevo-agent_{__version__}_all.deb"

    root = debian_root.fresh_root("test")
    _log(f"base root ready ({root.base})", started)
    repository = debian_root.copy_repository(root.upper)
    (root.upper / "root").mkdir(exist_ok=True)
    (root.upper / "root" / deb.name).write_bytes(deb.read_bytes())

    with debian_root.Booted(root, log=tmp_path / "boot.log") as booted:
        _log(f"booted: {booted.run('systemctl is-system-running', check=False).stdout.strip()}", started)

        # --- EC2: the user data as it is, settings through its environment, no certbot ---
        settings = {"RELEVO_REPO": repository, "RELEVO_REF": "main", "SERVER_NAME": "relevo.test",
                    "ADMIN_ALLOWED_CIDR": "127.0.0.1/32", "LETSENCRYPT_EMAIL": "",
                    **debian_root.passed_through_environment()}
        result = booted.run(f"bash {repository}/deploy/ec2/user-data.sh", env=settings, check=False, timeout=1200)
        (tmp_path / "user-data.log").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Relevo is up" in result.stdout
        _log("user-data.sh finished", started)

        healthy = _wait(booted, "curl -sf -o /dev/null http://127.0.0.1/healthz", timeout=90)
        status = booted.run("systemctl is-active relevo nginx relevo-prune.timer", check=False)
        journal = booted.run("journalctl -u relevo --no-pager | tail -40", check=False).stdout
        assert healthy.returncode == 0 and status.stdout.split() == ["active"] * 3, status.stdout + journal
        restarts = booted.run("systemctl show relevo -p NRestarts --value").stdout.strip()
        assert restarts == "0", journal  # the crash loop this test was written for
        _log(f"systemctl is-active relevo nginx relevo-prune.timer: {' '.join(status.stdout.split())}; "
             f"NRestarts={restarts}", started)

        password = secrets.token_urlsafe(12)
        booted.run("runuser -u relevo -- bash -c " + _quote(
            "set -a; . /etc/relevo/relevo.env; set +a; cd /opt/relevo/app; "
            f"DJANGO_SUPERUSER_PASSWORD={password} /opt/relevo/venv/bin/python manage.py createsuperuser "
            "--noinput --username admin --email admin@example.invalid"))
        agent_token = _relevo(booted, "create_agent_token fleet").strip().splitlines()[-1]
        reader_token = _relevo(booted, "create_api_token admin").strip().splitlines()[-1]
        smoke = booted.run(f"bash /opt/relevo/app/scripts/smoke.sh http://127.0.0.1 {agent_token} {reader_token}",
                           check=False)
        assert smoke.returncode == 0 and "smoke: OK" in smoke.stdout, smoke.stdout + smoke.stderr
        _log(smoke.stdout.strip().replace("\n", " | "), started)

        # The metrics folder is the service's own, and /metrics adds up its workers through nginx.
        strangers = booted.run("find /run/relevo/metrics ! -user relevo").stdout
        assert strangers == "" and booted.run("ls /run/relevo/metrics").stdout.strip()
        scrape = booted.run("curl -sf http://127.0.0.1/metrics").stdout
        assert 'relevo_uploads_accepted_total{result="stored"} 1.0' in scrape

        # --- the agent's .deb: installed, timer running, its service delivers ---
        install = booted.run(f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/{deb.name}",
                             env=debian_root.passed_through_environment(), check=False, timeout=600)
        assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
        timer = booted.run("systemctl is-enabled relevo-agent.timer; systemctl is-active relevo-agent.timer",
                           check=False).stdout.split()
        assert timer == ["enabled", "active"], timer
        assert booted.run("stat -c '%a %U' /etc/relevo-agent/agent.env").stdout.strip() == "600 root"
        assert booted.run("relevo-agent --version").stdout.strip() == f"relevo-agent {__version__}"
        _log(f"apt-get install ./{deb.name}: relevo-agent.timer {' '.join(timer)}", started)

        booted.run(f"printf 'INVENTORY_SERVER=http://127.0.0.1\\nINVENTORY_TOKEN=%s\\n' {agent_token} "
                   ">> /etc/relevo-agent/agent.env")
        run = booted.run("systemctl start relevo-agent-once.service; "
                         "systemctl show relevo-agent-once.service -p Result -p ExecMainStatus", check=False,
                         timeout=300)
        agent_journal = booted.run("journalctl -u relevo-agent-once --no-pager | tail -20", check=False).stdout
        assert "Result=success" in run.stdout and "ExecMainStatus=0" in run.stdout, run.stdout + agent_journal
        answer = booted.run(f"curl -sf -H 'Authorization: Token {reader_token}' "
                            "'http://127.0.0.1/query?ip=127.0.0.1'").stdout
        delivered = [s for s in json.loads(answer)["snapshots"]
                     if s.get("agent", {}).get("version") == __version__]
        assert delivered and delivered[-1]["host"]["hostname"] == "relevo-ec2-standin", answer[:2000]
        triggered = booted.run("systemctl show relevo-agent.timer -p LastTriggerUSec -p NextElapseUSecMonotonic",
                               check=False).stdout.strip().replace("\n", "; ")
        _log(f"relevo-agent-once.service delivered snapshot {delivered[-1]['snapshot_id']} "
             f"({len(delivered[-1]['processes'])} processes); timer: {triggered}", started)

        purge = booted.run("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q relevo-agent; "
                           "systemctl is-active relevo-agent.timer; "
                           "ls /etc/relevo-agent /var/lib/relevo-agent /usr/lib/relevo-agent 2>&1", check=False)
        assert "inactive" in purge.stdout and purge.stdout.count("No such file or directory") == 3, purge.stdout
        _log("apt-get purge relevo-agent: timer inactive, settings, state and code gone", started)
