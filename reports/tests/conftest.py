"""Fixtures of the server's tests: tokens, a reader, signed-in clients, a browser.

The data folder, the live servers and the small file system are in the
repository's root ``conftest.py`` (the agent's tests use them too); plain
helper functions are in ``reports/tests/helpers.py``.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from reports import services
from reports.tests.browser import chromium
from reports.tests.helpers import api_client


@pytest.fixture
def agent_token(db) -> str:
    """The plaintext of a fresh agent token, as an operator hands it to an agent."""
    return services.agent_token_create(name="test")[1]


@pytest.fixture
def reader(db):
    """A plain user with no staff rights: what the read API needs and no more."""
    return get_user_model().objects.create_user("reader", password="pw-for-tests-only")


@pytest.fixture
def reader_token(reader) -> str:
    """The plaintext of an API token of ``reader``."""
    return services.api_token_create(user=reader)[1]


@pytest.fixture
def reader_client(reader_token):
    """An API client from 127.0.0.1 carrying ``reader``'s token."""
    return api_client(reader_token, ip="127.0.0.1")


@pytest.fixture
def browser():
    """A headless Chromium (skips without one outside CI, fails under CI=true)."""
    with chromium() as driver:
        yield driver


@pytest.fixture
def signed_in(client, django_user_model):
    """Django's test client signed in as a non-staff user, for the pages."""
    client.force_login(django_user_model.objects.create_user("ops", password="a-long-test-password"))
    return client
