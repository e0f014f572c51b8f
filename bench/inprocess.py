"""Django set up inside the benchmark process, on a fresh data folder and SQLite file.

For benchmarks that time one layer without HTTP noise (``bench/dayfile.py``)
or that fill a database directly (``bench/query_loader.py``). The database is
a real file with the project's settings (WAL, synchronous=FULL), fsync on.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup(data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
    """Point the settings at *data_dir*, set Django up and migrate; call once, before any model import."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in [name for name in os.environ if name.startswith(("INVENTORY_", "DATABASE_URL"))]:
        del os.environ[name]
    os.environ["INVENTORY_DATA_DIR"] = str(data_dir)
    os.environ["INVENTORY_FSYNC"] = "true"
    os.environ.update(extra_env or {})
    os.environ["DJANGO_SETTINGS_MODULE"] = "inventory_site.settings"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + os.urandom(16).hex())
    import django
    from django.core.management import call_command

    django.setup()
    # One JSON line per request on stderr would bury the figures.
    logging.getLogger("relevo.request").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0, interactive=False)
