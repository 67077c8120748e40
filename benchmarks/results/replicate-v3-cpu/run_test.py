"""Issue 19, step 4: every arm on test with the settings tuned on validation (tuning/choice.json).

    python benchmarks/results/replicate-v3-cpu/run_test.py [--workers 2] [--print]

Into this folder, beside step 2's GRPO runs (reused: the recipe is the folder's, checked by replicate):
1. HEAL-32 and the strongest baseline (the entropy mask, tuned), seeds 0-4, three families;
2. the other arms (hybrid-32, eda-32, clip-higher-32, entropy-bonus-32, heal-mask-32), seeds 0-2;
3. the report over every arm (results.json with intervals, results.md, curves.png).
HEAL's chosen options apply to every arm that uses EDA or mixes general data (ablations included),
the mask's quantile to both mask arms. Resumable: run it again. `--print` shows the commands only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAMILIES = ("sort_digits", "digit_sum", "countdown")
OTHERS = ("hybrid-32", "eda-32", "clip-higher-32", "entropy-bonus-32", "heal-mask-32")


def tuned() -> tuple[str, list[str]]:
    """HEAL's arm (heal-32, or heal-32-pool when the pool reference won) and the tuned replicate options."""
    choice = json.loads((HERE / "tuning" / "choice.json").read_text())
    if choice.get("h7_pending") or not choice.get("mask"):
        sys.exit("tuning/choice.json is not final: finish tuning/run_tuning.py first")
    arm, options = choice["configs"][choice["heal"]]
    mask_options = choice["configs"][choice["mask"]][1]
    flags = [x for kv in {**options, **mask_options}.items() for x in kv]
    return arm, flags


def commands(workers: int) -> list[list[str]]:
    heal_arm, flags = tuned()
    base = [sys.executable, "-m", "heal_hf.cli", "replicate", "--families", *FAMILIES, "--workers", str(workers),
            "--output-dir", str(HERE), *flags]
    everything = ("grpo-32", "grpo-1k", heal_arm, "entropy-mask-32", *OTHERS)
    return [
        base + ["--arms", heal_arm, "entropy-mask-32", "--seeds", "0", "1", "2", "3", "4", "--no-report"],
        base + ["--arms", *OTHERS, "--seeds", "0", "1", "2", "--no-report"],
        base + ["--arms", *everything, "--seeds", "0", "1", "2", "3", "4", "--report-only"],
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--print", action="store_true")
    args = parser.parse_args()
    for cmd in commands(args.workers):
        print(" ".join(cmd[1:]), flush=True)
        if not args.print:
            subprocess.run(cmd, check=True)
