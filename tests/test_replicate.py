"""`heal-hf demo` and `heal-hf replicate` on the bundled toy reasoner and pool (real GRPO runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import greedy_accuracy
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoTokenizer

from heal_hf.app.evaluation import greedy_completions
from heal_hf.cli import main
from heal_hf.experiments.replicate import (
    ARMS,
    DEFAULT_ARMS,
    TOY_GRPO,
    ReplicateSettings,
    check_replicate_settings,
    completion_length,
)
from heal_hf.experiments.report import missing_summary, paired_interval
from heal_hf.toy import explore

MIXED = {name for name, arm in ARMS.items() if arm.mix_general}


def test_bad_replication_options_are_clear_errors(capsys):
    with pytest.raises(ValueError, match="seeds: \\[1\\] given more than once"):
        check_replicate_settings(ReplicateSettings(seeds=(0, 1, 1)))
    with pytest.raises(ValueError, match="general-domain family"):
        check_replicate_settings(ReplicateSettings(families=("addition",)))
    with pytest.raises(ValueError, match="unknown toy task family"):
        check_replicate_settings(ReplicateSettings(families=("chess",)))
    with pytest.raises(ValueError, match="general-domain family"):
        check_replicate_settings(ReplicateSettings(families=("missing_addend",)))  # the explore world's general
    check_replicate_settings(ReplicateSettings(families=("gym_equation", "pair_sum")))  # its targets are accepted
    with pytest.raises(ValueError, match="mix toy worlds"):  # one world a run: v6 generates 48 tokens, explore 64
        check_replicate_settings(ReplicateSettings(families=("sort_digits", "pair_sum")))
    assert (completion_length("sort_digits"), completion_length("gym_countdown")) == (48, explore.COMPLETION_BUDGET) == (48, 128)
    from heal_hf.cli import build_parser

    assert build_parser().parse_args(["replicate", "--families", "gym_countdown"]).families == ["gym_countdown"]
    with pytest.raises(ValueError, match="arms: unknown arms \\['ppo'\\]"):
        check_replicate_settings(ReplicateSettings(arms=("ppo",)))
    with pytest.raises(ValueError, match="steps"):
        check_replicate_settings(ReplicateSettings(steps=0))
    with pytest.raises(ValueError, match="eda_estimator: 'kde'"):
        check_replicate_settings(ReplicateSettings(eda_estimator="kde"))
    with pytest.raises(ValueError, match="num_iterations"):
        check_replicate_settings(ReplicateSettings(num_iterations=0))
    with pytest.raises(ValueError, match="eval_split: 'train'"):
        check_replicate_settings(ReplicateSettings(eval_split="train"))
    with pytest.raises(SystemExit):
        main(["demo", "--target", "chess"])
    assert "invalid choice: 'chess'" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_trains_grpo_and_heal_side_by_side(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output-dir", str(out), "--steps", "3", "--eval-problems", "6", "--eval-samples", "2"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    results = json.loads((out / "demo.json").read_text())
    runs = {r["arm"]: r for r in results["runs"]}
    assert list(runs) == ["grpo-32", "heal-32"] and all(r["steps"] == 3 for r in runs.values())
    # The table holds each run's own numbers, beside the base model's.
    base = results["base"]["sort_digits"]
    line = next(x for x in printed.splitlines() if x.startswith("sampled accuracy"))
    assert line.split()[-3:] == [f"{v:.3f}" for v in (base["sample_accuracy"], runs["grpo-32"]["sample_accuracy"],
                                                       runs["heal-32"]["sample_accuracy"])]
    assert "pass@2" in printed and "entropy retention (train, target)" in printed
    assert "behind each number: 1 seed (seed 0), 6 held-out problems x 2 samples" in printed
    # Same start and settings; only the data, the EDA reward and HEAL's advantage scaling (batch with EDA on) differ.
    record = {a: json.loads((out / a / "heal_run.json").read_text()) for a in runs}
    assert record["grpo-32"]["data"]["target"]["rows"] == record["heal-32"]["data"]["target"]["rows"] == 32
    assert record["grpo-32"]["data"]["general"]["rows"] == 0 and record["heal-32"]["data"]["general"]["rows"] == 96
    assert record["grpo-32"]["training"]["eda_weight"] == 0.0 and record["heal-32"]["training"]["eda_weight"] > 0
    differing = {k for k in record["grpo-32"]["training"] if record["grpo-32"]["training"][k] != record["heal-32"]["training"][k]}
    assert differing == {"eda_weight", "scale_rewards"}, differing
    assert (record["grpo-32"]["training"]["scale_rewards"], record["heal-32"]["training"]["scale_rewards"]) == ("group", "batch")
    assert ModelCard.load(out / "heal-32" / "README.md").data.base_model == "heal/toy-reasoner"
    assert (out / "curves.png").stat().st_size > 10_000
    # A quiet terminal: TRL's per-step log dicts are in each run's log file, not on the screen.
    assert "'loss'" not in printed + captured.err
    assert "'loss'" in (out / "heal-32.train.log").read_text()
    # The same folder again is refused unless resumed; resuming trains nothing again.
    assert main(["demo", "--output-dir", str(out), "--steps", "3"]) == 2
    assert "already holds another heal-hf run" in capsys.readouterr().err
    stamp = (out / "heal-32" / "model.safetensors").stat().st_mtime_ns
    assert main(["demo", "--output-dir", str(out), "--steps", "3", "--eval-problems", "6", "--eval-samples", "2",
                 "--resume"]) == 0
    assert (out / "heal-32" / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_quick_replication_runs_every_arm_and_resumes(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["replicate", "--quick", "--output-dir", str(out), "--steps", "2", "--curve-every", "1"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["arm"] for r in results["runs"]] == list(DEFAULT_ARMS)
    runs = out / "runs" / "sort_digits" / "seed0"
    base = json.loads(next(out.glob("base-sort_digits-*.json")).read_text())
    for row in results["runs"]:
        assert row["steps"] == 2
        # Entropies are logged when a batch is generated: once per num_iterations steps.
        assert [s for s, _ in row["accuracy_curve"]] == [0, 1, 2]
        assert len(row["entropy_curve"]) == -(-2 // results["grpo"]["num_iterations"]) == 1
        # Measured again from the saved model, one unpadded generate per problem; and the retention's own ratio.
        run = json.loads((runs / row["arm"] / "heal_run.json").read_text())
        model = AutoModelForCausalLM.from_pretrained(runs / row["arm"]).eval()
        problems = [json.loads(line) for line in Path(run["settings"]["eval"]).read_text().splitlines()]
        accuracy = greedy_accuracy(model, AutoTokenizer.from_pretrained(runs / row["arm"]),
                                   [(p["prompt"], p["answer"]) for p in problems], run["settings"]["verifier"],
                                   TOY_GRPO["max_completion_length"])
        assert row["greedy_accuracy"] == accuracy, row["arm"]
        # The behaviour (try/check share) of the curve's greedy completions, measured again on the saved model.
        assert [s for s, _ in row["behaviour_curve"]] == [0, 1, 2]
        curve_prompts = [p["prompt"] for p in problems[: results["settings"]["curve_problems"]]]
        greedy = greedy_completions(model, AutoTokenizer.from_pretrained(runs / row["arm"]), curve_prompts,
                                    TOY_GRPO["max_completion_length"], chat_template=False, batch_size=64)
        assert row["behaviour_curve"][-1][1] == pytest.approx(explore.try_check_share(greedy))
        assert {d: len(c) for d, c in row["train_behaviour_curve"].items()} == {
            "target": len(row["entropy_curve"]), "general": len(row["entropy_curve"]) if row["arm"] in MIXED else 0}
        trained = json.loads((runs / row["arm"] / "metrics.json").read_text())["eval"]["trained"]
        assert row["try_check_share"] == trained["rollout_metrics"]["sampled"]["try_check"]
        assert row["entropy_retention"] == pytest.approx(trained["mean_token_entropy"] / base["mean_token_entropy"])
        assert 0 < row["entropy_retention"] < 2
    by_arm = {r["arm"]: r for r in results["runs"]}
    # The arms differ where they should: data sizes, mixing and the EDA reward.
    rows = {a: json.loads((runs / a / "heal_run.json").read_text())["data"] for a in DEFAULT_ARMS}
    assert rows["grpo-1k"]["target"]["rows"] == 1000 and rows["grpo-32"]["target"]["rows"] == 32
    assert rows["heal-32"]["general"]["rows"] == 96 and rows["eda-32"]["general"]["rows"] == 0
    training = {a: json.loads((runs / a / "heal_run.json").read_text())["training"] for a in DEFAULT_ARMS}
    assert training["heal-32"]["eda_weight"] == 0.1 and training["hybrid-32"]["eda_weight"] == 0.0
    assert training["eda-32"]["eda_reference"] == "pool"
    assert training["clip-higher-32"]["epsilon_high"] == 0.28 and training["grpo-32"]["epsilon_high"] is None
    assert training["entropy-mask-32"]["top_entropy_quantile"] == ReplicateSettings().mask_quantile == 0.3 and training["grpo-32"]["top_entropy_quantile"] == 1.0
    assert training["entropy-bonus-32"]["use_adaptive_entropy"] and not training["grpo-32"]["use_adaptive_entropy"]
    assert training["entropy-bonus-32"]["entropy_target"] == pytest.approx(base["mean_token_entropy"])
    assert training["heal-mask-32"]["top_entropy_quantile"] == 0.3 and training["heal-mask-32"]["eda_weight"] == 0.1
    assert {t["eda_estimator"] for t in training.values()} == {"calibrated"}
    # HEAL's arms scale advantages by the batch's std (HEALConfig's default with EDA on), the GRPO ones by TRL's group.
    scaling = {a: t["scale_rewards"] for a, t in training.items()}
    assert scaling == {**{a: "group" for a in DEFAULT_ARMS}, "heal-32": "batch", "hybrid-32": "batch", "eda-32": "batch",
                       "heal-mask-32": "batch"}
    # Per-problem scores back the intervals; a one-seed interval still resamples the problems.
    assert len(by_arm["heal-32"]["per_problem"]["greedy"]) == results["settings"]["eval_problems"]
    assert sum(by_arm["heal-32"]["per_problem"]["greedy"]) / results["settings"]["eval_problems"] == pytest.approx(
        by_arm["heal-32"]["greedy_accuracy"])
    against = results["intervals"]["sort_digits"]["sample_accuracy"]["grpo-32"]
    assert against["seeds"] == [0] and against["low"] <= against["mean"] <= against["high"]
    assert results["settings"]["curve_problems"] == 8
    table = (out / "results.md").read_text()
    assert all(f"| sort_digits | {a} |" in table for a in DEFAULT_ARMS) and (out / "curves.png").stat().st_size > 10_000
    assert f"{by_arm['heal-32']['greedy_accuracy']:.3f}" in table
    # results.md leads with the intervals, HEAL-32 against GRPO-1K first, then every arm's table.
    assert table.index("| heal-32 - grpo-1k | heal-32 - grpo-32 |") < table.index("| sort_digits | base model |")
    # The v6 world never tries and checks: two panels a family. Rollouts that do get a third, the share's curve.
    from PIL import Image

    from heal_hf.experiments.report import plot_replication

    tried = json.loads(json.dumps(results))
    tried["runs"][0]["train_behaviour_curve"]["target"] = [[1, 0.25], [2, 0.5]]
    widths = [Image.open(plot_replication(r, tmp_path / f"{n}.png")).size[0] for n, r in (("a", results), ("b", tried))]
    assert widths[1] == widths[0] * 3 // 2
    # Re-running finds every run finished and trains nothing.
    stamp = (runs / "heal-32" / "model.safetensors").stat().st_mtime_ns
    assert main(["replicate", "--quick", "--output-dir", str(out), "--steps", "2", "--curve-every", "1"]) == 0
    assert (runs / "heal-32" / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]
    # Other settings in the same folder would silently reuse those runs: refused, one line, nothing trained.
    capsys.readouterr()
    assert main(["replicate", "--quick", "--output-dir", str(out), "--steps", "3", "--curve-every", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "steps: 2 there, 3 now" in err and "--output-dir" in err and len(err.splitlines()) == 1
    assert (runs / "heal-32" / "model.safetensors").stat().st_mtime_ns == stamp
    # Arm settings are checked run by run: the GRPO runs serve a later lambda, the EDA runs made at another refuse.
    grpo_only = ["replicate", "--quick", "--output-dir", str(out), "--steps", "2", "--curve-every", "1", "--eda-weight"]
    assert main([*grpo_only, "0.3", "--arms", "grpo-32", "grpo-1k", "clip-higher-32"]) == 0
    assert main([*grpo_only, "0.3", "--arms", "grpo-32", "heal-32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "heal-32 settings (eda_weight=0.1 there, 0.3 here)" in err and "move that run away" in err
    assert (runs / "heal-32" / "model.safetensors").stat().st_mtime_ns == stamp


def test_paired_bootstrap_interval_centres_on_the_difference_and_pairs_by_seed_and_problem():
    rng = np.random.default_rng(1)
    problems = rng.random(200)  # per-problem difficulty shared by both arms: pairing removes it
    a = {s: (rng.random(200) < problems).astype(float) for s in range(5)}
    same = paired_interval(a, a)
    assert same["mean"] == same["low"] == same["high"] == 0.0 and same["seeds"] == [0, 1, 2, 3, 4]
    better = {s: np.minimum(1.0, v + (rng.random(200) < 0.15)) for s, v in a.items()}
    shift = paired_interval(better, a)
    assert 0 < shift["low"] < shift["mean"] < shift["high"]
    assert shift["mean"] == pytest.approx(np.mean([better[s] - a[s] for s in a]))
    noise = {s: (rng.random(200) < problems).astype(float) for s in range(5)}
    null = paired_interval(noise, a)
    assert null["low"] < 0 < null["high"]  # two draws of the same arm: the interval spans zero
    assert paired_interval(a, {7: a[0]}) is None  # no shared seed, nothing to pair
    assert paired_interval(better, {0: a[0], 1: a[1]})["seeds"] == [0, 1]


def test_runs_left_out_are_named_by_arm_and_seed_not_one_by_one():
    # An arm the protocol gives 3 of 5 seeds is one group, not a line per family.
    missing = [f"{f}/seed{s}/{a}" for a in ("hybrid-32", "eda-32") for f in ("sort_digits", "countdown") for s in (3, 4)]
    assert missing_summary(missing + ["countdown/seed1/heal-32"], ["sort_digits", "countdown"]) == (
        "hybrid-32, eda-32 at seeds 3, 4 (every family); heal-32 at seed 1 (countdown)")


def test_workers_train_the_seed_groups_in_parallel_processes(tmp_path):
    out = tmp_path / "w"
    argv = ["replicate", "--quick", "--arms", "grpo-32", "--seeds", "0", "1", "--workers", "2", "--steps", "2",
            "--curve-every", "1", "--output-dir", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert sorted(r["seed"] for r in results["runs"]) == [0, 1] and not results["missing"]
    for seed in (0, 1):  # each group ran in its own process, which wrote its log
        assert "replicate" in (out / "logs" / f"sort_digits-seed{seed}.log").read_text()
