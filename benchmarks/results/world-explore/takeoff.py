"""When RL finds trying: the step at which each run's training rollouts start to try and check.

    python benchmarks/results/world-explore/takeoff.py FOLDER [FOLDER ...] [--level 0.3] [--window 10]

For every `heal-hf replicate` run under the folders (`runs/FAMILY/seedN/ARM/metrics.json`, kept where the runs
ran; the committed folders hold only their summaries), the target rollouts' try/check share per logged step
(`heal/try_check/target`): its mean over the first `--window` steps, the first step at which its running mean
over `--window` steps reaches `--level` (the take-off), and its mean over the last 40 steps. Prints one
markdown table row per run: whether GRPO-32 finds the behaviour later than GRPO-1K is what 6b turns on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

KEY = "heal/try_check/target"


def shares(metrics: Path) -> list[tuple[int, float]]:
    """(step, target try/check share) of one run's logged training steps."""
    history = json.loads(metrics.read_text())["history"]
    return [(e["step"], e[KEY]) for e in history if KEY in e]


def takeoff(points: list[tuple[int, float]], level: float, window: int) -> int | None:
    """The first step whose running mean share over `window` logged steps reaches `level` (None: never)."""
    for i in range(len(points)):
        recent = [s for _, s in points[max(0, i - window + 1): i + 1]]
        if statistics.mean(recent) >= level:
            return points[i][0]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="heal-hf replicate output folders")
    parser.add_argument("--level", type=float, default=0.3, help="share that counts as found (default 0.3)")
    parser.add_argument("--window", type=int, default=10, help="logged steps in the running mean (default 10)")
    args = parser.parse_args(argv)
    runs = sorted(p for folder in args.folders for p in Path(folder).glob("runs/*/seed*/*/metrics.json"))
    if not runs:
        raise SystemExit(f"no runs/FAMILY/seedN/ARM/metrics.json under {args.folders}: point at heal-hf replicate folders")
    print(f"| folder | family | seed | arm | share, first {args.window} steps | take-off step (share >= {args.level}) "
          "| share, last 40 steps |\n|---|---|---|---|---|---|---|")
    for path in runs:
        points = shares(path)
        if not points:
            continue
        arm, seed, family = path.parts[-2], path.parts[-3], path.parts[-4]
        first = statistics.mean(s for _, s in points[: args.window])
        last = statistics.mean(s for _, s in points[-40:])
        step = takeoff(points, args.level, args.window)
        print(f"| {path.parents[4].name} | {family} | {seed.removeprefix('seed')} | {arm} | {first:.3f} | "
              f"{'never' if step is None else step} | {last:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
