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

With `--explore BASE.json` (what `benchmarks/results/world-explore/measure_base.py` writes for the
explore world's reasoner), the explore world's criteria 5-7 too
(`benchmarks/results/world-explore/criteria-preregistration.md`):

5. exploration headroom: the base's pass@8 - pass@1 on the test split (200 x 8) >= 0.20;
6. the behaviour matters: (a) GRPO-1K's held-out samples' try/check share over the base's on
   the same problems and sample count, minus 1, >= 0.50; (b) GRPO-32's < 0.50; (c) Pearson r
   >= 0.5 between GRPO-1K's accuracy gain and try/check share rise over its curve checkpoints
   (greedy, seed means; Spearman's too), or, where the greedy share is constant, the training
   rollouts' target share at the logged step nearest each checkpoint (said in the table);
7. the base tries in general more than in the target: the share of the pool's samples of the
   general problems the hybrid selection picks (seed 0) >= 2 x the target's (criterion 5's samples).

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
HEADROOM = 0.20
BEHAVIOUR_RISE = 0.50
BEHAVIOUR_R = 0.5
GENERAL_TRIES = 2.0


def selected_rows(pool, seed: int):
    """The general problems the hybrid arms mix in for a 32-row target set, as `heal_hf.app.train.train` selects
    them (n_general None: 3 x the target rows), as pool rows."""
    from heal_hf.app.train_options import TrainSettings
    from heal_hf.data.processors import HybridSelection

    selection = HybridSelection(pool, redundancy=TrainSettings.selection_redundancy, seed=seed)
    return pool.select(selection.select(min(3 * TARGET_ROWS, len(pool))).indices.tolist())


def mean_token_entropy(rows) -> float:
    """Mean token entropy (nats) over every stored response token of some pool rows."""
    tokens = [h for row in rows["token_entropies"] for e in row for h in e]
    return sum(tokens) / len(tokens)


def selected_general(pool_source: str, seeds: list[int], tokenizer_dir: str | None) -> dict[int, dict[str, float]]:
    """Per seed: mean token entropy (nats) and sampled pass rate of the general problems the hybrid arms mix in."""
    from transformers import AutoTokenizer

    from heal_hf.data.pool import load_pool, tokenizer_fingerprint
    from heal_hf.toy import TOY_REASONER_PATH

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or TOY_REASONER_PATH)
    pool = load_pool(pool_source, tokenizer_hash=tokenizer_fingerprint(tokenizer))
    out = {}
    for seed in seeds:
        picks = selected_rows(pool, seed)
        out[seed] = {"mean_token_entropy": mean_token_entropy(picks), "sampled_pass_rate": statistics.mean(picks["pass_rate"])}
    out["pool"] = {"mean_token_entropy": mean_token_entropy(pool), "sampled_pass_rate": statistics.mean(pool["pass_rate"])}
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


def _pearson(x: list[float], y: list[float]) -> float:
    if len(x) < 3 or statistics.pstdev(x) == 0 or statistics.pstdev(y) == 0:
        return float("nan")
    return statistics.correlation(x, y)


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def _seed_mean_curve(curves: list[list[list[float]]]) -> dict[int, float]:
    steps = sorted({int(s) for c in curves for s, _ in c})
    return {s: _mean([v for c in curves for t, v in c if int(t) == s]) for s in steps}


def behaviour_link(runs_1k: list[dict]) -> dict:
    """6c: the correlation over GRPO-1K's checkpoints between accuracy gain and try/check share rise."""
    accuracy = _seed_mean_curve([r["accuracy_curve"] for r in runs_1k])
    share = _seed_mean_curve([r["behaviour_curve"] for r in runs_1k])
    source = "greedy completions of the curve problems"
    steps = [s for s in accuracy if s in share]
    if steps and len({share[s] for s in steps}) == 1:  # constant greedy share: the training rollouts' instead
        train = _seed_mean_curve([r["train_behaviour_curve"]["target"] for r in runs_1k])
        if train:
            share = {s: train[min(train, key=lambda t: abs(t - s))] for s in steps}
            source = "training rollouts' target share (greedy share constant)"
    gain = [accuracy[s] - accuracy[steps[0]] for s in steps]
    rise = [share[s] - share[steps[0]] for s in steps]
    pearson = _pearson(gain, rise)
    spearman = _pearson(_ranks(gain), _ranks(rise))
    return {"pearson": pearson, "spearman": spearman, "checkpoints": len(steps), "source": source}


def explore_criteria(rows: list[dict], results: dict, base_explore: dict) -> None:
    """Add criteria 5-7 to each family's row (in place)."""
    general_share = base_explore["general_selected"]["selected_try_check_share"]
    for row in rows:
        family = row["family"]
        measured = base_explore["families"][family]
        base_share = results["base"][family]["rollout_metrics"]["sampled"]["try_check"]
        runs = {arm: [r for r in results["runs"] if r["family"] == family and r["arm"] == arm]
                for arm in ("grpo-32", "grpo-1k")}
        rise = {arm: (_mean([r["try_check_share"] for r in rs]) / base_share - 1) if base_share > 0 else float("nan")
                for arm, rs in runs.items()}
        link = behaviour_link(runs["grpo-1k"])
        row.update({
            "pass_at_1_x8": measured["pass_at_1"], "pass_at_8": measured["pass_at_k"], "headroom": measured["headroom"],
            "base_share": base_share, "share_rise_1k": rise["grpo-1k"], "share_rise_32": rise["grpo-32"],
            "behaviour_link": link, "general_share": general_share, "target_share_x8": measured["try_check_share"],
        })
        row["headroom_ok"] = measured["headroom"] >= HEADROOM
        row["behaviour_1k"] = rise["grpo-1k"] >= BEHAVIOUR_RISE  # nan (base share 0) fails
        row["behaviour_32"] = not rise["grpo-32"] >= BEHAVIOUR_RISE
        row["behaviour_link_ok"] = link["pearson"] >= BEHAVIOUR_R
        row["premise"] = general_share >= GENERAL_TRIES * measured["try_check_share"]
        row["meets_all"] = row["meets_all"] and all(
            row[k] for k in ("headroom_ok", "behaviour_1k", "behaviour_32", "behaviour_link_ok", "premise"))


def explore_table(rows: list[dict]) -> str:
    yes = {True: "yes", False: "**no**"}
    lines = ["| family | 5. headroom: pass@8 - pass@1 >= 0.20 | 6a. GRPO-1K share rise >= 50% | 6b. GRPO-32 rise < 50% "
             "| 6c. gain ~ share rise, Pearson r >= 0.5 | 7. general share >= 2 x target's | all (1-7) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        link = r["behaviour_link"]
        lines.append(
            f"| {r['family']} | {yes[r['headroom_ok']]}: {r['pass_at_8']:.3f} - {r['pass_at_1_x8']:.3f} = {r['headroom']:+.3f} "
            f"| {yes[r['behaviour_1k']]}: {r['share_rise_1k']:+.0%} (base share {r['base_share']:.3f}) "
            f"| {yes[r['behaviour_32']]}: {r['share_rise_32']:+.0%} "
            f"| {yes[r['behaviour_link_ok']]}: r = {link['pearson']:.2f} (Spearman {link['spearman']:.2f}; "
            f"{link['checkpoints']} checkpoints, {link['source']}) "
            f"| {yes[r['premise']]}: {r['general_share']:.3f} vs {r['target_share_x8']:.3f} | {yes[r['meets_all']]} |")
    return "\n".join(lines)


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
    parser.add_argument("--explore", default=None, metavar="BASE_JSON",
                        help="measure_base.py's numbers for the explore world's reasoner: add criteria 5-7")
    parser.add_argument("--write", action="store_true", help="write criteria.md and criteria.json into OUT")
    args = parser.parse_args(argv)
    out = Path(args.out)
    results = json.loads((out / "results.json").read_text())
    settings = results["settings"]
    general = selected_general(args.pool or settings["pool"], settings["seeds"], settings.get("model"))
    rows = criteria(results, general)
    if args.explore:
        explore_criteria(rows, results, json.loads(Path(args.explore).read_text()))
    text = table(rows, general, results)
    if args.explore:
        text += "\n\nThe explore world's criteria (5-7):\n\n" + explore_table(rows)
    print(text)
    if args.write:
        (out / "criteria.md").write_text(text + "\n")
        (out / "criteria.json").write_text(json.dumps({"families": rows, "general": {str(k): v for k, v in general.items()}},
                                                      indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
