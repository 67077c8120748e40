# ruff: noqa: F811  (test_train's module fixture `assets` is imported, then requested by name)
"""`heal-hf train` refuses every class of bad input with one line, before anything is written, and leaks no secret."""

import json
import subprocess
from pathlib import Path

import pytest
from conftest import require
from test_train import assets, cli_args, run_cli, write_jsonl  # noqa: F401 (assets is a fixture)

from heal_hf.app.train_options import check_batch_mix, check_prompt_lengths
from heal_hf.data.run_folder import clean_history, history_from_logs
from heal_hf.toy.tiny import tiny_causal_lm

SECRET = "hf_SecretTokenValue0123456789abcdefXYZ"


def refused(argv, *messages):
    """The CLI run gives exactly one error line holding `messages`, exit 2, no traceback."""
    code, _, err = run_cli(argv)
    errors = [line for line in err.splitlines() if line.startswith("heal-hf train: error:")]
    assert code == 2 and len(errors) == 1 and all(m in errors[0] for m in messages), err
    assert "Traceback" not in err
    return errors[0]


def untouched(*folders: Path) -> None:
    for folder in folders:
        assert not folder.exists() or not any(folder.iterdir()), sorted(p.name for p in folder.iterdir())


# --- 1. batches without target prompts; histories with None -------------------------------


def test_batches_that_would_hold_no_target_prompt_are_refused_up_front(assets, tmp_path):
    out = tmp_path / "one"
    for flags in (["--per-device-train-batch-size", "2", "--num-generations", "2"],
                  ["--per-device-train-batch-size", "4", "--num-generations", "4"],
                  ["--per-device-train-batch-size", "3", "--num-generations", "3", "--target-fraction", "0.9"]):
        refused(cli_args(assets, out, *flags), "a generation batch holds 1 prompt(s)", "would get 0 target prompts",
                "--n-general 0")
        untouched(out)
    with pytest.raises(ValueError, match="would get 0 target"):
        check_batch_mix(1, 0, 5, 2)
    check_batch_mix(1, 1, 0, 2)  # target only: nothing to mix
    check_batch_mix(2, 1, 5, 2)


def test_a_history_holding_none_or_nan_never_crashes_and_keeps_the_numbers():
    logs = [{"step": 1, "heal/eda_reward": 0.5, "rewards/eda/mean": None, "reward": float("nan"), "entropy": 1.0},
            {"step": 2, "heal/eda_reward": None, "rewards/numeric_match_reward/mean": 1, "entropy": float("inf")},
            {"loss": 0.1}]
    history = history_from_logs(logs)
    assert history == [{"step": 1, "heal/eda_reward": 0.5, "entropy": 1.0},
                       {"step": 2, "rewards/numeric_match_reward/mean": 1.0}]
    stored = [{"step": 1, "heal/entropy/target": None, "reward": 2.0}, "junk", {"no": "step"}]
    assert clean_history(stored) == [{"step": 1, "reward": 2.0}] and clean_history(None) == []


def test_a_folder_with_a_none_history_resumes_and_gets_its_card(assets, tmp_path):
    """A run record whose metrics hold None (from before the fix) still gives a card and a plot."""
    from heal_hf.hub.cards import write_model_card

    code, _, err = run_cli(cli_args(assets, tmp_path / "run", "--max-steps", "1", "--save-steps", "1",
                                    "--no-eval-baseline"))
    assert code == 0, err
    metrics_path = tmp_path / "run" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    for entry in metrics["history"]:
        entry.update({"rewards/eda/mean": None, "heal/entropy/target": None, "heal/eda_d0": None})
    metrics_path.write_text(json.dumps(metrics))
    assert write_model_card(tmp_path / "run").is_file()
    code, _, err = run_cli(cli_args(assets, tmp_path / "run", "--max-steps", "1", "--save-steps", "1",
                                    "--no-eval-baseline", "--resume"))
    assert code == 0, err


# --- 2. secrets ------------------------------------------------------------------------


def every_file_bytes(folder: Path):
    for path in folder.rglob("*"):
        if path.is_file():
            yield path, path.read_bytes()


def test_a_token_in_the_config_is_never_written_anywhere(assets, tmp_path, capfd):
    config = tmp_path / "cfg.yaml"
    config.write_text(f"hub_token: {SECRET}\nmax_steps: 2\nsave_steps: 1\n")
    out = tmp_path / "run"
    code, stdout, err = run_cli(cli_args(assets, out, "--config", str(config), "--no-eval-baseline"))
    assert code == 0, err
    assert SECRET not in stdout + err + "".join(capfd.readouterr())
    files = dict(every_file_bytes(out))
    assert any(p.name == "training_args.bin" for p in files) and any("checkpoint-" in str(p) for p in files)
    leaked = [str(p) for p, data in files.items() if SECRET.encode() in data]
    assert not leaked
    run = json.loads((out / "heal_run.json").read_text())
    assert not any("token" in key for key in run["fingerprint"])


def test_other_secret_options_and_token_looking_values_are_refused(assets, tmp_path):
    config = tmp_path / "cfg.yaml"
    for text, message in ((f"hub_model_id: {SECRET}\n", "hub_model_id (in --config): holds what looks like"),
                          (f"run_name: x-{SECRET}\n", "run_name (in --config): holds what looks like")):
        config.write_text(text)
        line = refused(cli_args(assets, tmp_path / "a", "--config", str(config)), message)
        assert SECRET not in line
    refused(cli_args(assets, tmp_path / "a", "--base-model-id", SECRET), "--base-model-id: holds what looks like")
    untouched(tmp_path / "a")


# --- 3, 5. prompts and answers that are not text ----------------------------------------


@pytest.mark.parametrize("bad", [None, ["Q: 1 + 1 = ?"], {"text": "Q"}, 7, 2.5, True, "", "   \n",
                                 [{"role": "user", "content": "Q: 1 + 1 = ?"}]])
def test_prompts_that_are_not_text_are_refused_with_their_rows(assets, tmp_path, bad):
    rows = [{"question": "Q: 1 + 1 = ?", "solution": "2"} for _ in range(4)]
    rows[1]["question"] = rows[3]["question"] = bad
    target = write_jsonl(tmp_path / "t.jsonl", rows)
    refused(cli_args(assets, tmp_path / "out", "--target", str(target)),
            f"target: {target}: 2 of 4 values of column 'question' are not non-empty text", "row 1 (", "row 3 (")
    refused(cli_args(assets, tmp_path / "out", "--eval", str(target)), f"eval: {target}: 2 of 4 values")
    untouched(tmp_path / "out")


@pytest.mark.parametrize("bad", [None, 2, 2.0, ["2"], {"v": 2}, ""])
def test_answers_that_are_not_text_are_refused_with_their_rows(assets, tmp_path, bad):
    rows = [{"question": f"Q: {i} + 1 = ?", "solution": str(i + 1)} for i in range(4)]
    rows[2]["solution"] = bad
    target = write_jsonl(tmp_path / "t.jsonl", rows)
    refused(cli_args(assets, tmp_path / "out", "--target", str(target)), "values of column 'solution'", "row 2 (",
            '"42", not 42')
    untouched(tmp_path / "out")


# --- 4. prompt length ---------------------------------------------------------------------


def test_prompts_longer_than_the_context_are_refused_without_tokenizing_huge_ones(assets, tmp_path):
    context = json.loads((assets / "model" / "config.json").read_text())["max_position_embeddings"]
    rows = [{"question": "Q: 1 + 1 = ?", "solution": "2"} for _ in range(4)]
    rows[0]["question"] = "7" * (5 * 10**6)  # 5 MB: refused from its size alone
    rows[2]["question"] = "1 + " * context  # over the context by tokens
    target = write_jsonl(tmp_path / "t.jsonl", rows)
    refused(cli_args(assets, tmp_path / "out", "--target", str(target)), "2 prompts are too long for the model",
            "row 0 (5000000 characters)", "row 2 (", f"holds {context} tokens")
    # Prompts that fit alone, but not with the completion.
    rows = [{"question": "Q: " + "1" * (context - 8) + " = ?", "solution": "2"} for _ in range(4)]
    target = write_jsonl(tmp_path / "t2.jsonl", rows)
    refused(cli_args(assets, tmp_path / "out", "--target", str(target)), "4 prompts are too long", "--max-completion-length")
    refused(cli_args(assets, tmp_path / "out", "--max-completion-length", str(context)),
            f"fill the model's whole context of {context} tokens")
    untouched(tmp_path / "out")


def test_prompt_length_check_counts_tokens_and_template(assets):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets / "model")
    check_prompt_lengths(["abc", "x" * 40], tok, 64, 16, "t")
    with pytest.raises(ValueError, match=r"row 1 \(\d+ tokens\)"):
        check_prompt_lengths(["abc", "x" * 60], tok, 64, 16, "t")
    check_prompt_lengths(["x" * 10**7], tok, None, 16, "t")  # no known context: nothing to check


# --- 7, 8. numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag,value,message", [
    ("--max-steps", "0", "--max-steps: expected a number >= 1, got 0"),
    ("--max-steps", "-3", "--max-steps: expected a number >= 1"),
    ("--learning-rate", "-1e-5", "--learning-rate: expected a number > 0"),
    ("--learning-rate", "nan", "--learning-rate: expected a finite number"),
    ("--learning-rate", "inf", "--learning-rate: expected a finite number"),
    ("--temperature", "0", "--temperature: expected a number > 0"),
    ("--temperature", "nan", "--temperature: expected a finite number"),
    ("--beta", "-0.1", "--beta: expected a number >= 0"),
    ("--save-steps", "0", "--save-steps: expected a number > 0"),
    ("--logging-steps", "-1", "--logging-steps: expected a number > 0"),
    ("--num-generations", "1", "--num-generations: expected a number >= 2"),
    ("--max-completion-length", "0", "--max-completion-length: expected a number >= 1"),
    ("--eda-weight", "nan", "--eda-weight: expected a finite number"),
    ("--target-fraction", "1.5", "--target-fraction: expected a number in (0, 1)"),
    ("--seed", "-1", "--seed: expected a number in [0,"),
    ("--eval-samples", "0", "--eval-samples: expected a number >= 1, got 0"),
    ("--selection-redundancy", "1", "--selection-redundancy: expected a number in [0, 1)"),
    ("--n-general", "-2", "--n-general: expected a number >= 0"),
    ("--lora-r", "0", "--lora-r: expected a number >= 1"),
    ("--lora-dropout", "nan", "--lora-dropout: expected a finite number"),
])
def test_every_numeric_option_is_checked_before_the_folder_is_touched(assets, tmp_path, flag, value, message):
    out = tmp_path / "out"
    refused(cli_args(assets, out, f"{flag}={value}"), message)
    untouched(out)


@pytest.mark.parametrize("text,message", [
    ("weight_decay: -0.1\n", "weight_decay (in --config): expected a number >= 0"),
    ("max_grad_norm: .nan\n", "max_grad_norm (in --config): expected a finite number"),
    ("warmup_steps: -5\n", "warmup_steps (in --config): expected a number >= 0"),
    ("top_p: 0\n", "top_p (in --config): expected a number in (0, 1]"),
    ("adam_beta1: 1.5\n", "adam_beta1 (in --config): expected a number in [0, 1)"),
    ("eda_momentum: -1\n", "eda_momentum (in --config): expected a number in [0, 1]"),
    ("eda_w_dyn: -1\n", "eda_w_dyn (in --config): expected a number >= 0"),
    ("temperature: abc\n", "--temperature: expected a number, got 'abc'"),
    ("eda_bins: 2.5\n", "eda_bins (in --config): expected a whole number"),
    ("lora_r: lots\n", "--lora-r: expected a number, got 'lots'"),
    ("lora: maybe\n", "--lora: expected true or false"),
    ("beta: [1, 2]\n", "--beta: expected a number"),
    ("eval_baseline: 3\n", "--eval-baseline: expected true or false"),
])
def test_numbers_from_the_config_are_checked_too(assets, tmp_path, text, message):
    config = tmp_path / "cfg.yaml"
    config.write_text(text)
    refused(cli_args(assets, tmp_path / "out", "--config", str(config)), message)
    untouched(tmp_path / "out")


def test_a_refused_setting_leaves_a_resumable_folder_unlocked(assets, tmp_path):
    out = tmp_path / "run"
    base = ["--max-steps", "1", "--save-steps", "1", "--no-eval-baseline"]
    code, _, err = run_cli(cli_args(assets, out, *base))
    assert code == 0, err
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    refused(cli_args(assets, out, *base, "--resume", "--learning-rate", "nan"), "--learning-rate: expected a finite")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    # A YAML number written as text (1e-3 reads as a string) is a number.
    config = tmp_path / "cfg.yaml"
    config.write_text("eda_eps: 1e-3\n")
    code, _, err = run_cli(cli_args(assets, tmp_path / "other", *base, "--config", str(config)))
    assert code == 0, err


# --- 9. broken model folders ------------------------------------------------------------------


def broken_models(root: Path) -> dict[str, Path]:
    model, tok = tiny_causal_lm(seed=0)
    folders = {}
    for name in ("vocab", "truncated", "no-tokenizer", "no-config", "no-weights", "bad-config"):
        folders[name] = root / name
        model.save_pretrained(folders[name])
        tok.save_pretrained(folders[name])
    config = json.loads((folders["vocab"] / "config.json").read_text())
    (folders["vocab"] / "config.json").write_text(json.dumps({**config, "vocab_size": config["vocab_size"] + 7}))
    weights = folders["truncated"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folders["no-tokenizer"] / name).unlink()
    (folders["no-config"] / "config.json").unlink()
    (folders["no-weights"] / "model.safetensors").unlink()
    (folders["bad-config"] / "config.json").write_text("{not json")
    return folders


def test_broken_model_folders_give_one_line_naming_the_folder(assets, tmp_path):
    folders = broken_models(tmp_path / "models")
    expected = {"vocab": "do not match its config.json", "truncated": "damaged",
                "no-tokenizer": "has no tokenizer files", "no-config": "has no config.json",
                "no-weights": "has no weights", "bad-config": "cannot load"}
    for name, folder in folders.items():
        line = refused(cli_args(assets, tmp_path / "out", "--model", str(folder)), str(folder), expected[name])
        assert "install sentencepiece" not in line.lower()
        untouched(tmp_path / "out")


def test_build_pool_and_the_space_name_the_same_broken_folders(tmp_path):
    from heal_hf import cli
    from heal_hf.app.space.models import ModelLoadError, load_model

    folders = broken_models(tmp_path / "models")
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q: 1 + 1 = ?\nA:", "answer": "2"}])
    for name in ("vocab", "truncated", "no-tokenizer", "no-weights"):
        assert cli.main(["build-pool", "--model", str(folders[name]), "--dataset", str(prompts),
                         "--out", str(tmp_path / "pool")]) == 2
        with pytest.raises(ModelLoadError):
            load_model(str(folders[name]))
    assert not (tmp_path / "pool").exists()


# --- 6. a full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs mounted at tmp_path/disk (needs root, as CI's container has)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True)
        mounted = done.returncode == 0
    except FileNotFoundError:
        mounted = False
    require(mounted, "mounting a small tmpfs needs root and mount(8)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_during_training_gives_one_line_and_nothing_that_looks_final(assets, tmp_path, small_disk):
    out = small_disk / "run"  # a checkpoint (weights + optimizer state) of the tiny model: ~1 MiB; 8 overflow 6 MiB
    line = refused(cli_args(assets, out, "--max-steps", "8", "--save-steps", "1", "--no-eval-baseline",
                            "--config", str(_config(tmp_path, "save_total_limit: 100\n"))),
                   f"output_dir: writing to {out} failed", "--resume")
    assert "Traceback" not in line
    names = {p.name for p in out.iterdir()}
    assert "README.md" not in names and "model.safetensors" not in names and "metrics.json" not in names
    for checkpoint in out.glob("checkpoint-*"):
        assert (checkpoint / "heal_state.json").is_file(), checkpoint  # only complete ones stay
    assert json.loads((out / "heal_run.json").read_text())["status"] == "training"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "disk-cfg.yaml"
    path.write_text(text)
    return path


# --- smaller points -------------------------------------------------------------------------


def test_files_that_are_not_utf8_are_named(assets, tmp_path):
    target = tmp_path / "latin1.jsonl"
    target.write_bytes(b'{"question": "Q: caf\xe9 1 + 1 = ?", "solution": "2"}\n')
    refused(cli_args(assets, tmp_path / "out", "--target", str(target)), f"target: {target} is not UTF-8", "save the file as UTF-8")
    config = tmp_path / "cfg.yaml"
    config.write_bytes(b"run_name: caf\xe9\n")
    refused(cli_args(assets, tmp_path / "out", "--config", str(config)), f"config: {config} is not UTF-8")
    config.write_text("max_steps: [1\n")
    refused(cli_args(assets, tmp_path / "out", "--config", str(config)), f"config: {config} is not valid YAML")
    untouched(tmp_path / "out")


@pytest.mark.parametrize("column,bad", [("prompt", None), ("prompt", 5), ("prompt", ["a", "b"]), ("prompt", ""),
                                        ("prompt", [{"role": "user", "content": "Q"}]), ("answer", None),
                                        ("answer", 4), ("answer", {"x": 1}), ("answer", " ")])
def test_build_pool_refuses_prompts_and_answers_that_are_not_text(tiny_model_dir, tmp_path, column, bad):
    from heal_hf import cli

    rows = [{"prompt": f"Q: {i} + 1 = ?\nA:", "answer": str(i + 1)} for i in range(3)]
    rows[1][column] = bad
    prompts = write_jsonl(tmp_path / "p.jsonl", rows)
    code, _, err = run_cli_any(cli, ["build-pool", "--model", str(tiny_model_dir), "--dataset", str(prompts),
                                     "--out", str(tmp_path / "pool")])
    assert code == 2 and f"values of column {column!r} are not non-empty text: " in err and "row 1 (" in err, err
    assert "Traceback" not in err and not (tmp_path / "pool").exists()


def run_cli_any(cli, argv):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()
