"""Run the recipe candidates of preregistration.md on validation, then apply its rule.

    python benchmarks/results/replicate-v3-cpu/recipe/run_recipe.py [--workers 2] [--choose-only]

(The runs on record were made with `--warmup-steps W` before the option became `--warmup-ratio`,
a share of the 400 steps: 40 steps = 0.1, the same schedule.) Resumable: every run is a `heal-hf replicate` run folder, kept once finished. Writes
choice.json and choice.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from heal_hf.experiments.replicate import print_finished, run_commands

HERE = Path(__file__).resolve().parent

FAMILIES = ("sort_digits", "digit_sum", "countdown")
CANDIDATES = {  # name: (learning rate, warmup steps, schedule)
    "R1": (2e-4, 40, "linear"),
    "R2": (1e-4, 40, "linear"),
    "R3": (5e-5, 40, "linear"),
    "R4": (1e-4, 40, "constant_with_warmup"),
    "R0": (2e-4, 0, "linear"),
}
DIP, GAIN, TIE = 0.03, 0.10, 0.01


def jobs() -> list[tuple[str, str, str]]:
    grpo_1k = [(c, f, "grpo-1k") for c in CANDIDATES for f in FAMILIES]
    grpo_32 = [(c, f, "grpo-32") for c in CANDIDATES if c != "R0" for f in FAMILIES]
    return grpo_1k + grpo_32


def command(candidate: str, family: str, arm: str, report: bool = False) -> list[str]:
    lr, warmup, schedule = CANDIDATES[candidate]
    cmd = [sys.executable, "-m", "heal_hf.cli", "replicate", "--eval-split", "validation", "--seeds", "0",
           "--learning-rate", str(lr), "--warmup-ratio", str(warmup / 400), "--lr-scheduler-type", schedule,
           "--curve-problems", "200", "--output-dir", str(HERE / candidate)]
    if report:
        return cmd + ["--families", *FAMILIES, "--arms", "grpo-1k", "grpo-32", "--report-only"]
    return cmd + ["--families", family, "--arms", arm, "--no-report"]


def run_all(workers: int) -> None:
    run_commands([("-".join(job), command(*job)) for job in jobs()], workers, HERE / "logs", finished=print_finished)
    for c in CANDIDATES:
        subprocess.run(command(c, "", "", report=True), stdout=subprocess.DEVNULL, check=False)


def curve(candidate: str, family: str, arm: str) -> list[tuple[int, float]] | None:
    path = HERE / candidate / "runs" / family / "seed0" / arm / "replicate_run.json"
    return json.loads(path.read_text())["accuracy_curve"] if path.exists() else None


def choose() -> dict:
    table = {}
    for c in CANDIDATES:
        rows = {}
        for f in FAMILIES:
            points = curve(c, f, "grpo-1k")
            if points is None:
                continue
            base = points[0][1]
            dip = min(a - base for _, a in points[1:])
            gain = points[-1][1] - base
            rows[f] = {"base": base, "worst_dip": dip, "final_gain": gain,
                       "healthy": dip >= -DIP and gain >= GAIN,
                       "grpo_32": curve(c, f, "grpo-32")}
        if len(rows) == len(FAMILIES):
            table[c] = {"families": rows, "healthy_on": sum(r["healthy"] for r in rows.values()),
                        "mean_gain": sum(r["final_gain"] for r in rows.values()) / len(rows),
                        "worst_dip": min(r["worst_dip"] for r in rows.values())}
    if not table:
        return {"table": table, "chosen": None}
    most = max(t["healthy_on"] for t in table.values())
    pool = {c: t for c, t in table.items() if t["healthy_on"] == most}
    best = max(t["mean_gain"] for t in pool.values())
    tied = [c for c, t in pool.items() if t["mean_gain"] >= best - TIE]
    chosen = max(tied, key=lambda c: pool[c]["worst_dip"])
    return {"table": table, "chosen": chosen, "eligible_exists": most == len(FAMILIES),
            "recipe": dict(zip(("learning_rate", "warmup_steps", "lr_scheduler_type"), CANDIDATES[chosen]))}


def write_choice(result: dict) -> None:
    lines = ["# Recipe choice on validation (seed 0, 400 steps, 200 problems; rule: preregistration.md)", "",
             "| candidate | lr | warmup | schedule | family | base | worst dip | final gain | healthy |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c, t in result["table"].items():
        lr, w, s = CANDIDATES[c]
        for f, r in t["families"].items():
            lines.append(f"| {c} | {lr:g} | {w} | {s} | {f} | {r['base']:.3f} | {r['worst_dip']:+.3f} "
                         f"| {r['final_gain']:+.3f} | {'yes' if r['healthy'] else 'no'} |")
        lines.append(f"| {c} | | | | **all** | | {t['worst_dip']:+.3f} | {t['mean_gain']:+.3f} (mean) "
                     f"| {t['healthy_on']}/3 |")
    lines += ["", f"Chosen: **{result['chosen']}** {result.get('recipe', '')}"
              + ("" if result.get("eligible_exists") else " (no candidate was healthy on all three families)")]
    (HERE / "choice.md").write_text("\n".join(lines) + "\n")
    (HERE / "choice.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--choose-only", action="store_true")
    args = parser.parse_args()
    if not args.choose_only:
        run_all(args.workers)
    write_choice(choose())
