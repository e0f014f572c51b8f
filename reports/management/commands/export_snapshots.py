"""``manage.py export_snapshots [--dry-run]``: write the day files back from the database.

The other direction of ``reindex``: each row keeps its stored document, so a
lost or damaged data folder is rebuilt byte for byte. A day file that holds a
snapshot the database lacks is never overwritten (it is reported instead).
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from reports import selectors, services

PROGRESS_EVERY_SECONDS = 2.0


class Command(BaseCommand):
    help = "Rebuild the day files from the snapshots stored in the database."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print what would be written; change nothing.")

    def handle(self, *args, dry_run: bool, **options):
        days = selectors.snapshot_days()
        counts: dict[str, int] = {}
        skipped = []
        last_report = time.monotonic()
        for done, (ip, day) in enumerate(days, start=1):
            change = services.day_export(ip=ip, day=day, dry_run=dry_run)
            counts[change.action.value] = counts.get(change.action.value, 0) + 1
            if change.action is services.DayAction.NOT_IN_DATABASE:
                skipped.append(change)
                self.stderr.write(f"{change.file}: {change.snapshots} snapshots are not in the database; "
                                  "left as it is (run reindex first)")
            elif options["verbosity"] >= 2 or change.action is not services.DayAction.UP_TO_DATE:
                self.stdout.write(f"{change.action.value} {change.file} ({change.snapshots} snapshots)")
            if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
                self.stdout.write(f"{done}/{len(days)} days")
                last_report = time.monotonic()
        summary = ", ".join(f"{count} {action}" for action, count in sorted(counts.items())) or "nothing stored"
        self.stdout.write(f"exported {len(days)} days: {summary}")
        if skipped:
            raise CommandError(f"{len(skipped)} day files were left alone; run reindex, then export again")
