"""schemathesis hooks for reports/tests/schemathesis.toml: the two rules JSON Schema cannot state.

A snapshot's ``collected_at`` must lie between 2000-01-01 and five minutes
past the server's clock (reports/payload.py, documented in the schema's
description). JSON Schema has no "now", so generated date-times are kept in
a fixed window that is always valid; fixed, so every run generates the same
cases. A process search's range (``/api/processes/``: ``since`` not after
``until``, at most ``forms.PROCESS_RANGE_MAX`` apart, said in the parameters'
descriptions) compares two parameters, which JSON Schema cannot; generated
queries are moved into it (``map_query``), and the tests in
test_process_history.py prove the 400 outside it. Every other rule is in the
schema itself.
"""

from __future__ import annotations

import datetime as dt

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format("date-time", st.datetimes(
    min_value=dt.datetime(2000, 1, 1, 0, 5), max_value=dt.datetime(2025, 12, 31),
    timezones=st.just(dt.timezone.utc),
).map(lambda moment: moment.isoformat()))


PROCESS_RANGE_MAX = dt.timedelta(days=31)  # reports.forms.PROCESS_RANGE_MAX (Django is not set up here)


@schemathesis.hook
def map_query(ctx, query):
    """/api/processes/: a generated since/until pair put in order and at most PROCESS_RANGE_MAX apart."""
    if ctx.operation is None or ctx.operation.path != "/api/processes/" or not isinstance(query, dict):
        return query
    try:
        since, until = dt.datetime.fromisoformat(query["since"]), dt.datetime.fromisoformat(query["until"])
        if since > until:
            since, until = until, since
        until = min(until, since + PROCESS_RANGE_MAX)
    except (KeyError, TypeError, ValueError):  # absent or not a time: the schema's own cases
        return query
    return {**query, "since": since.isoformat(), "until": until.isoformat()}
