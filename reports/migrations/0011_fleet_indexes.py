"""Indexes that keep the hosts list fast at 100,000 hosts (issue 18, docs/performance.md).

- Each sortable column of the hosts list that had no index gets one ending in
  the primary key, the list's tie-break, so a page of any sort reads 50 index
  entries instead of sorting every host row (each row carries its process
  index, a few KB, so a scan of the table reads all of it).
(The search reads ``search_text``, 0010_host_search; a covering index of
the old searched columns would serve no query, so there is none.)
"""

from django.db import migrations, models

SORTED = ("os_version", "cpu_model", "process_count", "user_count", "first_seen")


class Migration(migrations.Migration):

    dependencies = [
        ("reports", "0010_host_search"),
    ]

    operations = [
        *(migrations.AddIndex(model_name="host", index=models.Index(fields=[field, "id"], name=f"host_sort_{field}"))
          for field in SORTED),
    ]
