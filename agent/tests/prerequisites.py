"""The agent tests' prerequisites: the CI rule (relevo_testing.prerequisites) and the server's live fixture."""

from __future__ import annotations

import pytest

from relevo_testing.prerequisites import require  # noqa: F401 - the agent tests import it from here


def live_server(request: pytest.FixtureRequest):
    """The repo-root ``live_relevo`` fixture (a real gunicorn), or skip/fail when it is not there."""
    try:
        return request.getfixturevalue("live_relevo")
    except pytest.FixtureLookupError:
        require(False, "the live_relevo fixture (repo-root conftest.py, from the server) is not available")
