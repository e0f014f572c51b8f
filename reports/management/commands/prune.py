"""``manage.py prune --older-than 90d [--dry-run]``: retention.

Removes every day older than the cutoff, file and rows together (see
``services.day_prune``), and prints each one. Without ``--older-than`` it uses
``INVENTORY_RETENTION_DAYS``, so a scheduled run (cron, systemd timer) needs
no arguments. Days are found in the data folder and in the database, so a day
that only one of them still has is removed too. Then the process history:
the runs that stopped before the first kept day and the process texts no run
names any more (``services.history_prune``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from reports import selectors, services, store
from reports.durations import parse_duration


class Command(BaseCommand):
    help = "Remove day files and their database rows older than a duration (e.g. 90d)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", help="Remove days older than this: 90d, 12h ... "
                                                 "(default: INVENTORY_RETENTION_DAYS days).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would be removed; change nothing.")

    def handle(self, *args, older_than: str | None, dry_run: bool, **options):
        if older_than is None:
            if settings.INVENTORY_RETENTION_DAYS <= 0:
                raise CommandError("Give --older-than (e.g. 90d) or set INVENTORY_RETENTION_DAYS.")
            older_than = f"{settings.INVENTORY_RETENTION_DAYS}d"
        try:
            age = parse_duration(older_than)
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}") from None
        cutoff = timezone.localtime(timezone.now() - age).date()
        days = {(ip, day) for ip, day, _ in store.iter_day_files() if day < cutoff}
        days.update(selectors.snapshot_days(before=cutoff))
        total = 0
        for ip, day in sorted(days, key=lambda pair: (pair[1], store.file_name(*pair))):
            change = services.day_prune(ip=ip, day=day, dry_run=dry_run)
            total += change.snapshots
            self.stdout.write(f"{change.action.value} {change.file} ({change.snapshots} snapshots)")
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(f"{verb} {len(days)} day files, {total} snapshots older than {cutoff.isoformat()}")
        history = services.history_prune(before=cutoff, dry_run=dry_run)
        self.stdout.write(f"{verb} {history.runs} process runs stopped before {cutoff.isoformat()}, "
                          f"{history.texts} process texts no run names")
