"""Make the throttle counter table UNLOGGED on PostgreSQL: counters need no crash safety,
and an unlogged write commits without waiting for a WAL flush. A no-op elsewhere."""
from django.db import migrations


def _set_unlogged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = schema_editor.quote_name(apps.get_model("reports", "ThrottleCounter")._meta.db_table)
        schema_editor.execute(f"ALTER TABLE {table} SET UNLOGGED")


def _set_logged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = schema_editor.quote_name(apps.get_model("reports", "ThrottleCounter")._meta.db_table)
        schema_editor.execute(f"ALTER TABLE {table} SET LOGGED")


class Migration(migrations.Migration):
    dependencies = [("reports", "0003_agent_token_host_binding_and_throttle_counter")]
    operations = [migrations.RunPython(_set_unlogged, _set_logged)]
