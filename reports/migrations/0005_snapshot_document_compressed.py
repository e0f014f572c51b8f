"""Snapshot.document_zlib becomes document_compressed: new rows hold zstd (``reports.documents``).

A rename only: rows written before keep their zlib blobs, which
``reports.documents.unpack`` still reads, so no data is rewritten.
"""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("reports", "0004_throttle_counter_unlogged")]
    operations = [
        migrations.RenameField(model_name="snapshot", old_name="document_zlib", new_name="document_compressed"),
        migrations.AlterField(
            model_name="snapshot",
            name="document_compressed",
            field=models.BinaryField(
                help_text="The stored document, zstd-compressed (rows written before zstd: zlib)."
            ),
        ),
    ]
