"""Four fewer indexes on the host row, which every upload rewrites, and a fifth made partial (issue 16).

The host's UPDATE on each upload is never HOT (``last_seen`` is indexed), so
PostgreSQL inserts an entry into every index of ``reports_host`` each time.
Four of them served nothing: the ``varchar_pattern_ops`` copies that
``unique=True`` (``host_id``) and ``db_index=True`` (``hostname``,
``os_name``) add on PostgreSQL for ``LIKE 'prefix%'``, which no query asks,
and ``os_name``'s own B-tree, whose filter ``host_os_version`` (os_name,
os_version) answers. ``host_id`` stays unique and ``hostname`` keeps its
B-tree (the admin lists hosts by name), as a constraint and an index that
make no copy. The new ones come first, so uniqueness is never absent.
The index of hosts flagged as two machines (``identity_conflict_since``)
becomes partial, over the flagged ones only: an unflagged host's UPDATE,
nearly every upload, inserts nothing into it.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("reports", "0018_host_search_table"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="host",
            constraint=models.UniqueConstraint(fields=("host_id",), name="host_host_id_unique"),
        ),
        migrations.AddIndex(
            model_name="host",
            index=models.Index(fields=["hostname"], name="host_hostname"),
        ),
        migrations.AddIndex(
            model_name="host",
            index=models.Index(condition=models.Q(("identity_conflict_since__isnull", False)),
                               fields=["identity_conflict_since"], name="host_identity_conflict"),
        ),
        migrations.AlterField(
            model_name="host",
            name="host_id",
            field=models.CharField(help_text="Stable machine id sent by the agent.", max_length=256),
        ),
        migrations.AlterField(
            model_name="host",
            name="hostname",
            field=models.CharField(max_length=255),
        ),
        migrations.AlterField(
            model_name="host",
            name="os_name",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AlterField(
            model_name="host",
            name="identity_conflict_since",
            field=models.DateTimeField(blank=True, editable=False, null=True,
                                       help_text="Set while two machines seem to send this host id (reports.identity)."),
        ),
    ]
