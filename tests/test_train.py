"""`heal-hf train` end to end on a tiny in-process model: outputs, card, bad input, resume, 2 processes."""

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import torch
from conftest import greedy_accuracy, peaked_tiny_lm
from huggingface_hub import ModelCard

from heal_hf import cli
from heal_hf.app.push import files_to_push, hub_token
from heal_hf.app.train import train
from heal_hf.app.train_options import TRAINING_OPTIONS, TrainSettings, training_defaults
from heal_hf.core.verifiers import numeric_match
from heal_hf.data.pool import (
    POOL_FEATURES,
    pool_rows,
    tokenizer_fingerprint,
    with_pool_scores,
)
from heal_hf.data.rollout import sample_with_entropies
from heal_hf.data.run_folder import STATE_FILE
from heal_hf.toy.tiny import tiny_causal_lm
from heal_hf.trl import HEALConfig, policy_token_entropies

REPO = Path(__file__).resolve().parent.parent
TRAIN_FLAGS = ["--max-steps", "3", "--per-device-train-batch-size", "16", "--num-generations", "4",
               "--max-completion-length", "12", "--learning-rate", "1e-2", "--save-steps", "2", "--eval-samples", "2"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A tiny model folder, a 12-problem pool sampled from it, target and eval files."""
    root = tmp_path_factory.mktemp("assets")
    model, tok = peaked_tiny_lm()
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    prompts = [f"Q: {i} * 3 = ?\nA:" for i in range(12)]
    answers = [str(3 * i) for i in range(12)]
    out = sample_with_entropies(model, tok, prompts, num_samples=4, max_new_tokens=12, seed=0)
    passed = [[numeric_match(c, a) for c in cs] for cs, a in zip(out.texts, answers)]
    rows = pool_rows(prompts, answers, ["mul"] * 12, out.texts, out.entropies, passed, "tiny-llama",
                     tokenizer_fingerprint(tok), out.settings, bins=32)
    (root / "pool" / "data").mkdir(parents=True)
    with_pool_scores(datasets.Dataset.from_list(rows, features=POOL_FEATURES)).to_parquet(
        str(root / "pool" / "data" / "train-00000.parquet"))
    write_jsonl(root / "target.jsonl", [{"question": f"Q: {i} + 5 = ?\nA:", "solution": str(i + 5)} for i in range(4)])
    write_jsonl(root / "eval.jsonl", [{"question": f"Q: {i} + 5 = ?\nA:", "solution": str(i + 5)} for i in range(4, 7)])
    return root


def cli_args(assets: Path, output_dir: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(assets / "model"), "--target", str(assets / "target.jsonl"),
            "--pool", str(assets / "pool"), "--output-dir", str(output_dir), "--prompt-column", "question",
            "--answer-column", "solution", *TRAIN_FLAGS, *extra]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def full_run(assets, tmp_path_factory):
    """One full-model run with evaluation, through the Python API (keeps the trainer to compare against)."""
    out = tmp_path_factory.mktemp("runs") / "full"
    settings = TrainSettings(
        target=str(assets / "target.jsonl"), output_dir=str(out), model=str(assets / "model"), pool=str(assets / "pool"),
        eval=str(assets / "eval.jsonl"), prompt_column="question", answer_column="solution", eval_samples=2,
        base_model_id="someone/tiny-llama",
    )
    overrides = dict(max_steps=3, per_device_train_batch_size=16, num_generations=4, max_completion_length=12,
                     learning_rate=1e-2, save_steps=2)
    return train(settings, overrides)


def python_snippet(card_text: str) -> str:
    return re.search(r"```python\n(.*?)```", card_text, re.S).group(1)


# --- a full run -------------------------------------------------------------------


def test_run_saves_the_trained_model_and_what_it_measured(full_run, assets):
    out = full_run.output_dir
    for name in ("README.md", "model.safetensors", "config.json", "tokenizer.json", "heal_run.json", "metrics.json",
                 "entropy_curves.png", "heal_train_set.parquet", "checkpoint-2"):
        assert (out / name).exists(), name
    assert (out / "entropy_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(full_run.metrics))
    # The history is the trainer's own log, step by step.
    logged = [e for e in full_run.trainer.state.log_history if "heal/eda_reward" in e]
    assert [h["step"] for h in metrics["history"]] == [1, 2, 3] == [e["step"] for e in logged]
    for h, e in zip(metrics["history"], logged):
        for key in ("heal/entropy/target", "heal/entropy_retention/general", "heal/eda_reward", "heal/reward/target", "reward"):
            assert h[key] == e[key], key
    assert metrics["curves"]["latest"]["target"]["entropy"] == pytest.approx(logged[-1]["heal/entropy/target"])
    assert metrics["train"]["global_step"] == 3
    # The evaluation, measured again from the model before and after: greedy answers one prompt at a time,
    # the same seeded samples counted here, their entropies from a teacher-forced forward pass.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    problems = [json.loads(line) for line in (assets / "eval.jsonl").read_text().splitlines()]
    prompts, answers = [p["question"] for p in problems], [p["solution"] for p in problems]
    for split, folder in (("base", assets / "model"), ("trained", out)):
        values = metrics["eval"][split]
        model, tok = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
        assert values["greedy_accuracy"] == greedy_accuracy(model, tok, list(zip(prompts, answers)), "numeric", 12)
        samples = sample_with_entropies(model, tok, prompts, num_samples=2, max_new_tokens=12, temperature=1.0, seed=0)
        correct = [[numeric_match(t, a) for t in texts] for texts, a in zip(samples.texts, answers)]
        assert values["pass@2"] == sum(max(c) for c in correct) / 3
        assert values["sample_accuracy"] == sum(map(sum, correct)) / 6
        forward = policy_token_entropies(model, tok, [p for p in prompts for _ in range(2)],
                                         [ids for row in samples.token_ids for ids in row])
        tokens = [h for row in forward for h in row]
        assert values["mean_token_entropy"] == pytest.approx(sum(tokens) / len(tokens), rel=1e-4)
        assert values["problems"] == 3
    run = json.loads((out / "heal_run.json").read_text())
    assert run["status"] == "complete"
    assert run["data"]["target"]["rows"] == 4 and run["data"]["general"]["rows"] == 12
    assert run["data"]["prompts_per_batch"] == 4 and run["data"]["target_prompts_per_batch"] == 1
    mixed = datasets.Dataset.from_parquet(str(out / "heal_train_set.parquet"))
    assert mixed["domain"].count("target") == 4 and mixed["answer"][:4] == ["5", "6", "7", "8"]
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(assets / "model")
    after = AutoModelForCausalLM.from_pretrained(out)
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))


def test_card_parses_and_reports_what_the_run_produced(full_run):
    out = full_run.output_dir
    metrics = full_run.metrics
    text = (out / "README.md").read_text()
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.base_model == "someone/tiny-llama" and data.library_name == "transformers"
    assert {"heal", "rlvr", "grpo", "trl"} <= set(data.tags) and data.license == "apache-2.0"
    results = {r.metric_name: r.metric_value for r in data.eval_results}
    assert results == {"greedy accuracy": round(metrics["eval"]["trained"]["greedy_accuracy"], 4),
                       "pass@2": round(metrics["eval"]["trained"]["pass@2"], 4)}
    headings = re.findall(r"^#+ .*$", card.text, re.M)
    assert headings[1:] == ["## How to use", "## Training data", "## Training procedure", "## Entropy dynamics",
                            "## Results", "## Citation"]
    for body in re.split(r"^#+ .*$", card.text, flags=re.M)[1:]:
        assert body.strip(), "empty section"
    last = metrics["history"][-1]
    assert f"Retention at step 3: target {last['heal/entropy_retention/target']:.3f}" in text
    assert "| target domain | 4 |" in text and "| general domain | 12 |" in text and "| eda_weight | 0.1 |" in text
    d0 = [(h["step"], h["heal/eda_d0"]) for h in metrics["history"] if "heal/eda_d0" in h]
    assert "| eda_estimator | calibrated |" in text and len(d0) == 3
    assert ("the calibrated estimator (v2), r = 1 / (1 + D / D0)" in text
            and f"D0 was {d0[0][1]:.3g} at step 1 and {d0[-1][1]:.3g} at step 3." in text)
    assert f"| pass@2 | {metrics['eval']['base']['pass@2']:.4g} | {metrics['eval']['trained']['pass@2']:.4g} |" in text
    assert "![Entropy curves](entropy_curves.png)" in text and "arXiv" in text and "2604.17928" in text
    # The snippet runs and loads this very model.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(python_snippet(text), {})
    assert str(out.resolve()) in python_snippet(text)
    # `heal-hf card` regenerates the same card from the stored records.
    (out / "README.md").unlink()
    assert run_cli(["card", str(out)])[0] == 0
    assert (out / "README.md").read_text() == text
    code, _, _ = run_cli(["card", str(out / "checkpoint-2"), "--repo-id", "someone/heal-tiny"])
    ckpt = ModelCard.load(out / "checkpoint-2" / "README.md")
    assert code == 0 and ckpt.data.eval_results is None and "for 2 steps" in ckpt.text
    assert "from_pretrained('someone/heal-tiny')" in ckpt.text and ckpt.data.model_name == "heal-tiny"


def test_push_uploads_the_run_without_checkpoints_and_needs_a_token(full_run, monkeypatch, tmp_path):
    files = files_to_push(full_run.output_dir)
    assert {"README.md", "model.safetensors", "metrics.json", "entropy_curves.png", "heal_run.json"} <= set(files)
    assert not [f for f in files if f.startswith("checkpoint-") or Path(f).name.startswith(".")]
    import huggingface_hub.constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(ValueError, match="no Hugging Face token"):
        hub_token()
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    assert hub_token() == "hf_test_token"


# --- LoRA through the command line ------------------------------------------------


def test_lora_run_saves_an_adapter_with_a_peft_card(assets, tmp_path):
    out = tmp_path / "lora"
    code, stdout, stderr = run_cli(cli_args(assets, out, "--lora", "--lora-r", "4", "--lora-target-modules",
                                            "q_proj,v_proj", "--max-steps", "2"))
    assert code == 0, stderr
    assert (out / "adapter_model.safetensors").exists() and not (out / "model.safetensors").exists()
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "peft" and "lora" in card.data.tags and card.data.base_model is None
    assert card.data.eval_results is None and "## Results" in card.text  # training summary, no eval given
    run = json.loads((out / "heal_run.json").read_text())
    assert run["training"]["lora_r"] == 4 and run["model"]["trainable_parameters"] < run["model"]["parameters"]
    snippet = python_snippet(card.text)
    assert "AutoPeftModelForCausalLM" in snippet
    with contextlib.redirect_stdout(io.StringIO()):
        exec(snippet, {})
    assert f"saved to {out}" in stdout


@pytest.mark.slow
def test_the_command_shows_one_bar_and_the_summary_and_logs_the_rest(assets, tmp_path):
    out = tmp_path / "quiet"
    proc = subprocess.run([sys.executable, "-m", "heal_hf.cli", *cli_args(assets, out, "--eval", str(assets / "eval.jsonl"))],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    terminal = proc.stdout + proc.stderr
    for noise in ("{'loss'", "'learning_rate'", "Generating train split", "Loading weights", "Creating parquet",
                  "Warning"):
        assert noise not in terminal, noise
    lines = [line for line in re.split(r"[\r\n]+", terminal) if line.strip()]
    bar = [line for line in lines if line.startswith("train   :")]
    assert bar and "3/3" in bar[-1]
    assert len(lines) - len(bar) <= 5, lines  # saved to ..., the eval lines, a pool warning at most
    assert f"saved to {out}" in proc.stdout
    # The pool was sampled by "tiny-llama" (its rows' name, no fingerprint recorded): said once, naming both.
    said = [line for line in lines if line.startswith("warning: pool: sampled by 'tiny-llama' but used with 'model'")]
    assert len(said) == 1, lines
    log = (out / "train.log").read_text()
    assert log.count("{'loss'") == 3 and "Loading weights" in log and "Creating parquet" in log


# --- bad input: a clear error before any training -----------------------------------


def test_bad_input_fails_before_training(assets, full_run, tmp_path, monkeypatch):
    def fails(argv, *messages):
        code, _, err = run_cli(argv)
        errors = [line for line in err.splitlines() if line.startswith("heal-hf train: error:")]
        assert code == 2 and len(errors) == 1 and all(m in errors[0] for m in messages), err
        assert "Traceback" not in err

    no_answers = write_jsonl(tmp_path / "no_answers.jsonl", [{"question": "Q: 1 + 1 = ?"}] * 4)
    fails(cli_args(assets, tmp_path / "a", "--target", str(no_answers)), "no 'solution' column")
    one_row = write_jsonl(tmp_path / "one.jsonl", [{"question": "Q: 1 + 1 = ?", "solution": "2"}])
    fails(cli_args(assets, tmp_path / "b", "--target", str(one_row), "--target-fraction", "0.5"),
          "a generation batch takes 2 target-domain prompts but the dataset has 1")
    other = tmp_path / "other-model"
    model, tok = tiny_causal_lm()
    tok.add_tokens(["<extra>"])
    model.save_pretrained(other)
    tok.save_pretrained(other)
    fails(cli_args(assets, tmp_path / "c", "--model", str(other)), "its entropies are not comparable")
    config = tmp_path / "cfg.yaml"
    config.write_text("eda_bins: 16\n")
    fails(cli_args(assets, tmp_path / "d", "--config", str(config)), "profiled with bins=32 but bins=16")
    config.write_text("eda_binz: 16\n")
    fails(cli_args(assets, tmp_path / "e", "--config", str(config)), "unknown options ['eda_binz']")
    fails(cli_args(assets, full_run.output_dir), "already holds another heal-hf run; pass --resume")
    fails(cli_args(assets, tmp_path / "f", "--resume"), "has no heal_run.json")
    fails(cli_args(assets, full_run.output_dir, "--resume", "--max-steps", "5"), "holds a run made with other settings (", "config.max_steps: 3 there, 5 now")
    import huggingface_hub.constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    fails(cli_args(assets, tmp_path / "g", "--push-to-hub", "someone/heal-tiny"), "no Hugging Face token found")
    # Each of these once wrote the run folder first, or escaped the CLI as a traceback.
    fails(cli_args(assets, tmp_path / "h", "--eda-weight", "-1"), "--eda-weight: expected a number >= 0, got -1.0")
    words = write_jsonl(tmp_path / "words.jsonl", [{"question": "Q: one plus one?", "solution": "two"}] * 4)
    fails(cli_args(assets, tmp_path / "i", "--target", str(words)), f"target: {words}: 4 of 4 reference answers",
          "cannot be checked by the numeric verifier: row 0 ('two' holds no number)", "--verifier exact")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    fails(cli_args(assets, tmp_path / "j", "--target", str(empty)), f"target: {empty} is empty; write one problem")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "Q: 1 + 1 = ?", "solution": "2"}\n{"question": "Q: 2 + 2 = ?", "solution": \n')
    fails(cli_args(assets, tmp_path / "k", "--target", str(broken)), f"target: {broken} line 2 is not JSON", "fix that line")
    fails(cli_args(assets, tmp_path / "l", "--pool", str(tmp_path / "no-pool")),
          f"pool: no such folder {tmp_path / 'no-pool'}; pass a folder written by `heal-hf build-pool`")
    fails(cli_args(assets, tmp_path / "m", "--eval", str(tmp_path / "no-eval.jsonl")), "eval: no such file")
    config.write_text("remove_unused_columns: true\n")  # refused by the trainer itself, after the model loaded
    fails(cli_args(assets, tmp_path / "n", "--config", str(config)), "remove_unused_columns: must be False")
    for name in "abcdefghijklmn":
        assert not (tmp_path / name).exists()  # nothing was written, nothing trained
    # The corrected run then starts in the same folder (no leftover makes it "another heal-hf run").
    code, _, err = run_cli(cli_args(assets, tmp_path / "h", "--max-steps", "1", "--save-steps", "1"))
    assert code == 0 and json.loads((tmp_path / "h" / "heal_run.json").read_text())["status"] == "complete", err


def test_every_option_has_a_default_and_help_and_heal_defaults_match_heal_config():
    parser = cli.build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    for action in train_parser._actions:
        if action.dest != "help":
            assert action.help and ("default" in action.help or "required" in action.help), action.dest
    defaults = training_defaults()
    assert set(TRAINING_OPTIONS) <= set(defaults)
    fields = HEALConfig.__dataclass_fields__
    for name in ("eda_weight", "eda_reference", "eda_only_correct", "target_fraction", "temperature", "beta"):
        assert defaults[name] == fields[name].default, name


def test_general_rows_are_checked_by_the_general_verifier(assets, tmp_path):
    # A target whose checker cannot read the general answers (reasoning-gym's) names another for the general rows.
    from heal_hf.core.verifiers import VERIFIERS

    VERIFIERS["always_right"] = lambda completion, answer: 1.0
    try:
        code, _, err = run_cli(cli_args(assets, tmp_path / "gv", "--general-verifier", "always_right", "--max-steps", "2"))
    finally:
        VERIFIERS.pop("always_right")
    assert code == 0, err
    mixed = datasets.Dataset.from_parquet(str(tmp_path / "gv" / "heal_train_set.parquet"))
    assert {(d, v) for d, v in zip(mixed["domain"], mixed["verifier"])} == {("target", "numeric"), ("general", "always_right")}
    history = json.loads((tmp_path / "gv" / "metrics.json").read_text())["history"]
    assert [h["heal/reward/general"] for h in history] == [1.0, 1.0]  # EDA is None on general rows: the verifier's
    assert run_cli(cli_args(assets, tmp_path / "bad", "--general-verifier", "fuzzy"))[0] != 0
    assert not (tmp_path / "bad").exists()


def test_every_command_help_renders():
    # argparse formats help texts with %: one stray "10%" in a field's help broke `replicate --help`.
    subparsers = cli.build_parser()._subparsers._group_actions[0].choices
    for name, sub in subparsers.items():
        assert "usage:" in sub.format_help(), name


def test_settings_flags_parse_to_their_fields_and_leave_the_rest_unset():
    from heal_hf.data.pool_shards import PoolBuildConfig
    from heal_hf.experiments.replicate import ReplicateSettings

    parser = cli.build_parser()
    args = parser.parse_args(["replicate", "--seeds", "0", "1", "--no-report", "--target-fraction", "0.5"])
    assert cli._given(args, ReplicateSettings) == {"seeds": (0, 1), "report": False, "target_fraction": 0.5}
    args = parser.parse_args(["build-pool", "--model", "m", "--dataset", "d", "--out", "o", "--bins", "8",
                              "--no-chat-template"])
    assert cli._given(args, PoolBuildConfig) == {"bins": 8, "chat_template": False}
    args = parser.parse_args(["train", "--no-lora", "--eda-weight", "0.5", "--target-fraction", "0.25"])
    assert (args.lora, args.eda_weight, args.target_fraction, args.eval_baseline) == (False, 0.5, 0.25, None)
    with pytest.raises(SystemExit):  # a choice outside the list is argparse's error, before anything runs
        with contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args(["replicate", "--arms", "no-such-arm"])


# --- interruption and resume, and two processes (slow: real subprocesses) -----------


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_last_checkpoint(assets, tmp_path):
    out = tmp_path / "resumable"
    argv = cli_args(assets, out, "--max-steps", "6", "--save-steps", "2")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "heal_hf.cli", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (out / "checkpoint-2" / STATE_FILE).exists():
            assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # a crash: no cleanup, no final save
    finally:
        proc.wait()
    run = json.loads((out / "heal_run.json").read_text())
    assert run["status"] == "training" and not (out / "metrics.json").exists()
    killed_at = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / STATE_FILE).exists())
    assert killed_at < 6
    first_state = json.loads((out / f"checkpoint-{killed_at}" / STATE_FILE).read_text())

    code, stdout, stderr = run_cli(argv + ["--resume"])
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["resumed_from"] == f"checkpoint-{killed_at}" and metrics["train"]["global_step"] == 6
    assert [h["step"] for h in metrics["history"]] == list(range(1, 7))  # the log survived the crash
    # Entropy retention keeps measuring against the first run's step 0.
    assert metrics["curves"]["initial"] == first_state["initial"]
    assert json.loads((out / "heal_run.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_two_process_accelerate_run_trains_and_saves(assets, tmp_path):
    out = tmp_path / "ddp"
    # accelerate 1.15 starts one process for `--cpu --num_processes 2`; --multi_gpu uses torchrun (gloo on CPU).
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "heal_hf.cli",
           *cli_args(assets, out, "--max-steps", "2", "--no-eval-baseline")]
    done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("saved to") == 1  # the main process reports
    metrics = json.loads((out / "metrics.json").read_text())
    # The reference pools both processes' general rows: 2 x 16 completions, 3 of 4 prompts general.
    assert [h["heal/reference_count"] for h in metrics["history"]] == [24.0, 24.0]
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and (out / "model.safetensors").exists()
