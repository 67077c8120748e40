#!/usr/bin/env python3
"""The TRL-integration tests at heal-hf's version floors, in a second small environment.

    python3 .ci/floors.py [pytest options]

Builds (or reuses) a virtual environment in .venv-floors (HEAL_FLOORS_VENV to choose) the way
dev.py builds .venv, with every package of .ci/floors.txt pinned at its floor, then runs
tests/test_trl.py, tests/test_trl_generators.py and tests/test_train.py there. Before anything
is installed it checks that setup.cfg's floors equal .ci/floors.txt, so the two cannot drift.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOORS = ROOT / ".ci" / "floors.txt"
TESTS = ("tests/test_trl.py", "tests/test_trl_generators.py", "tests/test_train.py")
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$")
_FLOOR = re.compile(r"^([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)")


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def floors() -> dict[str, str]:
    """Package -> floor version, from .ci/floors.txt."""
    pins = {}
    for line in FLOORS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = _PIN.match(line)
            if not match:
                raise SystemExit(f"floors.py: {FLOORS}: {line!r} is not NAME==VERSION")
            pins[_key(match[1])] = match[2]
    return pins


def check_setup_cfg(pins: dict[str, str]) -> None:
    """setup.cfg's `NAME>=X` for each pinned package must say X = its floor."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    declared = {}
    for line in config["options"]["install_requires"].splitlines():
        match = _FLOOR.match(line.strip())
        if match:
            declared[_key(match[1])] = match[2]
    wrong = [f"{name}>={declared.get(name, '(none)')} but .ci/floors.txt says {version}"
             for name, version in pins.items() if declared.get(name) != version]
    if wrong:
        raise SystemExit("floors.py: setup.cfg's floors differ from .ci/floors.txt: " + "; ".join(wrong))


def main(argv: list[str]) -> int:
    pins = floors()
    check_setup_cfg(pins)
    venv = Path(os.environ.get("HEAL_FLOORS_VENV", ROOT / ".venv-floors"))
    # dev.py builds the environment; pip applies the floors through PIP_CONSTRAINT.
    os.environ.update(HEAL_VENV=str(venv), PIP_CONSTRAINT=str(FLOORS))
    sys.path.insert(0, str(ROOT))
    import dev

    stamp = venv / ".heal-hf-floors"
    want = hashlib.sha256(FLOORS.read_bytes()).hexdigest()
    if not (stamp.exists() and stamp.read_text().strip() == want):
        dev.STAMP.unlink(missing_ok=True)  # new floors: reinstall, even if setup.cfg is unchanged
    dev.ensure_env()
    stamp.write_text(want)
    python = str(dev._bin("python"))
    listed = subprocess.run([python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout
    installed = {_key(n): v for n, v in (line.split("==", 1) for line in listed.splitlines() if "==" in line)}
    off = [f"{name} {installed.get(name, 'missing')} (floor {version})"
           for name, version in pins.items() if installed.get(name) != version]
    if off:
        raise SystemExit(f"floors.py: {venv} does not hold the floors: {', '.join(off)}")
    print("floors: " + ", ".join(f"{name} {version}" for name, version in pins.items()), flush=True)
    env = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
    pytest = [python, "-m", "pytest", "-q", "--disable-warnings", "-p", "no:cacheprovider"]
    return subprocess.call([*pytest, *TESTS, *argv], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
