"""Skip outside CI, fail under CI=true: a test that cannot run its prerequisite in CI is a failure."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where skipping would hide a broken setup."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Stop the test when ``condition`` is false: skip with ``reason`` locally, fail under CI."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"prerequisite missing under CI: {reason}")
    pytest.skip(reason)
