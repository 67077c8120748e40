"""The README's Python blocks run as written, offline; its command table is the CLI's."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from heal_hf.cli import COMMANDS

README = Path(__file__).resolve().parent.parent / "README.md"
SKIP_MARKER = "not run by tests/test_readme.py"
"""A block whose text holds this (in a comment saying why) needs the Hub or a network."""
TRAINS = ("trainer.train()",)


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def block_id(block: str) -> str:
    names = [name for name in ("HEALGRPOTrainer", "GRPOTrainer", "load_dataset") if name in block]
    return names[0] if names else block.split("\n", 1)[0][:30]


BLOCKS = python_blocks()
RUN = [b for b in BLOCKS if SKIP_MARKER not in b]


def test_the_readme_is_a_product_page_whose_blocks_are_all_accounted_for():
    lines = README.read_text().splitlines()
    assert len(lines) <= 210, f"README.md has {len(lines)} lines; move detail to docs/"
    assert "python3 dev.py demo" in README.read_text() and "python3 dev.py test" in README.read_text()
    # The quickstart and the drop-in run; only blocks marked as needing the Hub do not.
    assert [block_id(b) for b in RUN] == ["HEALGRPOTrainer", "GRPOTrainer"], [block_id(b) for b in RUN]
    assert len(BLOCKS) - len(RUN) == 1
    quickstart = RUN[0]
    assert len(quickstart.strip().splitlines()) <= 20


def test_the_command_table_lists_every_heal_hf_command():
    table = set(re.findall(r"^\| `heal-hf ([a-z-]+)` \|", README.read_text(), flags=re.M))
    assert table == {name for name, *_ in COMMANDS}


@pytest.mark.parametrize("block", [pytest.param(b, id=block_id(b), marks=[pytest.mark.slow] if any(
    t in b for t in TRAINS) else []) for b in RUN])
def test_the_readme_block_runs_as_written(block, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": str(README.parent)}
    (tmp_path / "block.py").write_text(block)
    done = subprocess.run([sys.executable, "block.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]


PAGES = [README, *sorted((README.parent / "docs").glob("*.md")), README.parent / "benchmarks" / "README.md"]
PENDING: set[str] = set()
"""Pages being written beside this one; drop them from here once they land."""


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(README.parent).as_posix())
def test_every_relative_link_and_anchor_resolves(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)  # links inside code blocks are code
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if file.relative_to(README.parent).as_posix() in PENDING:
            continue
        assert file.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", re.sub(r"^```.*?^```", "", file.read_text(), flags=re.S | re.M),
                                  flags=re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: no heading #{anchor} in {file.name}"
