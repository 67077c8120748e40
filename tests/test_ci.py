"""The test harness itself: under CI a missing tool fails the run instead of skipping tests."""

import conftest
import pytest


def test_a_missing_tool_skips_here_and_fails_under_ci(monkeypatch):
    conftest.require(True, "present")  # nothing happens when the tool is there
    monkeypatch.setattr(conftest, "UNDER_CI", False)
    with pytest.raises(pytest.skip.Exception, match="no chromium"):
        conftest.require(False, "no chromium")
    monkeypatch.setattr(conftest, "UNDER_CI", True)
    with pytest.raises(pytest.fail.Exception, match="no chromium; CI=true, so this fails instead of skipping"):
        conftest.require(False, "no chromium")
