"""Indexes that keep the hosts list fast at 100,000 hosts for the columns 0010_host_search added (issue 18).

- The sortable columns without an index (own address, memory, uptime's boot
  time, agent version) get one ending in the primary key, the list's
  tie-break, as 0011_fleet_indexes gave the others: a page of any sort reads
  50 index entries instead of sorting every host row. So does the OS name:
  its own index orders equal names by the pk on SQLite (the rowid) but not
  on PostgreSQL, which sorted 80,000 "Linux" rows for a page.
- On SQLite, an index of ``search_text`` alone. The list's search is a
  substring match (``selectors.host_list``), which no index can seek, but
  SQLite scans this index (about 200 bytes an entry) instead of the host
  table, where each row carries its process index (a few KB) before
  ``search_text``. PostgreSQL keeps its trigram index (0010) and gets no
  B-tree here: a B-tree entry is limited to about 2.7 KB, and a host with
  many addresses has a longer search text.
"""

from django.db import migrations, models

SORTED = ("own_address", "memory_total_bytes", "boot_time", "agent_version", "os_name")


def search_index(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("CREATE INDEX IF NOT EXISTS host_search_text ON reports_host (search_text)")


def search_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP INDEX IF EXISTS host_search_text")


class Migration(migrations.Migration):

    dependencies = [
        ("reports", "0013_process_history"),
    ]

    operations = [
        *(migrations.AddIndex(model_name="host", index=models.Index(fields=[field, "id"], name=f"host_sort_{field}"))
          for field in SORTED),
        migrations.RunPython(search_index, search_index_drop),
    ]
