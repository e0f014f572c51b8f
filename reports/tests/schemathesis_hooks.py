"""schemathesis hooks for reports/tests/schemathesis.toml: the one rule JSON Schema cannot state.

A snapshot's ``collected_at`` must lie between 2000-01-01 and five minutes
past the server's clock (reports/payload.py, documented in the schema's
description). JSON Schema has no "now", so generated date-times are kept in
a fixed window that is always valid; fixed, so every run generates the same
cases. Every other rule is in the schema itself.
"""

from __future__ import annotations

import datetime as dt

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format("date-time", st.datetimes(
    min_value=dt.datetime(2000, 1, 1, 0, 5), max_value=dt.datetime(2025, 12, 31),
    timezones=st.just(dt.timezone.utc),
).map(lambda moment: moment.isoformat()))
