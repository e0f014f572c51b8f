"""The host search's text moves from the host row to a table of its own, ``HostSearch`` (issue 16).

Every upload rewrites its host's row (``last_seen``, ``latest_snapshot``),
which on PostgreSQL makes a new row version with an entry in every index of
the table, the search text's trigram index included: all of the text's
trigrams again, about 2 KB of WAL an upload, for a text that rarely
changes. In ``HostSearch`` it is written only when it changes; the host row
keeps its digest (``search_digest``) so an upload tells without reading it.

The digests are left empty here ("not known"): a host's next upload writes
its text and digest afresh, as it would after any change.
"""

from django.db import DatabaseError, migrations, models, transaction
import django.db.models.deletion


def copy_texts(apps, schema_editor):
    schema_editor.execute("INSERT INTO reports_hostsearch (host_id, text) SELECT id, search_text FROM reports_host")


def copy_texts_back(apps, schema_editor):
    schema_editor.execute("UPDATE reports_host SET search_text = COALESCE("
                          "(SELECT text FROM reports_hostsearch WHERE host_id = reports_host.id), '')")


def host_row_indexes_drop(apps, schema_editor):
    """The indexes 0010 (PostgreSQL's trigram) and 0014 (SQLite's) made on the host row's text, named here by hand."""
    schema_editor.execute("DROP INDEX IF EXISTS host_search_trigram")
    schema_editor.execute("DROP INDEX IF EXISTS host_search_text")


def host_row_indexes_create(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("CREATE INDEX IF NOT EXISTS host_search_text ON reports_host (search_text)")
    elif _trigrams(schema_editor):
        schema_editor.execute("CREATE INDEX IF NOT EXISTS host_search_trigram ON reports_host "
                              "USING gin (search_text gin_trgm_ops)")


def trigram_index(apps, schema_editor):
    """PostgreSQL's trigram index, on the new table; SQLite scans the table, which holds nothing but the texts."""
    if schema_editor.connection.vendor == "postgresql" and _trigrams(schema_editor):
        schema_editor.execute("CREATE INDEX IF NOT EXISTS host_search_trigram ON reports_hostsearch "
                              "USING gin (text gin_trgm_ops)")


def trigram_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS host_search_trigram")


def _trigrams(schema_editor) -> bool:
    """Whether pg_trgm is there or can be made (0010 says why the search works without it)."""
    if schema_editor.connection.vendor != "postgresql":
        return False
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:
        return False
    return True


class Migration(migrations.Migration):

    dependencies = [
        ("reports", "0017_alert_rule_os_version"),
    ]

    operations = [
        migrations.CreateModel(
            name="HostSearch",
            fields=[
                ("host", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                              related_name="search", serialize=False, to="reports.host")),
                ("text", models.TextField(help_text="Lower-cased names, host id, own and seen addresses, OS and CPU.")),
            ],
        ),
        migrations.AddField(
            model_name="host",
            name="search_digest",
            field=models.CharField(blank=True, default="", editable=False, max_length=32,
                                   help_text="blake2b-128 of the host's HostSearch text, hex; empty: not known "
                                             "(hosts stored before it existed)."),
        ),
        migrations.RunPython(copy_texts, copy_texts_back),
        migrations.RunPython(host_row_indexes_drop, host_row_indexes_create),
        migrations.RemoveField(model_name="host", name="search_text"),
        migrations.RunPython(trigram_index, trigram_index_drop),
    ]
