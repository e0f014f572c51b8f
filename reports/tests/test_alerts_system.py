"""Alert delivery with real processes: a worker killed by SIGKILL, two workers at once, a real SMTP server.

The workers are ``manage.py alerts_worker`` child processes on a database
of their own (``relevo_testing.live.prepare``: SQLite in a temporary folder,
or a fresh PostgreSQL database when the run is on PostgreSQL, which is the
run that proves SKIP LOCKED). The receiver is a real HTTP server on loopback.
"""

from __future__ import annotations

import json
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from django.core import mail

from relevo_testing import live
from relevo_testing.ports import free_port
from relevo_testing.webhook import WebhookReceiver
from reports.alerts import delivery, outbox, worker
from reports.models import AlertDelivery, AlertDestination, AlertRule

SECRET = "test-secret-0123456789"

# Run in the workers' database by ``manage.py shell``: one destination, *rules* rules, *rows* due deliveries each.
SETUP = """
from django.utils import timezone
from reports.alerts import outbox
from reports.models import AlertDelivery, AlertDestination, AlertRule
hook = outbox.alert_destination_save(destination=AlertDestination(name="hook", kind="webhook", url={url!r},
                                                                  secret={secret!r}))
now = timezone.now()
for r in range({rules}):
    rule = outbox.alert_rule_save(rule=AlertRule(name=f"rule-{{r}}", kind="host_offline", group_seconds=0),
                                  destinations=[hook])
    AlertDelivery.objects.bulk_create([AlertDelivery(rule=rule, destination=hook, host_name=f"h{{i}}",
        kind="host_offline", subject="host offline", key=f"k-{{r}}-{{i}}", created_at=now, next_attempt_at=now)
        for i in range({rows})])
"""

STATES = """
import json
from reports.models import AlertDelivery
print(json.dumps(sorted(AlertDelivery.objects.values_list("state", "attempts"))))
"""


@pytest.fixture
def receiver():
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


@pytest.fixture
def workers_env(tmp_path, receiver):
    """A migrated database of the workers' own, holding the deliveries the test asks for."""
    env, _ = live.prepare(tmp_path / "server", {"ALERTS_LEASE_SECONDS": "3"})

    def fill(*, rules: int, rows: int) -> dict[str, str]:
        live.manage(env, "shell", "-c", SETUP.format(url=receiver.url, secret=SECRET, rules=rules, rows=rows))
        return env
    return fill


def start_worker(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", "alerts_worker", "--poll", "0.2"], cwd=live.ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def states(env) -> list[list]:
    return json.loads(live.manage(env, "shell", "-c", STATES).strip().splitlines()[-1])


def wait_until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_worker_killed_mid_delivery_delivers_after_restart(workers_env, receiver):
    env = workers_env(rules=1, rows=2)
    receiver.delay = 30  # the first POST arrives, and the worker is killed before it hears the answer
    first = start_worker(env)
    try:
        wait_until(lambda: receiver.received)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    assert states(env) == [["pending", 0], ["pending", 0]]  # nothing recorded as sent
    receiver.delay = 0
    second = start_worker(env)
    try:
        wait_until(lambda: states(env) == [["delivered", 1], ["delivered", 1]])  # after the 3 s lease
    finally:
        second.terminate()
        assert second.wait(timeout=10) == 0
    keys = {copy.json["idempotency_key"] for copy in receiver.received}
    assert len(receiver.received) == 2 and len(keys) == 1  # the repeat is the same message: receivers dedupe
    assert all(delivery.signature_verify(SECRET, c.headers["X-Relevo-Signature"], c.body) for c in receiver.received)


def test_two_workers_never_send_one_message_twice(workers_env, receiver):
    """Run on PostgreSQL this is SKIP LOCKED at work; on SQLite, the claims queue on the writer lock."""
    env = workers_env(rules=40, rows=3)
    receiver.delay = 0.02
    pair = [start_worker(env), start_worker(env)]
    try:
        wait_until(lambda: len(receiver.received) >= 40, timeout=60)
        time.sleep(1)  # room for a double send to show up
    finally:
        for process in pair:
            process.terminate()
        for process in pair:
            assert process.wait(timeout=10) == 0, process.stderr.read()
    keys = Counter(copy.json["idempotency_key"] for copy in receiver.received)
    assert len(keys) == 40 and set(keys.values()) == {1}
    assert states(env) == [["delivered", 1]] * 120


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Enough of RFC 5321 for smtplib: greeting, EHLO/HELO, MAIL, RCPT, DATA, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self.reply("220 test ESMTP")
        envelope = {"to": [], "data": b""}
        while line := self.rfile.readline():
            command = line.decode().strip().upper()
            if command.startswith(("EHLO", "HELO")):
                self.reply("250 test")
            elif command.startswith("MAIL FROM"):
                envelope["from"] = line.decode().split(":", 1)[1].strip()
                self.reply("250 OK")
            elif command.startswith("RCPT TO"):
                envelope["to"].append(line.decode().split(":", 1)[1].strip())
                self.reply("250 OK")
            elif command == "DATA":
                self.reply("354 go on")
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    envelope["data"] += chunk
                self.server.messages.append(envelope)
                envelope = {"to": [], "data": b""}
                self.reply("250 queued")
            elif command == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")


@pytest.mark.django_db
def test_email_goes_through_a_real_smtp_server(settings):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), _SMTPHandler)
    server.messages = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.server_address[1]
    outbox.rules_changed()
    try:
        destination = outbox.alert_destination_save(destination=AlertDestination(
            name="ops", kind="email", emails="ops@example.com"))
        rule = outbox.alert_rule_save(rule=AlertRule(name="offline", kind="host_offline", group_seconds=0),
                                      destinations=[destination])
        AlertDelivery.objects.create(rule=rule, destination=destination, host_name="web-01", kind="host_offline",
                                     subject="host offline", key="k1")
        assert worker.run_once() == 1
        [message] = server.messages
        assert message["to"] == ["<ops@example.com>"] and b"web-01: host offline" in message["data"]
        assert AlertDelivery.objects.get().state == "delivered" and mail.outbox == []
    finally:
        server.shutdown()
        server.server_close()
        outbox.rules_changed()
