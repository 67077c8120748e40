"""Run command lines a few at a time, each logging to its own file: the benchmarks' shared job queue.

    from jobs import run_jobs
    run_jobs([("name", ["python", "-m", "heal_hf.cli", ...]), ...], workers=2, log_dir=Path("logs"))

A job's log is `log_dir/NAME.log`; one line per finished job goes to stdout. Commands that
resume (every `heal-hf replicate` does) make the whole queue resumable: run it again.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def run_jobs(jobs: list[tuple[str, list[str]]], workers: int, log_dir: Path) -> dict[str, int]:
    """Run `jobs` (name, command) with at most `workers` at once; return each name's exit code."""
    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running, codes = list(jobs), [], {}
    while pending or running:
        while pending and len(running) < workers:
            name, command = pending.pop(0)
            log = open(log_dir / f"{name}.log", "w")
            running.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(2)
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                running.remove(item)
                log.close()
                codes[name] = proc.returncode
                print(f"{time.strftime('%H:%M:%S')} {name} exit {proc.returncode} "
                      f"({len(codes)}/{len(codes) + len(running) + len(pending)})", flush=True)
    return codes
