"""``manage.py reindex_inventory``: rebuild the search rows of every host from its stored documents.

For hosts recorded before the search tables existed (migration 0008), or
after a repair: each host's software rows are rebuilt from the document of its
``software_snapshot`` and its sockets and disks from its ``latest_snapshot``,
one host per transaction with the host row locked as an upload locks it, so
it can run beside live uploads. The fleet's ``host_count`` values are then
recounted from the pairs. Idempotent.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from reports import inventory_index, selectors
from reports.dbwrite import write_transaction
from reports.models import Host


class Command(BaseCommand):
    help = "Rebuild every host's software, listening and disk search rows from its stored snapshots."

    def handle(self, *args, **options):
        hosts = rebuilt = 0
        for pk in Host.objects.order_by("pk").values_list("pk", flat=True):
            with write_transaction():
                host = (Host.objects.select_for_update(of=("self",))
                        .select_related("latest_snapshot", "software_snapshot").filter(pk=pk).first())
                if host is None:
                    continue  # pruned meanwhile
                hosts += 1
                latest = software = None
                if host.latest_snapshot is not None:
                    latest = selectors.snapshot_document(snapshot=host.latest_snapshot).payload
                if host.software_snapshot is not None:
                    software = selectors.snapshot_document(snapshot=host.software_snapshot).payload.software
                written = inventory_index.host_rows_write(
                    host_pk=host.pk, software=software, force=True,
                    listening=latest.listening if latest else None, disks=latest.disks if latest else None,
                )
                rebuilt += bool(written)
        with write_transaction():
            inventory_index.software_counts_rebuild()
        self.stdout.write(f"reindexed the inventory of {hosts} hosts ({rebuilt} with rows written)")
