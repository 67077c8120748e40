#!/usr/bin/env python3
"""Set up (or reuse) the project's virtual environment, then run the main job or the tests.

    python3 dev.py demo [heal-hf demo options]   the few-shot HEAL demo on the bundled toy
    python3 dev.py test [pytest options]         ruff, then the test suite (what CI runs)
    python3 dev.py setup                         only create / update the environment

Needs nothing but Python 3.11+ and the package registries. The environment lives in
.venv (override with HEAL_VENV) and is reinstalled only when setup.cfg or
pyproject.toml change. torch is installed first as `torch==2.13.0` (override with
HEAL_TORCH_SPEC, e.g. HEAL_TORCH_SPEC=torch for your platform's default build), so
the package install keeps it instead of pulling another build.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("HEAL_VENV", ROOT / ".venv"))
STAMP = VENV / ".heal-hf-installed"
TORCH_SPEC = os.environ.get("HEAL_TORCH_SPEC", "torch==2.13.0")


def _bin(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


# pip's notes about index locations this machine's pip config names but that do not exist: noise, not problems.
_PIP_NOISE = re.compile(r"^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$")


def _run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def _step(what: str, cmd: list[str], log: Path) -> None:
    """Run one set-up step quietly: one line of progress; its output goes to `log`, shown whole if it fails."""
    print(f"  {what} ...", end="", flush=True)
    started = time.monotonic()
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(str(c) for c in cmd)}\n")
        f.flush()
        code = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        print(" failed", flush=True)
        sys.stderr.write(log.read_text())
        raise SystemExit(f"dev.py: `{' '.join(str(c) for c in cmd)}` failed (exit {code}); its output is above and in {log}")
    print(f" done ({time.monotonic() - started:.0f} s)", flush=True)


def ensure_env() -> None:
    digest = hashlib.sha256()
    for name in ("setup.cfg", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    digest.update((TORCH_SPEC + sys.version).encode())
    want = digest.hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == want and _bin("heal-hf").exists():
        return
    print(f"setting up {VENV} (once; the full log goes to {VENV / 'setup.log'})", flush=True)
    if not _bin("python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    log = VENV / "setup.log"
    log.write_text("")
    py = _bin("python")
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    _step("pip", [*pip, "--upgrade", "pip"], log)
    _step(TORCH_SPEC, [*pip, TORCH_SPEC], log)
    _step("heal-hf and its dependencies (editable, [dev])", [*pip, "-e", f"{ROOT}[dev]"], log)
    # What pip or the build still warns about (not the config's missing index locations) is worth a look.
    notes = [line for line in log.read_text().splitlines()
             if line.startswith(("WARNING", "ERROR", "DEPRECATION")) and not _PIP_NOISE.match(line)]
    for line in notes:
        print(f"  {line}", flush=True)
    STAMP.write_text(want)


def ensure_chromium() -> None:
    """The browser tests drive Debian's chromium; install it when we can (root + apt)."""
    if shutil.which("chromium") or os.name == "nt":
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            _run(["apt-get", "update", "-qq"], env=env)
            _run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError:
            print("! could not install chromium; the browser test will be skipped (and fail under CI=true)", flush=True)
    else:
        print("! chromium is not installed (apt-get install chromium); the browser test will be skipped "
              "(and fail under CI=true)", flush=True)


def lint(root: Path = ROOT) -> int:
    """ruff over the repository (its settings are in pyproject.toml): one line when clean, else the findings."""
    done = subprocess.run([str(_bin("ruff")), "check", "--output-format", "concise", "."], cwd=root,
                          capture_output=True, text=True)
    if done.returncode == 0:
        print("  ruff: all checks passed", flush=True)
        return 0
    sys.stdout.write(done.stdout + done.stderr)
    print(f"dev.py: ruff found problems (above; `{_bin('ruff')} check --fix .` fixes some); tests not run", flush=True)
    return done.returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        print(__doc__)
        return 2
    ensure_env()
    command, rest = argv[0], argv[1:]
    if command == "setup":
        return 0
    if command == "demo":
        return subprocess.call([str(_bin("heal-hf")), "demo", *rest])
    ensure_chromium()
    return lint() or subprocess.call([str(_bin("python")), "-m", "pytest", "-q", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
