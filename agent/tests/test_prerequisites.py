"""A missing prerequisite skips locally but fails under CI=true (a skipped test in CI is a failure)."""

import pytest

from .prerequisites import require


def test_missing_prerequisite_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y wine64"):
        require(False, "Wine is not installed: apt-get install -y wine64")


def test_missing_prerequisite_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="wine64"):
        require(False, "Wine is not installed: apt-get install -y wine64")


def test_present_prerequisite_does_nothing(monkeypatch):
    monkeypatch.setenv("CI", "true")
    require(True, "unused")
