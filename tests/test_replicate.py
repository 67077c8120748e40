"""`heal-hf demo` and `heal-hf replicate` on the bundled toy reasoner and pool (real GRPO runs)."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard

from heal_hf.cli import main
from heal_hf.replicate import DEFAULT_ARMS, ReplicateSettings, check_settings


def test_bad_replication_options_are_clear_errors(capsys):
    with pytest.raises(ValueError, match="seeds: \\[1\\] given more than once"):
        check_settings(ReplicateSettings(seeds=(0, 1, 1)))
    with pytest.raises(ValueError, match="general-domain family"):
        check_settings(ReplicateSettings(families=("addition",)))
    with pytest.raises(ValueError, match="unknown toy task family"):
        check_settings(ReplicateSettings(families=("chess",)))
    with pytest.raises(ValueError, match="arms: unknown arms \\['ppo'\\]"):
        check_settings(ReplicateSettings(arms=("ppo",)))
    with pytest.raises(ValueError, match="steps"):
        check_settings(ReplicateSettings(steps=0))
    with pytest.raises(ValueError, match="num_iterations"):
        check_settings(ReplicateSettings(num_iterations=0))
    with pytest.raises(ValueError, match="eval_split: 'train'"):
        check_settings(ReplicateSettings(eval_split="train"))
    with pytest.raises(SystemExit):
        main(["demo", "--target", "chess"])
    assert "invalid choice: 'chess'" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_trains_evaluates_and_writes_model_card_png_and_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output-dir", str(out), "--steps", "3", "--eval-problems", "6", "--eval-samples", "2"]) == 0
    printed = capsys.readouterr().out
    assert "held-out test" in printed and "pass@2" in printed and "entropy retention" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["global_step"] == 3
    assert set(metrics["eval"]) == {"base", "trained"} and metrics["eval"]["trained"]["problems"] == 6
    assert f"{metrics['eval']['trained']['greedy_accuracy']:.3f}" in printed
    run = json.loads((out / "heal_run.json").read_text())
    assert run["data"]["target"]["rows"] == 32 and run["data"]["general"]["rows"] == 96
    assert (out / "model.safetensors").exists() and (out / "entropy_curves.png").stat().st_size > 10_000
    assert ModelCard.load(out / "README.md").data.base_model == "heal/toy-reasoner"
    # The same folder again is another run's: refused, nothing overwritten.
    assert main(["demo", "--output-dir", str(out), "--steps", "3"]) == 2
    assert "already holds another heal-hf run" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_replication_runs_every_arm_and_resumes(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["replicate", "--quick", "--output-dir", str(out), "--steps", "2", "--curve-every", "1"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["arm"] for r in results["runs"]] == list(DEFAULT_ARMS)
    for row in results["runs"]:
        assert row["steps"] == 2 and 0.0 <= row["greedy_accuracy"] <= 1.0 and row["entropy_retention"] > 0
        assert [s for s, _ in row["accuracy_curve"]] == [0, 1, 2] and len(row["entropy_curve"]) == 2
    by_arm = {r["arm"]: r for r in results["runs"]}
    # The arms differ where they should: data sizes, mixing and the EDA reward.
    runs = out / "runs" / "sort_digits" / "seed0"
    rows = {a: json.loads((runs / a / "heal_run.json").read_text())["data"] for a in DEFAULT_ARMS}
    assert rows["grpo-1k"]["target"]["rows"] == 1000 and rows["grpo-32"]["target"]["rows"] == 32
    assert rows["heal-32"]["general"]["rows"] == 96 and rows["eda-32"]["general"]["rows"] == 0
    training = {a: json.loads((runs / a / "heal_run.json").read_text())["training"] for a in DEFAULT_ARMS}
    assert training["heal-32"]["eda_weight"] == 0.1 and training["hybrid-32"]["eda_weight"] == 0.0
    assert training["eda-32"]["eda_reference"] == "pool"
    table = (out / "results.md").read_text()
    assert all(f"| sort_digits | {a} |" in table for a in DEFAULT_ARMS) and (out / "curves.png").stat().st_size > 10_000
    assert f"{by_arm['heal-32']['greedy_accuracy']:.3f}" in table
    # Re-running finds every run finished and trains nothing.
    stamp = (runs / "heal-32" / "model.safetensors").stat().st_mtime_ns
    assert main(["replicate", "--quick", "--output-dir", str(out), "--steps", "2", "--curve-every", "1"]) == 0
    assert (runs / "heal-32" / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]
