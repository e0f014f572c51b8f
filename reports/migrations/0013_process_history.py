"""The process history (reports.process_history), started from each host's newest snapshot.

Each line of a host's ``process_index`` becomes an open run from the host's
``last_seen``: the history knows nothing older (``manage.py reindex`` builds
it from the day files when wanted). The old, unsorted ``process_index`` rows
are left as they are: ingest compares them as sets, and each is rewritten
sorted on its host's next upload whose process set differs.
"""

import hashlib

import django.db.models.deletion
from django.db import migrations, models

BATCH = 500


def _digest(text):
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def open_runs_from_process_index(apps, schema_editor):
    Host = apps.get_model("reports", "Host")
    ProcessText = apps.get_model("reports", "ProcessText")
    ProcessRun = apps.get_model("reports", "ProcessRun")
    connection = schema_editor.connection
    quote, adapt = connection.ops.quote_name, connection.ops.adapt_datetimefield_value
    insert = (f"INSERT INTO {quote(ProcessRun._meta.db_table)} (host_id, text_id, started_at, stopped_at) "
              f"VALUES (%s, %s, %s, NULL)")
    ids = {}
    hosts = Host.objects.order_by("pk").values_list("pk", "last_seen", "process_index")
    batch = []

    def flush():
        texts = {text for _, _, lines in batch for text in lines if _digest(text) not in ids}
        ProcessText.objects.bulk_create([ProcessText(digest=_digest(t), text=t, name=t.split("\t", 1)[0])
                                         for t in sorted(texts)], batch_size=BATCH, ignore_conflicts=True)
        wanted = [_digest(t) for t in texts]
        for start in range(0, len(wanted), BATCH):
            ids.update(ProcessText.objects.filter(digest__in=wanted[start:start + BATCH]).values_list("digest", "id"))
        # Millions of rows on a large fleet: one executemany, not a model instance each.
        with connection.cursor() as cursor:
            cursor.executemany(insert, [(pk, ids[_digest(t)], adapt(seen)) for pk, seen, lines in batch for t in lines])
        batch.clear()

    for pk, last_seen, index in hosts.iterator(chunk_size=BATCH):
        batch.append((pk, last_seen, set(index.split("\n")) if index else set()))
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()


def analyze_history(apps, schema_editor):
    """PostgreSQL: statistics for the two tables the backfill just filled.

    Until autovacuum gets to them the planner has none, and it planned
    process searches of seconds on a migrated fleet of 100,000 hosts.
    SQLite plans these queries from its indexes alone.
    """
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ANALYZE reports_processtext, reports_processrun")


class Migration(migrations.Migration):

    dependencies = [
        ('reports', '0012_alerts'),
    ]

    operations = [
        migrations.CreateModel(
            name='ProcessText',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('digest', models.CharField(help_text='blake2b-128 of text, hex (the key).', max_length=32, unique=True)),
                ('text', models.TextField(help_text="Lower-cased 'name<TAB>cmdline', as in Host.process_index.")),
                ('name', models.TextField(help_text='The part of text before the tab: what name-only search matches.')),
            ],
        ),
        migrations.CreateModel(
            name='ProcessRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField()),
                ('stopped_at', models.DateTimeField(blank=True, null=True)),
                ('host', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='reports.host')),
                ('text', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='reports.processtext')),
            ],
            options={
                'indexes': [models.Index(fields=['text', 'started_at', 'stopped_at', 'host'], name='processrun_text_time')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('stopped_at__isnull', True)), fields=('host', 'text'), name='processrun_one_open_run')],
            },
        ),
        migrations.RunPython(open_runs_from_process_index, migrations.RunPython.noop),
        migrations.RunPython(analyze_history, migrations.RunPython.noop),
    ]
