"""EntropyMonitor, the collapse forecast and `heal-hf diagnose`: synthetic trajectories, then real TRL runs."""

import contextlib
import io
import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from conftest import peaked_tiny_lm
from transformers import TrainerControl, TrainerState
from trl import GRPOConfig, GRPOTrainer

import heal_hf
from heal_hf import cli
from heal_hf.app.diagnose import FIGURE_FILE, diagnose
from heal_hf.core.collapse import collapse_report, fit_reward_entropy, forecast_collapse, running_median
from heal_hf.core.eda import EDAReference, EDAReward
from heal_hf.core.verifiers import verifier_reward
from heal_hf.data.rollout import sample_with_entropies
from heal_hf.data.run_logs import HIGH_ENTROPY_KEY, MONITOR_FILE, MONITOR_FORMAT, read_run_logs, records_from_logs
from heal_hf.trl import EntropyMonitor, HEALGRPOTrainer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def decaying(steps: np.ndarray, rate: float, noise: float, seed: int = 0) -> np.ndarray:
    """Retention exp(-rate * t) with log-normal noise of `noise` (a step's entropy is a few prompts' mean)."""
    return np.exp(-rate * steps + np.random.default_rng(seed).normal(0.0, noise, len(steps)))


# --- the forecast (core) ----------------------------------------------------------


def test_forecast_sees_a_collapse_coming_from_its_first_quarter():
    steps = np.arange(1, 401, 2.0)
    quarter = steps <= 100
    crossings = []
    for seed in range(8):  # the noise moves a 50-point forecast; its median stays on the truth
        retention = decaying(steps, rate=0.004, noise=0.15, seed=seed)  # crosses 0.6 at ln(0.6) / -0.004 = 128
        early = forecast_collapse(steps[quarter], retention[quarter])
        assert early.collapsed_since is None and early.retention_now > 0.6
        crossings.append(early.crossing_step)
        assert collapse_report(steps[quarter], retention[quarter], end_step=400).status == "collapsing"
        # With an end at step 100 the same points are not collapsing yet.
        assert collapse_report(steps[quarter], retention[quarter], end_step=100).status == "stable"
        full = collapse_report(steps, retention, end_step=400)
        assert full.status == "collapsed" and full.forecast.collapsed_since == pytest.approx(128, abs=25)
        assert full.forecast.retention_at(400) == pytest.approx(math.exp(-1.6), rel=0.2)
    assert np.median(crossings) == pytest.approx(128, abs=10) and 90 < min(crossings) and max(crossings) < 210
    assert full.lines()[0].startswith("collapsed: entropy retention 0.")


def test_a_noisy_stable_run_with_outliers_is_not_collapsing():
    steps = np.arange(1, 201.0)
    retention = decaying(steps, rate=0.0, noise=0.2, seed=1)
    retention[[20, 60, 61, 150]] = 0.05  # single bad batches
    report = collapse_report(steps, retention, end_step=1000)
    assert report.status == "stable" and report.forecast.collapsed_since is None
    assert abs(report.forecast.percent_per_step) < 0.05
    assert report.retention_at_end > 0.8
    assert report.lines()[0].startswith("not collapsing")


def test_too_early_bad_input_and_the_running_median():
    assert forecast_collapse([1, 2, 3], [1.0, 0.5, 0.2]) is None
    assert collapse_report([1, 2, 3], [1.0, 0.5, 0.2]).status == "too early"
    assert forecast_collapse([1, 2, 3], [1.0, 0.5, 0.2], min_points=3).slope < 0
    with pytest.raises(ValueError, match="threshold"):
        forecast_collapse([1, 2], [1, 1], threshold=1.5)
    with pytest.raises(ValueError, match="one length"):
        forecast_collapse([1, 2, 3], [1, 1])
    values = np.array([5.0, 1.0, 3.0, 9.0, 2.0, 8.0, 7.0])
    assert running_median(values).tolist() == [5.0, 3.0, 3.0, 4.0, 3.0, 3.0, 7.0]


def test_reward_entropy_fit_recovers_r_equals_minus_a_exp_h_plus_b():
    h = np.linspace(1.2, 0.1, 60)
    reward = -0.8 * np.exp(h) + 2.5 + np.random.default_rng(0).normal(0, 0.01, 60)
    fit = fit_reward_entropy(h, reward)
    assert fit.a == pytest.approx(0.8, rel=0.05) and fit.b == pytest.approx(2.5, rel=0.03)
    assert fit.reward_at_zero_entropy == pytest.approx(1.7, rel=0.03) and fit.r2 > 0.99
    assert fit_reward_entropy([0.5] * 20, reward[:20]) is None  # no spread in H: no fit


# --- the callback on synthetic logs ----------------------------------------------------


def feed(monitor: EntropyMonitor, out: Path, entropies: np.ndarray, max_steps: int) -> TrainerState:
    """Drive the callback as Trainer does: on_train_begin, one on_log per step (+ eval and summary logs), on_train_end."""
    args, state, control = SimpleNamespace(output_dir=str(out)), TrainerState(max_steps=max_steps), TrainerControl()
    monitor.on_train_begin(args, state, control)
    for step, entropy in enumerate(entropies, 1):
        state.global_step = step
        logs = {"loss": 0.0, "entropy": float(entropy), "reward": 0.5, "frac_reward_zero_std": 0.25}
        state.log_history.append({**logs, "step": step})
        monitor.on_log(args, state, control, logs=logs)
        if step % 10 == 0:
            monitor.on_log(args, state, control, logs={"eval_loss": 1.0, "eval_entropy": 0.1})
    monitor.on_log(args, state, control, logs={"train_runtime": 1.0, "train_loss": 0.0})
    monitor.on_train_end(args, state, control)
    return state


def monitor_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "heal_hf.trl.monitor" and r.levelno == logging.WARNING]


def test_monitor_warns_once_on_a_collapsing_run_and_never_on_a_stable_one(tmp_path, caplog):
    steps = np.arange(1, 101.0)
    caplog.set_level(logging.WARNING, logger="heal_hf.trl.monitor")
    collapsing = EntropyMonitor(write_every_s=0.0)
    feed(collapsing, tmp_path / "a", 0.8 * decaying(steps, rate=0.01, noise=0.1), max_steps=100)
    said = monitor_warnings(caplog)
    assert len(said) == 1, said
    assert "collapsing" in said[0] and "learning rate" in said[0] and "top_entropy_quantile" in said[0]
    assert "\n" not in said[0]
    assert collapsing.warned_at_step is not None and collapsing.warned_at_step < 40  # before it crosses 0.6 (51)
    assert collapsing.report.status == "collapsed"
    data = json.loads((tmp_path / "a" / MONITOR_FILE).read_text())
    assert data["format"] == MONITOR_FORMAT and data["warned_at_step"] == collapsing.warned_at_step
    assert [s["step"] for s in data["steps"]] == list(range(1, 101))  # eval and summary logs left out
    assert data["steps"][0]["retention"] == 1.0 and data["steps"][-1]["frac_reward_zero_std"] == 0.25
    assert data["report"]["status"] == "collapsed" and data["report"]["forecast"]["slope"] < 0
    assert data["settings"]["high_entropy_threshold"] is None  # no model, no hook: no high-entropy share

    caplog.clear()
    for seed in range(5):
        stable = EntropyMonitor()
        feed(stable, tmp_path / f"b{seed}", 0.8 * decaying(steps, rate=0.0, noise=0.1, seed=seed), max_steps=100)
        assert monitor_warnings(caplog) == [] and stable.report.status == "stable"
    quiet = EntropyMonitor(warn=False)
    feed(quiet, tmp_path / "c", 0.8 * decaying(steps, rate=0.01, noise=0.1), max_steps=100)
    assert monitor_warnings(caplog) == [] and quiet.report.status == "collapsed"


def test_the_hook_counts_masked_tokens_above_the_threshold_in_gradient_forwards_only():
    monitor = EntropyMonitor(high_entropy_threshold=1.0)
    module = torch.nn.Linear(1, 1).train()
    out = SimpleNamespace(entropy=torch.tensor([[0.5, 2.0, 3.0], [1.5, 0.1, 9.0]]),
                          label_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]))
    monitor._on_forward(module, (), {}, out)  # 5 tokens, 3 above 1 nat (3.0 is padding)
    with torch.no_grad():
        monitor._on_forward(module, (), {}, out)  # a scoring pass: not counted
    monitor._on_forward(module.eval(), (), {}, out)  # evaluation: not counted
    monitor._on_forward(module.train(), (), {}, SimpleNamespace(logits=torch.zeros(2, 3, 5)))  # generation: no entropy
    assert monitor._take_hook_numbers() == {HIGH_ENTROPY_KEY: pytest.approx(0.6)}
    assert monitor._take_hook_numbers() == {}  # reset after each log


def test_public_names_and_settings():
    assert heal_hf.EntropyMonitor is EntropyMonitor
    with pytest.raises(AttributeError):
        heal_hf.NoSuchThing  # noqa: B018
    with pytest.raises(ValueError, match="threshold"):
        EntropyMonitor(threshold=0)
    with pytest.raises(ValueError, match="high_entropy_quantile"):
        EntropyMonitor(high_entropy_quantile=1.0)


# --- real TRL runs on a tiny model --------------------------------------------------


def problems(n: int = 8) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"prompt": [f"Q: {i} + 5 = ?\nA:" for i in range(n)],
                                       "answer": [str(i + 5) for i in range(n)]})


def grpo_args(out: Path, **kw) -> GRPOConfig:
    defaults = dict(
        output_dir=str(out), max_steps=4, per_device_train_batch_size=16, num_generations=4, max_completion_length=12,
        logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True, bf16=False,
        activation_checkpointing=False, learning_rate=5e-2, seed=0,
    )
    return GRPOConfig(**{**defaults, **kw})


def train_quietly(trainer) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # the printer callback prints every log dict
        trainer.train()


class TrainingEntropies:
    """A test's own hook: every completion token's entropy and mask of the gradient forwards."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.handle = model.register_forward_hook(self.hook)

    def hook(self, module, args, output):
        if torch.is_grad_enabled() and getattr(output, "entropy", None) is not None:
            self.batches.append((output.entropy.detach().clone(), output.label_mask.clone()))


@pytest.mark.parametrize("num_iterations", [1, 2])  # 2: TRL also runs a no-grad scoring forward, not counted
def test_monitor_on_plain_grpo_records_what_trl_logs_and_counts_high_entropy_tokens(tmp_path, one_thread, num_iterations):
    model, tok = peaked_tiny_lm()
    for layer in model.model.layers:  # dropout: TRL's scoring forward differs from the gradient forward it precedes
        layer.self_attn.attention_dropout = 0.5
    out = tmp_path / "run"
    args = grpo_args(out, save_strategy="steps", save_steps=4, num_iterations=num_iterations)
    trainer = GRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric")], args=args, train_dataset=problems(),
                          processing_class=tok)
    monitor = EntropyMonitor(min_points=3)
    trainer.add_callback(monitor)  # the one line a TRL script needs
    seen = TrainingEntropies(model)
    train_quietly(trainer)
    seen.handle.remove()
    assert not any(isinstance(getattr(h, "__self__", None), EntropyMonitor) for h in model._forward_hooks.values())

    logged = [e for e in trainer.state.log_history if "entropy" in e]
    assert [r.step for r in monitor.records] == [1, 2, 3, 4]
    assert [r.entropy for r in monitor.records] == pytest.approx([e["entropy"] for e in logged])
    # Reward metrics come with generation: every num_iterations steps.
    assert [r.frac_reward_zero_std for r in monitor.records] == [e.get("frac_reward_zero_std") for e in logged]
    assert sum(r.frac_reward_zero_std is not None for r in monitor.records) == 4 // num_iterations
    assert [r.retention for r in monitor.records] == pytest.approx([e["entropy"] / logged[0]["entropy"] for e in logged])
    # The share: tokens above the first batch's 80th percentile, recomputed from the same forwards.
    assert len(seen.batches) == 4  # one gradient forward per step; generation and scoring are not counted
    threshold = monitor.high_entropy_threshold
    first_entropy, first_mask = seen.batches[0]
    assert threshold == pytest.approx(float(torch.quantile(first_entropy[first_mask.bool()], 0.8)))
    want = [float(((e > threshold) & m.bool()).sum() / m.sum()) for e, m in seen.batches]
    assert [r.high_entropy_share for r in monitor.records] == pytest.approx(want)
    assert want[0] == pytest.approx(0.2, abs=0.02)  # 80th percentile: a fifth of the first batch lies above
    # The share reaches trainer_state.json; the JSON file is written beside the run.
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert [e[HIGH_ENTROPY_KEY] for e in state["log_history"] if "entropy" in e] == pytest.approx(want)
    data = json.loads((out / MONITOR_FILE).read_text())
    assert data["global_step"] == 4 and data["max_steps"] == 4 and len(data["steps"]) == 4
    assert data["report"]["status"] in ("stable", "collapsing", "collapsed")
    assert data["settings"]["high_entropy_threshold"] == pytest.approx(threshold)

    # diagnose on that checkpoint's trainer_state.json, and on the output folder (the checkpoint reaches as far).
    found = diagnose(out / "checkpoint-4" / "trainer_state.json", figure=tmp_path / "fig.png")
    assert found.run.kind == "trainer_state" and [r.high_entropy_share for r in found.run.records] == pytest.approx(want)
    assert (tmp_path / "fig.png").read_bytes()[:8] == PNG_MAGIC
    assert read_run_logs(out).source == out / "checkpoint-4" / "trainer_state.json"


def test_monitor_with_a_reference_measures_eda_distance_on_plain_grpo(tmp_path, one_thread):
    model, tok = peaked_tiny_lm()
    general = sample_with_entropies(model, tok, [f"Q: {i} * 3 = ?\nA:" for i in range(4)], num_samples=4,
                                    max_new_tokens=12, seed=0)
    reference = EDAReference.from_entropies(general.flat_entropies(), bins=8)
    monitor = EntropyMonitor(reference=reference)
    trainer = GRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric")], args=grpo_args(tmp_path, max_steps=2),
                          train_dataset=problems(), processing_class=tok, callbacks=[monitor])
    seen = TrainingEntropies(model)
    train_quietly(trainer)
    assert monitor.high_entropy_threshold == reference.forking_threshold  # forking tokens, as HEAL counts them
    want = [float(EDAReward(reference).score(e.float(), m).distance.mean()) for e, m in seen.batches]
    assert [r.eda_distance for r in monitor.records] == pytest.approx(want, rel=1e-5)


def test_monitor_on_heal_trainer_reads_heals_domains_and_distance(tmp_path, one_thread):
    from test_trl import heal_config, mixed_set

    model, tok = peaked_tiny_lm()
    monitor = EntropyMonitor()
    trainer = HEALGRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric")],
                              args=heal_config(tmp_path, max_steps=3), train_dataset=mixed_set(), processing_class=tok,
                              callbacks=[monitor])
    train_quietly(trainer)
    logged = [e for e in trainer.state.log_history if "heal/entropy/target" in e]
    assert len(monitor.records) == len(logged) == 3
    for record, entry in zip(monitor.records, logged):
        assert record.entropy == pytest.approx(entry["heal/entropy/target"])
        assert record.general_entropy == pytest.approx(entry["heal/entropy/general"])
        assert record.retention == pytest.approx(entry["heal/entropy_retention/target"])
        assert record.general_retention == pytest.approx(entry["heal/entropy_retention/general"])
        assert record.eda_distance == pytest.approx(entry["heal/eda_distance"])
        assert 0.0 <= record.high_entropy_share <= 1.0
    data = json.loads((Path(tmp_path) / "out" / MONITOR_FILE).read_text())
    assert [s["general_entropy"] for s in data["steps"]] == pytest.approx([e["heal/entropy/general"] for e in logged])


def test_a_resumed_run_keeps_its_records_and_does_not_warn_again(tmp_path, one_thread, caplog):
    caplog.set_level(logging.WARNING, logger="heal_hf.trl.monitor")
    out = tmp_path / "run"

    def run(resume: str | None) -> EntropyMonitor:
        model, tok = peaked_tiny_lm()
        monitor = EntropyMonitor(min_points=2, threshold=0.99)  # any fall warns: the warning happens in the first part
        trainer = GRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric")],
                              args=grpo_args(out, max_steps=12, save_strategy="steps", save_steps=6),
                              train_dataset=problems(), processing_class=tok, callbacks=[monitor])
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.train(resume_from_checkpoint=resume)
        return monitor

    first = run(None)
    assert first.warned_at_step is not None and first.warned_at_step <= 6
    caplog.clear()
    resumed = run(str(out / "checkpoint-6"))
    assert [r.step for r in resumed.records] == list(range(1, 13))
    assert [r.entropy for r in resumed.records[:6]] == pytest.approx([r.entropy for r in first.records[:6]])
    assert [r.high_entropy_share for r in resumed.records[:6]] == pytest.approx(
        [r.high_entropy_share for r in first.records[:6]])  # back from checkpoint-6/trainer_state.json
    assert monitor_warnings(caplog) == [] and resumed.warned_at_step == first.warned_at_step
    assert resumed.high_entropy_threshold == pytest.approx(first.high_entropy_threshold)


# --- heal-hf diagnose ------------------------------------------------------------------


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def test_diagnose_a_trainer_state_in_a_checkpoint_folder(tmp_path):
    steps = np.arange(1, 121)
    entropy = 0.4 * decaying(steps.astype(float), rate=0.003, noise=0.1)  # crosses 0.6 at step 170
    logs = [{"step": int(s), "loss": 0.1, "entropy": float(h), "reward": float(1 - h), "frac_reward_zero_std": 0.7}
            for s, h in zip(steps, entropy)]
    logs.insert(50, {"step": 50, "eval_loss": 0.3, "eval_entropy": 0.01})
    logs.append({"step": 120, "train_runtime": 9.0, "train_loss": 0.1})
    folder = tmp_path / "out" / "checkpoint-120"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": logs, "max_steps": 400}))
    code, printed, err = run_cli(["diagnose", str(tmp_path / "out")])
    assert code == 0, err
    lines = printed.splitlines()
    assert lines[0].startswith(f"run: {folder / 'trainer_state.json'} (120 logged steps with an entropy, last step 120 of 400)")
    assert lines[1].startswith("collapsing: entropy retention 0.") and "at step 400 (crosses 0.6 at step" in lines[1]
    assert "zero-variance groups: 70%" in printed and "most groups give GRPO no signal" in printed
    assert (tmp_path / "out" / FIGURE_FILE).read_bytes()[:8] == PNG_MAGIC  # in the folder given
    (tmp_path / "out" / "metrics.json").write_text('{"accuracy": 0.5}')  # another tool's file: passed over
    assert read_run_logs(tmp_path / "out").source == folder / "trainer_state.json"
    code, printed, _ = run_cli(["diagnose", str(folder), "--no-figure", "--threshold", "0.95"])
    assert code == 0 and "collapsed: entropy retention" in printed and "figure:" not in printed


@pytest.mark.parametrize("content, message", [
    (None, "has no trainer_state.json, metrics.json or checkpoint-*/trainer_state.json"),
    ('{"log_history": [{"step": 1, "entr', "is not valid JSON"),
    ('{"log_history": [{"step": 1, "loss": 2.0}, {"step": 2, "eval_entropy": 1.0}]}', "logs no entropy: none of its 2 log entries"),
    ('[1, 2]', "holds a JSON list, not an object"),
    ('{"global_step": 3}', "has neither a log_history list"),
])
def test_diagnose_refuses_bad_runs_in_one_line(tmp_path, content, message):
    if content is not None:
        (tmp_path / "trainer_state.json").write_text(content)
    code, printed, err = run_cli(["diagnose", str(tmp_path)])
    assert code == 2 and printed == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / FIGURE_FILE).exists()


def test_diagnose_a_heal_hf_train_folder(tmp_path, tiny_model_dir, prompts_file, built_pool, one_thread):
    from heal_hf.app.train import train
    from heal_hf.app.train_options import TrainSettings

    settings = TrainSettings(target=str(prompts_file), output_dir=str(tmp_path / "run"), model=str(tiny_model_dir),
                             pool=str(built_pool), prompt_column="question", answer_column="solution")
    overrides = dict(max_steps=3, per_device_train_batch_size=16, num_generations=4, max_completion_length=12,
                     learning_rate=1e-2, save_steps=2, eda_bins=8, disable_tqdm=True)
    with contextlib.redirect_stdout(io.StringIO()):
        result = train(settings, overrides, callbacks=[EntropyMonitor()])
    found = diagnose(result.output_dir)
    # The last checkpoint reaches step 3 like metrics.json and has every logged key (frac_reward_zero_std too).
    assert found.run.source == result.output_dir / "checkpoint-3" / "trainer_state.json"
    assert found.run.max_steps == 3 and [r.step for r in found.run.records] == [1, 2, 3]
    assert all(r.frac_reward_zero_std is not None and r.general_entropy is not None for r in found.run.records)
    from_metrics = read_run_logs(result.output_dir / "metrics.json")
    assert from_metrics.kind == "metrics" and from_metrics.max_steps == 3  # from heal_run.json
    history = json.loads((result.output_dir / "metrics.json").read_text())["history"]
    assert [r.entropy for r in from_metrics.records] == pytest.approx([h["heal/entropy/target"] for h in history])
    assert [r.entropy for r in found.run.records] == pytest.approx([r.entropy for r in from_metrics.records])
    assert found.report.status == "too early" and found.text().splitlines()[1].startswith("too early")
    assert (result.output_dir / FIGURE_FILE).read_bytes()[:8] == PNG_MAGIC
    monitor_records = read_run_logs(result.output_dir / MONITOR_FILE).records
    assert [r.entropy for r in monitor_records] == pytest.approx([r.entropy for r in found.run.records])


def test_records_from_logs_prefers_heals_target_entropy():
    logs = [{"step": 1, "entropy": 2.0, "heal/entropy/target": 1.0, "heal/entropy_retention/target": 1.0},
            {"step": 2, "entropy": 1.5},  # a batch without target rows: skipped, not read as TRL's all-token entropy
            {"step": 3, "entropy": 1.0, "heal/entropy/target": 0.5, "heal/entropy_retention/target": 0.55}]
    assert [(r.step, r.entropy, r.retention) for r in records_from_logs(logs)] == [(1, 1.0, 1.0), (3, 0.5, 0.55)]
    plain = records_from_logs([{"step": 2, "entropy": 2.0}, {"step": 1, "entropy": 4.0}, {"step": 3, "entropy": None}])
    assert [(r.step, r.retention) for r in plain] == [(1, 1.0), (2, 0.5)]
