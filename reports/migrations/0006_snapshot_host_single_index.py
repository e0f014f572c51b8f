"""Drop the index Django made for Snapshot.host: ``snapshot_host_time`` starts with the same column.

``AlterField(db_index=False)`` would copy the whole snapshot table on SQLite
(it remakes tables to alter a column) and does nothing on PostgreSQL, so the
state changes here and the database only loses the one index, found by
introspection because its name carries a hash.
"""

import django.db.models.deletion
from django.db import migrations, models


def _host_only_indexes(schema_editor, table: str) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        constraints = schema_editor.connection.introspection.get_constraints(cursor, table)
    return [
        name for name, info in constraints.items()
        if info["index"] and not info["unique"] and not info["primary_key"] and info["columns"] == ["host_id"]
    ]


def drop_host_index(apps, schema_editor):
    table = apps.get_model("reports", "Snapshot")._meta.db_table
    for name in _host_only_indexes(schema_editor, table):
        schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def create_host_index(apps, schema_editor):
    model = apps.get_model("reports", "Snapshot")
    if not _host_only_indexes(schema_editor, model._meta.db_table):
        schema_editor.execute(
            f"CREATE INDEX {schema_editor.quote_name('reports_snapshot_host_id_idx')} "
            f"ON {schema_editor.quote_name(model._meta.db_table)} ({schema_editor.quote_name('host_id')})"
        )


class Migration(migrations.Migration):

    dependencies = [
        ('reports', '0005_snapshot_document_compressed'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='snapshot',
                    name='host',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='snapshots', to='reports.host'),
                ),
            ],
            database_operations=[migrations.RunPython(drop_host_index, create_host_index)],
        ),
    ]
