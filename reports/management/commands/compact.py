"""``manage.py compact [--before DATE] [--dry-run]``: compress closed days.

Every day older than ``INVENTORY_COMPACT_AFTER_DAYS`` (or before ``--before``)
that still has a plain ``IP_YYYY-MM-DD.json`` is merged into
``IP_YYYY-MM-DD.json.zst`` (see ``reports.store`` for the format and why a
crash at any step leaves the day whole), and each one is printed; the
database's copy of the day's documents becomes one archive
(``reports.archive``). Compacted days of the week before the cutoff whose
rows were not archived yet (a run cut short) are archived too. Idempotent,
safe beside live uploads, and run by the same timer as ``prune``.
"""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from reports import services, store


class Command(BaseCommand):
    help = "Compress the day files of closed days into IP_YYYY-MM-DD.json.zst (readable with zstdcat)."

    def add_arguments(self, parser):
        parser.add_argument("--before", help="Compact days before this date, YYYY-MM-DD "
                                             "(default: today minus INVENTORY_COMPACT_AFTER_DAYS).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would be compacted; change nothing.")

    def handle(self, *args, before: str | None, dry_run: bool, **options):
        if before is None:
            cutoff = services.compact_cutoff()
        else:
            try:
                cutoff = dt.date.fromisoformat(before)
            except ValueError:
                raise CommandError(f"--before: {before!r} is not a date (YYYY-MM-DD)") from None
        days = store.uncompacted_days(before=cutoff)
        total = 0
        for ip, day in days:
            change = services.day_compact(ip=ip, day=day, dry_run=dry_run)
            total += change.snapshots
            self.stdout.write(f"{change.action.value} {change.file} ({change.snapshots} snapshots)")
        if not dry_run:
            done = set(days)
            since = cutoff - dt.timedelta(days=services.ARCHIVE_LOOKBACK_DAYS)
            for ip, day, _ in store.iter_day_files():
                if since <= day < cutoff and (ip, day) not in done:
                    change = services.day_archive(ip=ip, day=day)
                    if change.snapshots:
                        self.stdout.write(f"{change.action.value} {change.file} ({change.snapshots} snapshots)")
        verb = "would compact" if dry_run else "compacted"
        self.stdout.write(f"{verb} {len(days)} day files, {total} snapshots before {cutoff.isoformat()}")
