"""Writes: everything that changes stored state goes through these functions.

This package's public surface is what this module re-exports; callers import
``reports.services`` and call ``services.snapshot_ingest(...)`` without
knowing which module holds it. The modules are one sub-domain each:

- ``ingest``: storing an upload in its day file and the database, once
  (``snapshot_ingest``), and the columns it derives (``snapshot_summary``).
- ``tokens``: agent and API tokens.
- ``lifecycle``: prune, reindex, export and compact, one day file at a time.
- ``hosts``: what an operator changes on a host (clearing an identity conflict).

Names starting with ``_`` stay in their module; tests that replace one patch
that module (``reports.services.ingest``).
"""

from reports.services.hosts import identity_conflict_clear
from reports.services.ingest import (
    HOST_COLUMNS,
    SUMMARY_COLUMNS,
    DayFileFull,
    IngestResult,
    SnapshotOfAnotherHost,
    host_columns,
    snapshot_day,
    snapshot_ingest,
    snapshot_summary,
)
from reports.services.lifecycle import (
    DayAction,
    DayChange,
    HistoryPruned,
    compact_cutoff,
    ARCHIVE_LOOKBACK_DAYS,
    day_archive,
    day_compact,
    day_export,
    day_prune,
    day_reindex,
    history_prune,
)
from reports.services.tokens import (
    agent_token_create,
    agent_token_enroll,
    agent_token_revoke,
    agent_tokens_revoke_for_host,
    api_token_create,
    api_token_revoke,
    token_touch,
)

__all__ = [
    "HOST_COLUMNS", "SUMMARY_COLUMNS", "DayAction", "DayChange", "DayFileFull", "HistoryPruned", "IngestResult", "SnapshotOfAnotherHost",
    "agent_token_create", "agent_token_enroll", "agent_token_revoke", "agent_tokens_revoke_for_host",
    "api_token_create", "api_token_revoke", "identity_conflict_clear", "compact_cutoff", "ARCHIVE_LOOKBACK_DAYS", "day_archive", "day_compact", "day_export", "day_prune", "day_reindex", "history_prune", "host_columns",
    "snapshot_day", "snapshot_ingest", "snapshot_summary", "token_touch",
]
