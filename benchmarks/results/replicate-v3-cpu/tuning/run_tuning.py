"""Tune HEAL-32's settings and the entropy mask's quantile on validation by the rule of
../tuning-preregistration.md, then write choice.json and choice.md beside this file.

    python benchmarks/results/replicate-v3-cpu/tuning/run_tuning.py [--workers 2] [--choose-only]

Every configuration is a `heal-hf replicate` folder here (H0 ... H7, M0.05 ... M0.9), one run
per family, seed 0, the chosen recipe (R3, replicate's default). Resumable: run it again.
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
TIE = 0.01
# config: (arm, {replicate option: value}); one factor moved from HEALConfig's defaults at a time.
HEAL_CONFIGS: dict[str, tuple[str, dict[str, str]]] = {
    "H0": ("heal-32", {}),
    "H1": ("heal-32", {"--eda-weight": "0.03"}),
    "H2": ("heal-32", {"--eda-weight": "0.3"}),
    "H3": ("heal-32", {"--target-fraction": "0.5"}),
    "H4": ("heal-32", {"--eda-estimator": "gaussian"}),
    "H5": ("heal-32", {"--eda-direction": "below"}),
    "H6": ("heal-32-pool", {}),
}
QUANTILES = ("0.05", "0.1", "0.2", "0.3", "0.4", "0.5", "0.7", "0.9")
MASK_CONFIGS = {f"M{q}": ("entropy-mask-32", {"--mask-quantile": q}) for q in QUANTILES}


def command(config: str, arm: str, options: dict[str, str], families: tuple[str, ...], report: bool) -> list[str]:
    cmd = [sys.executable, "-m", "heal_hf.cli", "replicate", "--eval-split", "validation", "--seeds", "0",
           "--arms", arm, "--families", *families, "--output-dir", str(HERE / config)]
    for flag, value in options.items():
        cmd += [flag, value]
    return cmd + (["--report-only"] if report else ["--no-report"])


def run(configs: dict[str, tuple[str, dict[str, str]]], workers: int) -> None:
    jobs = [(f"{c}-{f}", command(c, arm, opts, (f,), False)) for c, (arm, opts) in configs.items() for f in FAMILIES]
    run_commands(jobs, workers, HERE / "logs", finished=print_finished)
    for c, (arm, opts) in configs.items():
        subprocess.run(command(c, arm, opts, FAMILIES, True), stdout=subprocess.DEVNULL, check=False)


def score(config: str, arm: str) -> dict | None:
    """Sampled accuracy per family and its mean, or None until every family finished."""
    per = {}
    for f in FAMILIES:
        path = HERE / config / "runs" / f / "seed0" / arm / "replicate_run.json"
        if not path.exists():
            return None
        per[f] = json.loads(path.read_text())["sample_accuracy"]
    return {"families": per, "score": sum(per.values()) / len(per)}


def combined(scores: dict[str, dict]) -> tuple[str, dict[str, str]] | None:
    """H7: every single change that beat H0 by more than TIE, together (lambda at its better value)."""
    base = scores["H0"]["score"]
    winners = [c for c in ("H1", "H2", "H3", "H4", "H5", "H6") if scores[c]["score"] > base + TIE]
    if "H1" in winners and "H2" in winners:
        winners.remove("H1" if scores["H1"]["score"] < scores["H2"]["score"] else "H2")
    if len(winners) < 2:
        return None
    arm, options = "heal-32", {}
    for c in winners:
        c_arm, c_options = HEAL_CONFIGS[c]
        arm = "heal-32-pool" if c_arm == "heal-32-pool" else arm
        options.update(c_options)
    return arm, options


def changes(arm: str, options: dict[str, str]) -> int:
    return len(options) + (arm == "heal-32-pool")


def choose_heal(scores: dict[str, dict], configs: dict) -> str:
    best = max(s["score"] for s in scores.values())
    tied = [c for c, s in scores.items() if s["score"] >= best - TIE]
    return min(tied, key=lambda c: (changes(*configs[c]), c != "H0", -scores[c]["score"]))


def choose_mask(scores: dict[str, dict]) -> str:
    best = max(s["score"] for s in scores.values())
    tied = [c for c, s in scores.items() if s["score"] >= best - TIE]
    return min(tied, key=lambda c: (abs(float(c[1:]) - 0.2), -scores[c]["score"]))


def write_choice(result: dict) -> None:
    lines = ["# HEAL's settings and the mask's quantile, chosen on validation", "",
             "Seed 0, 400 steps, recipe R3, 200 validation problems x 4 samples; score = sampled accuracy "
             "(T = 1) averaged over the three families; rule: ../tuning-preregistration.md.", "",
             "| config | arm | options | " + " | ".join(FAMILIES) + " | score |", "|---|---|---|" + "---|" * 4]
    for c, s in result["scores"].items():
        arm, opts = result["configs"][c]
        cells = " | ".join(f"{s['families'][f]:.3f}" for f in FAMILIES)
        lines.append(f"| {c} | {arm} | {' '.join(f'{k} {v}' for k, v in opts.items()) or '(defaults)'} "
                     f"| {cells} | {s['score']:.3f} |")
    lines += ["", f"HEAL's choice: **{result['heal']}** {result['configs'].get(result['heal'])}",
              f"Mask's choice: **{result['mask']}** {result['configs'].get(result['mask'])}"]
    (HERE / "choice.md").write_text("\n".join(lines) + "\n")
    (HERE / "choice.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(lines))


def main(workers: int, choose_only: bool) -> None:
    configs = {**HEAL_CONFIGS, **MASK_CONFIGS}
    if not choose_only:
        run(configs, workers)
    scores = {c: s for c, (arm, _) in configs.items() if (s := score(c, arm)) is not None}
    if not all(c in scores for c in HEAL_CONFIGS):
        sys.exit(f"H0-H6 unfinished: {sorted(set(HEAL_CONFIGS) - set(scores))}; run again without --choose-only")
    h7 = combined(scores)
    if h7 is not None:
        configs["H7"] = h7
        if not choose_only:
            run({"H7": h7}, workers)
        if (s := score("H7", h7[0])) is not None:
            scores["H7"] = s
    heal_scores = {c: s for c, s in scores.items() if c.startswith("H")}
    mask_scores = {c: s for c, s in scores.items() if c.startswith("M")}
    write_choice({"configs": configs, "scores": scores, "heal": choose_heal(heal_scores, configs),
                  "mask": choose_mask(mask_scores) if len(mask_scores) == len(MASK_CONFIGS) else None,
                  "h7_pending": h7 is not None and "H7" not in scores})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--choose-only", action="store_true")
    args = parser.parse_args()
    main(args.workers, args.choose_only)
