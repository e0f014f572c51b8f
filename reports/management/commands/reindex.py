"""``manage.py reindex``: rebuild the database mirror from the day files.

For disaster recovery: with the day files and an empty, migrated database,
this brings back every snapshot and host, so ``/query`` answers exactly as
before. Documents that already have rows are skipped, so it is idempotent and
safe to run beside live uploads. Progress is printed every few seconds.

When it recorded anything, the process history (``reports.process_history``)
of every host is then rebuilt from its snapshots in time order: the files are
read by address and day, so uploads recorded along the way saw a host's
snapshots out of order. One host per transaction, its row locked as an
upload locks it.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from reports import process_history, services, store
from reports.dbwrite import write_transaction
from reports.models import Host

PROGRESS_EVERY_SECONDS = 2.0


class Command(BaseCommand):
    help = "Record in the database every snapshot of the day files that it does not have (idempotent)."

    def handle(self, *args, **options):
        files = list(store.iter_day_files())
        added = 0
        last_report = time.monotonic()
        for done, (ip, day, _path) in enumerate(files, start=1):
            change = services.day_reindex(ip=ip, day=day)
            added += change.snapshots
            if options["verbosity"] >= 2:
                self.stdout.write(f"{change.action.value} {change.file} ({change.snapshots} added)")
            if options["verbosity"] >= 1 and time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
                self.stdout.write(f"{done}/{len(files)} day files, {added} snapshots recorded so far")
                last_report = time.monotonic()
        self.stdout.write(f"reindexed {len(files)} day files: {added} snapshots recorded")
        if added:
            hosts = runs = 0
            for pk in Host.objects.order_by("pk").values_list("pk", flat=True):
                with write_transaction():
                    if Host.objects.select_for_update().filter(pk=pk).exists():
                        hosts += 1
                        runs += process_history.host_rebuild(host_pk=pk)
            self.stdout.write(f"rebuilt the process history of {hosts} hosts: {runs} runs")
