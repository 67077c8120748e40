"""The toy world's pre-registered criteria (issue 11), per target family, from a `heal-hf replicate` folder.

    python benchmarks/criteria.py OUT [--pool bundled] [--write]

OUT is a replication run with at least the arms grpo-32 and grpo-1k (e.g.
`heal-hf replicate --arms grpo-32 grpo-1k --num-iterations 2 ... --output-dir OUT`).
A family meets the criteria when:

1. the general domain is alive: the general problems the hybrid arms mix in (the
   selection `heal-hf train` makes from the pool for 32 target rows, per seed) have,
   at step 0, a mean token entropy at least the target rollouts' (the larger of the
   base model's held-out samples and the GRPO runs' first training step), and a
   sampled pass rate in [0.60, 0.95] (the pool holds the step-0 policy's samples);
2. the base model's sampled pass rate on the held-out problems is in [0.15, 0.60];
3. RL works with data: GRPO-1K's held-out sampled accuracy beats the base's by >= 0.10;
4. few-shot collapse: GRPO-32's train-time target entropy retention (last 10% of
   steps vs step 0) is <= 0.6, and GRPO-1K beats GRPO-32 by >= 0.05.

Accuracies are sampled accuracies at the training temperature (T = 1) over
`eval_samples` samples per problem, seed means. Prints a markdown table and, with
`--write`, writes it to OUT/criteria.md and the numbers to OUT/criteria.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

GENERAL_PASS = (0.60, 0.95)
BASE_PASS = (0.15, 0.60)
RL_GAIN = 0.10
COLLAPSE_RETENTION = 0.6
FEW_SHOT_GAP = 0.05
TARGET_ROWS = 32


def selected_general(pool_source: str, seeds: list[int], tokenizer_dir: str | None) -> dict[int, dict[str, float]]:
    """Per seed: mean token entropy (nats) and sampled pass rate of the general problems the hybrid arms mix in."""
    from transformers import AutoTokenizer

    from heal_hf.app.train_options import TrainSettings
    from heal_hf.data.pool import load_pool, tokenizer_fingerprint
    from heal_hf.data.processors import HybridSelection
    from heal_hf.toy import TOY_REASONER_PATH

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or TOY_REASONER_PATH)
    pool = load_pool(pool_source, tokenizer_hash=tokenizer_fingerprint(tokenizer))
    out = {}
    for seed in seeds:
        # What heal_hf.app.train.train does for a 32-row target set (n_general None: 3 x the target rows).
        selection = HybridSelection(pool, redundancy=TrainSettings.selection_redundancy, seed=seed)
        picks = pool.select(selection.select(min(3 * TARGET_ROWS, len(pool))).indices.tolist())
        tokens = [h for row in picks["token_entropies"] for e in row for h in e]
        out[seed] = {"mean_token_entropy": sum(tokens) / len(tokens),
                     "sampled_pass_rate": statistics.mean(picks["pass_rate"])}
    tokens = [h for row in pool["token_entropies"] for e in row for h in e]
    out["pool"] = {"mean_token_entropy": sum(tokens) / len(tokens), "sampled_pass_rate": statistics.mean(pool["pass_rate"])}
    return out


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def criteria(results: dict, general: dict) -> list[dict]:
    """One row per family: the numbers and which criteria hold."""
    rows = []
    seeds = results["settings"]["seeds"]
    gen_entropy = _mean([general[s]["mean_token_entropy"] for s in seeds])
    gen_pass = _mean([general[s]["sampled_pass_rate"] for s in seeds])
    for family in results["settings"]["families"]:
        runs = {arm: [r for r in results["runs"] if r["family"] == family and r["arm"] == arm]
                for arm in ("grpo-32", "grpo-1k")}
        base = results["base"][family]
        step0 = [r["entropy_curve"][0][1] for arm in runs for r in runs[arm] if r["entropy_curve"]]
        target_entropy = max(base["mean_token_entropy"], _mean(step0))
        acc32 = _mean([r["sample_accuracy"] for r in runs["grpo-32"]])
        acc1k = _mean([r["sample_accuracy"] for r in runs["grpo-1k"]])
        retention = _mean([r["train_entropy_retention"] for r in runs["grpo-32"]])
        row = {
            "family": family, "seeds": {arm: [r["seed"] for r in rs] for arm, rs in runs.items()},
            "general_entropy": gen_entropy, "general_pass": gen_pass,
            "target_entropy_base": base["mean_token_entropy"], "target_entropy_step0": _mean(step0),
            "base_pass": base["sample_accuracy"], "grpo_1k": acc1k, "grpo_32": acc32, "grpo_32_retention": retention,
        }
        row["alive_entropy"] = gen_entropy >= target_entropy
        row["alive_pass"] = GENERAL_PASS[0] <= gen_pass <= GENERAL_PASS[1]
        row["alive"] = row["alive_entropy"] and row["alive_pass"]
        row["base_in_range"] = BASE_PASS[0] <= row["base_pass"] <= BASE_PASS[1]
        row["rl_works"] = acc1k - row["base_pass"] >= RL_GAIN
        row["collapse"] = retention <= COLLAPSE_RETENTION and acc1k - acc32 >= FEW_SHOT_GAP
        row["meets_all"] = all(row[k] for k in ("alive", "base_in_range", "rl_works", "collapse"))
        rows.append(row)
    return rows


def table(rows: list[dict], general: dict, results: dict) -> str:
    yes = {True: "yes", False: "**no**"}
    seeds = results["settings"]["seeds"]
    g = results["grpo"]
    lines = [
        "| family | general alive: entropy general >= target (base, step 0); general pass in [0.60, 0.95] "
        "| base pass in [0.15, 0.60] "
        "| RL works: GRPO-1K - base >= 0.10 | collapse: GRPO-32 retention <= 0.6, GRPO-1K - GRPO-32 >= 0.05 | all |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {yes[r['alive']]}: entropy {yes[r['alive_entropy']]} {r['general_entropy']:.3f} >= "
            f"({r['target_entropy_base']:.3f}, {r['target_entropy_step0']:.3f}) nats; pass {yes[r['alive_pass']]} "
            f"{r['general_pass']:.1%} "
            f"| {yes[r['base_in_range']]}: {r['base_pass']:.3f} "
            f"| {yes[r['rl_works']]}: {r['grpo_1k']:.3f} - {r['base_pass']:.3f} = {r['grpo_1k'] - r['base_pass']:+.3f} "
            f"| {yes[r['collapse']]}: {r['grpo_32_retention']:.3f}; {r['grpo_1k']:.3f} - {r['grpo_32']:.3f} = "
            f"{r['grpo_1k'] - r['grpo_32']:+.3f} | {yes[r['meets_all']]} |"
        )
    per_seed = ", ".join(f"seed {s}: {general[s]['mean_token_entropy']:.3f} nats, {general[s]['sampled_pass_rate']:.1%}"
                         for s in seeds)
    lines += [
        "",
        f"Held-out {results['settings'].get('eval_split', 'test')} problems: {results['settings']['eval_problems']} per "
        f"family, {results['settings']['eval_samples']} samples each at T = {g['temperature']}; sampled accuracy, mean "
        f"over seeds {seeds}. GRPO: {g['max_steps']} steps, lr {g['learning_rate']}, num_iterations "
        f"{g.get('num_iterations', 1)}, {g['per_device_train_batch_size'] // g['num_generations']} prompts x "
        f"{g['num_generations']} completions of <= {g['max_completion_length']} tokens.",
        f"General domain: the {3 * TARGET_ROWS} problems the hybrid selection picks per seed ({per_seed}); "
        f"whole pool {general['pool']['mean_token_entropy']:.3f} nats, {general['pool']['sampled_pass_rate']:.1%}.",
        f"Families meeting every criterion: {', '.join(r['family'] for r in rows if r['meets_all']) or 'none'}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a heal-hf replicate output folder (with results.json)")
    parser.add_argument("--pool", default=None, help="general-entropy pool (default: the replication's, i.e. bundled)")
    parser.add_argument("--write", action="store_true", help="write criteria.md and criteria.json into OUT")
    args = parser.parse_args(argv)
    out = Path(args.out)
    results = json.loads((out / "results.json").read_text())
    settings = results["settings"]
    general = selected_general(args.pool or settings["pool"], settings["seeds"], settings.get("model"))
    rows = criteria(results, general)
    text = table(rows, general, results)
    print(text)
    if args.write:
        (out / "criteria.md").write_text(text + "\n")
        (out / "criteria.json").write_text(json.dumps({"families": rows, "general": {str(k): v for k, v in general.items()}},
                                                      indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
