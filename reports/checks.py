"""System checks for Relevo's own settings, reported by ``manage.py check``.

Like ``django.contrib.sites.checks``: a misconfiguration is reported at start
with an id and a hint, instead of surfacing as a 500 on the first upload.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from django.conf import settings
from django.core import checks

from reports.durations import parse_duration
from reports.private import open_to_others


def _network_errors(name: str, entries: list[str], error_id: str) -> list[checks.CheckMessage]:
    errors = []
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            errors.append(checks.Error(f"{name} has {entry!r}, which is not an address or network.", id=error_id))
    return errors


def _nearest_existing(path: Path) -> Path:
    """*path* itself if something is there, else its closest ancestor that exists."""
    while not os.path.lexists(path) and path.parent != path:
        path = path.parent
    return path


@checks.register(checks.Tags.compatibility, deploy=False)
def check_data_dir(app_configs=None, **kwargs):
    """The data folder is, or can become, a folder this process writes in.

    A check only looks: a missing folder is created private by what first
    writes in it (``store.locked_for_append``, the SQLite connection factory
    in ``reports.private``, ``/readyz``), so here it is enough that the
    closest existing ancestor is a folder this process may create entries in.
    """
    data_dir = Path(settings.INVENTORY_DATA_DIR)
    if not data_dir.exists():
        ancestor = _nearest_existing(data_dir)
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
            return [checks.Error(
                f"INVENTORY_DATA_DIR {data_dir} does not exist and cannot be created: "
                f"{ancestor} is not a folder this process can write in.",
                hint="Create the folder or point INVENTORY_DATA_DIR at a writable one.",
                id="reports.E001",
            )]
        return []
    if not data_dir.is_dir():
        return [checks.Error(f"INVENTORY_DATA_DIR {data_dir} is not a folder.", id="reports.E002")]
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return [checks.Error(
            f"INVENTORY_DATA_DIR {data_dir} is not writable by this process.",
            hint="Give the server's user write access to the folder.",
            id="reports.E003",
        )]
    return []


@checks.register(checks.Tags.security, deploy=False)
def check_private_files(app_configs=None, **kwargs):
    """The data folder and the SQLite database hold password hashes, sessions and every snapshot.

    The server creates them private (reports.private); this catches folders and
    databases made by hand, by an older version, or restored from a backup.
    """
    from reports.dbwrite import sqlite_database_file
    from reports.throttling import counter_file

    warnings = []
    data_dir = settings.INVENTORY_DATA_DIR
    if open_to_others(data_dir):
        warnings.append(checks.Warning(
            f"INVENTORY_DATA_DIR {data_dir} can be read or entered by other users of this machine.",
            hint=f"chmod 700 {data_dir}",
            id="reports.W020",
        ))
    database = sqlite_database_file()
    if database is not None:
        names = [database, f"{database}-wal", f"{database}-shm"]
        throttle = counter_file(database)
        names += [throttle, f"{throttle}-wal", f"{throttle}-shm"]
        exposed = [name for name in names if open_to_others(name)]
        if exposed:
            warnings.append(checks.Warning(
                f"The SQLite database files {', '.join(exposed)} can be read by other users of this machine "
                "(they hold password hashes, sessions and every snapshot).",
                hint=f"chmod 600 {' '.join(exposed)}",
                id="reports.W021",
            ))
    return warnings


@checks.register(checks.Tags.security)
def check_inventory_settings(app_configs=None, **kwargs):
    errors = _network_errors("INVENTORY_TRUSTED_PROXIES", settings.INVENTORY_TRUSTED_PROXIES, "reports.E004")
    if settings.INVENTORY_MAX_UPLOAD_BYTES < 1024:
        errors.append(checks.Error("INVENTORY_MAX_UPLOAD_BYTES must be at least 1024.", id="reports.E005"))
    if settings.INVENTORY_DAY_FILE_MAX_BYTES < settings.INVENTORY_MAX_UPLOAD_BYTES:
        errors.append(checks.Warning(
            "INVENTORY_DAY_FILE_MAX_BYTES is smaller than INVENTORY_MAX_UPLOAD_BYTES: "
            "a day file could not take even one of the largest snapshots.",
            hint="Leave it unset (100 x INVENTORY_MAX_UPLOAD_BYTES) or raise it.", id="reports.W015",
        ))
    for name in ("INVENTORY_OFFLINE_AFTER", "INVENTORY_STALE_AFTER"):
        try:
            parse_duration(getattr(settings, name))
        except ValueError as exc:
            errors.append(checks.Error(f"{name}: {exc}", id="reports.E006"))
    if "*" in settings.ALLOWED_HOSTS:
        errors.append(checks.Warning(
            "DJANGO_ALLOWED_HOSTS contains '*': any Host header is accepted.",
            hint="List the names the server is reached by.",
            id="reports.W001",
        ))
    return errors


@checks.register(checks.Tags.security)
def check_operations_settings(app_configs=None, **kwargs):
    """Retention and /metrics access: a typo here would silently keep or expose too much."""
    errors = _network_errors("INVENTORY_METRICS_ALLOWED", settings.INVENTORY_METRICS_ALLOWED, "reports.E007")
    if settings.INVENTORY_RETENTION_DAYS < 0:
        errors.append(checks.Error(
            "INVENTORY_RETENTION_DAYS must be 0 (keep everything) or a number of days.", id="reports.E008",
        ))
    if settings.INVENTORY_COMPACT_AFTER_DAYS < 1:
        errors.append(checks.Error(
            "INVENTORY_COMPACT_AFTER_DAYS must be at least 1: today's day file is still being written.",
            id="reports.E016",
        ))
    elif settings.INVENTORY_COMPACT_AFTER_DAYS < 2:
        errors.append(checks.Warning(
            "INVENTORY_COMPACT_AFTER_DAYS is 1: snapshots that agents spooled through an outage will "
            "mostly arrive after their day was compacted (they are kept, in a new file, until the next run).",
            hint="Leave it unset (2 days) unless disk is short.", id="reports.W016",
        ))
    token = settings.INVENTORY_METRICS_TOKEN
    if token and len(token) < 24:
        errors.append(checks.Warning(
            "INVENTORY_METRICS_TOKEN is shorter than 24 characters.",
            hint="Use a long random value, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
            id="reports.W002",
        ))
    return errors


# --- security settings ----------------------------------------------------------------

MIN_ENROLL_SECRET_CHARS = 16


@checks.register(checks.Tags.security)
def check_security_settings(app_configs=None, **kwargs):
    """A bad rate would otherwise be a 500 on the first request; a short secret is guessable."""
    from reports.throttling import parse_rate

    errors = []
    for name in ("INVENTORY_THROTTLE_UPLOAD", "INVENTORY_THROTTLE_READ", "INVENTORY_THROTTLE_ENROLL",
                 "INVENTORY_THROTTLE_AUTH_FAILURES"):
        try:
            parse_rate(getattr(settings, name))
        except ValueError as exc:
            errors.append(checks.Error(f"{name}: {exc}", hint="Use e.g. 120/min, 10/s, 1000/hour or off.",
                                       id="reports.E009"))
    for secret in settings.INVENTORY_ENROLL_SECRETS:
        if len(secret) < MIN_ENROLL_SECRET_CHARS:
            errors.append(checks.Error(
                f"An INVENTORY_ENROLL_SECRET entry is shorter than {MIN_ENROLL_SECRET_CHARS} characters.",
                hint='Generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"',
                id="reports.E010",
            ))
    if settings.INVENTORY_LOGIN_FAILURE_LIMIT < 0 or settings.INVENTORY_LOGIN_COOLOFF_MINUTES < 1:
        errors.append(checks.Error(
            "INVENTORY_LOGIN_FAILURE_LIMIT must be 0 (no lockout) or more, and "
            "INVENTORY_LOGIN_COOLOFF_MINUTES at least 1.",
            hint="The defaults are 10 failed sign-ins per address, locked for 15 minutes after the last.",
            id="reports.E020",
        ))
    return errors
