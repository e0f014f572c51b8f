"""``manage.py alerts_worker [--once] [--poll SECONDS]``: deliver the alert outbox.

Long-running (the systemd unit and the Compose service run it); stops
cleanly between two rounds on SIGTERM or Ctrl-C. ``--once`` runs one round
(status rules, then every due message) and exits: for tests and cron.
Several may run at once (see ``reports.alerts.worker``).
"""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand

from reports.alerts import worker


class Command(BaseCommand):
    help = "Deliver alerts: evaluate host-status rules and send due webhooks and e-mails, with retries."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one round and exit.")
        parser.add_argument("--poll", type=float, default=1.0, help="Seconds between rounds (default 1).")

    def handle(self, *args, once: bool, poll: float, **options):
        if once:
            self.stdout.write(f"{worker.run_once()} message(s) tried")
            return
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        try:
            worker.run_forever(poll_seconds=poll, should_stop=lambda: bool(stopping))
        except KeyboardInterrupt:
            pass
