"""Compaction of closed days: the service behind ``manage.py compact``.

The file format, the crash protocol and the rule for a day that has both a
``.zst`` and a plain file live in ``reports.store``; this module decides when
a day is closed and holds the same locks as an upload of that day
(``locks.day_file_locked``), so compaction can run beside live traffic and a
late upload simply waits for it, then starts a new plain file.

No row changes: a document keeps its offset in the decompressed day. The one
database write is the adoption of a document that a crashed worker left in
the file without a row, done first, exactly as the next upload would.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from reports import locks, services, store


def compact_cutoff(*, now: dt.datetime | None = None) -> dt.date:
    """The first day that is not compacted yet: today minus ``INVENTORY_COMPACT_AFTER_DAYS``."""
    return timezone.localtime(now or timezone.now()).date() - dt.timedelta(days=settings.INVENTORY_COMPACT_AFTER_DAYS)


def day_compact(*, ip: store.IPAddress, day: dt.date, dry_run: bool = False) -> services.DayChange:
    """Merge the plain day file of *ip* and *day* into its ``.zst`` (created if the day has none)."""
    with locks.day_file_locked(ip, day) as writer:
        if dry_run:
            count = writer.plain_document_count()
            return services.DayChange(writer.path.name, count, "would compact" if count else "nothing to compact")
        services._adopt_unrecorded_tail(writer, ip=ip, day=day)
        count = writer.compact()
    return services.DayChange(writer.path.name, count, "compacted" if count else "nothing to compact")
