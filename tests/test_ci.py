"""The test harness itself: under CI a missing tool fails the run instead of skipping tests; ruff runs first."""

import importlib.util
import shutil
import sys
from pathlib import Path

import conftest
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_tool_skips_here_and_fails_under_ci(monkeypatch):
    conftest.require(True, "present")  # nothing happens when the tool is there
    monkeypatch.setattr(conftest, "UNDER_CI", False)
    with pytest.raises(pytest.skip.Exception, match="no chromium"):
        conftest.require(False, "no chromium")
    monkeypatch.setattr(conftest, "UNDER_CI", True)
    with pytest.raises(pytest.fail.Exception, match="no chromium; CI=true, so this fails instead of skipping"):
        conftest.require(False, "no chromium")


def test_dev_test_runs_ruff_first_one_line_when_clean_and_stops_on_findings(monkeypatch, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    monkeypatch.setattr(dev, "VENV", Path(sys.executable).parent.parent)  # this test's environment, with ruff
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")  # the repository's ruff settings
    (tmp_path / "clean.py").write_text('"""A module."""\n\nimport os\n\nprint(os.sep)\n')
    assert dev.lint(tmp_path) == 0
    assert capsys.readouterr().out == "  ruff: all checks passed\n"
    (tmp_path / "unused.py").write_text("import sys\nimport os\n\nprint(os.sep)\n")
    assert dev.lint(tmp_path) != 0
    printed = capsys.readouterr().out
    assert "unused.py:1:1: I001" in printed and "unused.py:1:8: F401" in printed and "tests not run" in printed
    assert dev.lint(ROOT) == 0, capsys.readouterr().out  # and this repository passes it
