"""The pool builder: shards, resume, finalize, card, CLI, multi-process, and bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
from conftest import TINY_POOL_CONFIG, addition_rows
from huggingface_hub import DatasetCard

from heal_hf.app.pool_build import build_pool, finalize_pool
from heal_hf.cli import main
from heal_hf.data.models import load_causal_lm
from heal_hf.data.pool import POOL_FEATURES, bundled_pool_path, load_pool, with_pool_scores
from heal_hf.data.pool_shards import MANIFEST_NAME, PoolBuildConfig, shard_name, shard_seed
from heal_hf.hub.cards import pool_card_text
from heal_hf.toy.tiny import tiny_causal_lm

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")


def _config(**overrides) -> PoolBuildConfig:
    settings = dict(prompt_column="question", answer_column="solution", source_column="family", **TINY_POOL_CONFIG)
    return PoolBuildConfig(**{**settings, **overrides})


def _cli_args(model_dir: Path, prompts: Path, out: Path, progress: bool = False, **overrides) -> list[str]:
    settings = {"prompt-column": "question", "answer-column": "solution", "source-column": "family",
                **{k.replace("_", "-"): v for k, v in TINY_POOL_CONFIG.items()}, **overrides}
    args = ["build-pool", "--model", str(model_dir), "--dataset", str(prompts), "--out", str(out),
            "--model-id", "tiny-llama", *([] if progress else ["--no-progress"])]
    for key, value in settings.items():
        args += [f"--{key}", str(value)]
    return args


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_same_rows(a: datasets.Dataset, b: datasets.Dataset) -> None:
    assert a.column_names == b.column_names and len(a) == len(b)
    for column in a.column_names:
        assert list(a[column]) == list(b[column]), column


def test_a_built_folder_loads_with_load_dataset_and_matches_the_schema(built_pool):
    files = sorted(p.name for p in (built_pool / "data").iterdir())
    assert files == [shard_name(i, 3) for i in range(3)]  # 13 prompts in shards of 5, no temporaries left
    ds = datasets.load_dataset(str(built_pool), split="train")  # the card's configs: no script, no arguments
    assert ds.features == POOL_FEATURES and len(ds) == 13
    assert list(ds["prompt"]) == [r["question"] for r in addition_rows(13)]
    assert list(ds["source"]) == [r["family"] for r in addition_rows(13)]
    assert all(len(r) == 3 and all(len(c) == 8 for c in r) for r in ds["entropy_curves"])
    assert ds[0]["sampling"] == {"num_samples": 3, "max_new_tokens": 12, "temperature": 1.0, "top_p": 1.0,
                                 "top_k": 0, "seed": 0}
    # finalize's scores are the ranks over the whole pool (what with_pool_scores gives).
    unscored = ds.map(lambda r: {"uncertainty_score": math.nan, "diversity_score": math.nan})
    rescored = with_pool_scores(unscored, seed=0)
    assert list(ds["uncertainty_score"]) == list(rescored["uncertainty_score"])
    assert list(ds["diversity_score"]) == list(rescored["diversity_score"])


def test_the_bundled_pool_card_is_the_one_its_template_writes_today():
    bundled = bundled_pool_path()
    assert (bundled / "README.md").read_text() == pool_card_text(bundled), (
        "the bundled pool's card is stale: rewrite it with heal_hf.hub.cards.write_pool_card(bundled_pool_path())")


def test_the_dataset_card(built_pool):
    card = DatasetCard.load(built_pool / "README.md")
    assert card.data.license == "apache-2.0"
    assert card.data.configs == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert card.data.size_categories == ["n<1K"] and "reinforcement-learning" in card.data.task_categories
    assert {"heal", "rlvr"} <= set(card.data.tags)
    features = datasets.Features._from_yaml_list(card.data.dataset_info["features"])
    assert features == POOL_FEATURES
    text = card.text
    for expected in ('load_dataset("heal/general-entropy-pool"', "| model | `tiny-llama` |",
                     "| responses per prompt (k) | 3 |", "| curve bins (K) | 8 |", "| prompts | 13 |",
                     "| responses | 39 |", "`add` ", "arXiv", "2604.17928", "Liu and Hu and Wang"):
        assert expected in text, expected
    for column in POOL_FEATURES:
        assert f"| `{column}` |" in text, column


def test_resume_rebuilds_only_the_missing_shard_with_the_same_rows(built_pool, tmp_path):
    out = tmp_path / "pool"
    shutil.copytree(built_pool, out)
    before = load_pool(out)
    missing = out / "data" / shard_name(1, 3)
    missing.unlink()
    stale = out / "data" / f".{shard_name(1, 3)}.12345.tmp"  # what a kill -9 mid-write leaves
    stale.write_bytes(b"partial")
    kept = {name: stamp for name, stamp in _snapshot(out / "data").items() if name.startswith("train-")}
    with pytest.raises(ValueError, match="incomplete"):
        load_pool(out)
    model, tokenizer = tiny_causal_lm(seed=0)
    build_pool(model, tokenizer, datasets.Dataset.from_list(addition_rows(13)), out, _config(),
               model_id="tiny-llama", dataset_id="toy-addition", progress=False)
    after = _snapshot(out / "data")
    assert sorted(after) == [shard_name(i, 3) for i in range(3)]  # rebuilt, temporary gone
    assert all(after[name] == stamp for name, stamp in kept.items())  # the other shards were not rewritten
    _assert_same_rows(load_pool(out), before)


def test_process_split_gives_the_rows_of_one_process(built_pool, tmp_path):
    """Two processes' shard shares, built in turn, give the one-process pool."""
    out = tmp_path / "pool"
    model, tokenizer = tiny_causal_lm(seed=0)
    ds = datasets.Dataset.from_list(addition_rows(13))
    kwargs = dict(model_id="tiny-llama", dataset_id="toy-addition", progress=False, num_processes=2)
    build_pool(model, tokenizer, ds, out, _config(), process_index=1, **kwargs)
    assert sorted(p.name for p in (out / "data").iterdir()) == [shard_name(1, 3)]
    build_pool(model, tokenizer, ds, out, _config(), process_index=0, finalize=False, **kwargs)
    with pytest.raises(ValueError, match="no pool scores yet"):
        load_pool(out)
    finalize_pool(out, license="apache-2.0")
    _assert_same_rows(load_pool(out), load_pool(built_pool))
    assert (out / "README.md").read_bytes() == (built_pool / "README.md").read_bytes()
    assert shard_seed(0, 1) != shard_seed(0, 2) and shard_seed(0, 1) == shard_seed(0, 1)


def test_cli_build_pool_equals_the_library(built_pool, tiny_model_dir, prompts_file, tmp_path, capsys):
    out = tmp_path / "cli-pool"
    assert main(_cli_args(tiny_model_dir, prompts_file, out, license="apache-2.0")) == 0
    assert "load_dataset" in capsys.readouterr().out
    cli, lib = load_pool(out), load_pool(built_pool)
    assert json.loads((out / MANIFEST_NAME).read_text())["dataset"]["id"] == "addition.jsonl"  # no local path
    _assert_same_rows(cli, lib)


def test_bad_input_is_a_clear_error_and_changes_nothing(built_pool, tiny_model_dir, prompts_file, tmp_path, capsys):
    model, tokenizer = tiny_causal_lm(seed=0)
    ds = datasets.Dataset.from_list(addition_rows(13))
    # A dataset without the prompt column (library and CLI).
    with pytest.raises(ValueError, match="no 'prompt' column.*prompt_column"):
        build_pool(model, tokenizer, ds, tmp_path / "a", PoolBuildConfig(), progress=False)
    assert not (tmp_path / "a").exists()
    assert main(_cli_args(tiny_model_dir, prompts_file, tmp_path / "b", **{"prompt-column": "text"})) == 2
    assert "no 'text' column" in capsys.readouterr().err and not (tmp_path / "b").exists()
    # A model that is not a causal LM.
    from transformers import BertConfig, BertModel, T5Config

    encoder = BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32))
    with pytest.raises(ValueError, match="not a causal language model"):
        build_pool(encoder, tokenizer, ds, tmp_path / "c", _config(), progress=False)
    T5Config(d_model=16, num_layers=1, num_heads=2, d_ff=32, vocab_size=100).save_pretrained(tmp_path / "t5")
    with pytest.raises(ValueError, match="'t5' model, not a causal language model"):
        load_causal_lm(tmp_path / "t5")
    # An encoder-only BERT folder: `bert` is in the causal-LM mapping (BertLMHeadModel loads), but it attends both ways.
    from transformers import BertForMaskedLM

    BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32)).save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    assert main(_cli_args(tmp_path / "bert", prompts_file, tmp_path / "e")) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "BertLMHeadModel (bert) predicts each token from the tokens after it too" in errors[0]
    assert not (tmp_path / "e").exists()
    # An empty prompts file and a malformed one: one line naming the file, nothing written.
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "bad.jsonl").write_text('{"question": "Q: 1 + 1 = ?", "solution": "2"}\n{"question": \n')
    for name, message in (("empty.jsonl", "is empty; write one problem per row"), ("bad.jsonl", "line 2 is not JSON")):
        assert main(_cli_args(tiny_model_dir, tmp_path / name, tmp_path / "f")) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert len(errors) == 1 and errors[0].startswith(f"heal-hf build-pool: error: dataset: {tmp_path / name} ")
        assert message in errors[0] and not (tmp_path / "f").exists()
    # Per-row verifiers: a non-numeric answer is fine for `exact`, an unknown name is not.
    mixed = datasets.Dataset.from_dict({"prompt": ["Q: 1 + 1 = ?\nA:", "Q: reverse ab\nA:"], "answer": ["2", "ba"],
                                        "check": ["numeric", "exact"]})
    small = PoolBuildConfig(samples_per_prompt=2, bins=4, max_new_tokens=4, verifier_column="check")
    assert len(load_pool(build_pool(model, tokenizer, mixed, tmp_path / "m", small, progress=False))) == 2
    with pytest.raises(ValueError, match="holds no number"):
        build_pool(model, tokenizer, mixed, tmp_path / "n", PoolBuildConfig(max_new_tokens=4), progress=False)
    assert not (tmp_path / "n").exists()
    with pytest.raises(ValueError, match="unknown name 'regex'"):
        build_pool(model, tokenizer, mixed.map(lambda r: {"check": "regex"}), tmp_path / "o", small, progress=False)
    # A folder holding something else.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        build_pool(model, tokenizer, ds, tmp_path / "d", _config(), progress=False)
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["notes.txt"]
    # Resuming a pool with other settings (bins), another schema version, or a corrupt shard.
    out = tmp_path / "pool"
    shutil.copytree(built_pool, out)
    before = _snapshot(out)
    with pytest.raises(ValueError, match="other settings.*bins"):
        build_pool(model, tokenizer, ds, out, _config(bins=16), model_id="tiny-llama", dataset_id="toy-addition",
                   progress=False)
    with pytest.raises(ValueError, match="bins=8 but bins=16"):
        load_pool(out, bins=16)
    assert _snapshot(out) == before
    shard = out / "data" / shard_name(2, 3)
    shard.write_bytes(shard.read_bytes()[:200])  # truncated, as a copy cut short would leave it
    same = dict(model_id="tiny-llama", dataset_id="toy-addition", progress=False)
    for attempt in (lambda: build_pool(model, tokenizer, ds, out, _config(), **same), lambda: load_pool(out)):
        with pytest.raises(ValueError, match=f"{shard.name} is corrupt or truncated.*delete that file"):
            attempt()
    assert shard.stat().st_size == 200
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    (out / MANIFEST_NAME).write_text(json.dumps({**manifest, "schema_version": "0"}))
    with pytest.raises(ValueError, match="schema v0"):
        build_pool(model, tokenizer, ds, out, _config(), **same)


def _env() -> dict[str, str]:
    """The subprocesses' environment: this checkout first, one thread as in-process (see `one_thread`)."""
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow
def test_kill_9_then_resume_loses_and_duplicates_nothing(tiny_model_dir, prompts_file, tmp_path):
    out = tmp_path / "pool"
    args = [sys.executable, "-m", "heal_hf.cli", *_cli_args(tiny_model_dir, prompts_file, out, **{
        "shard-size": 1, "max-new-tokens": 40})]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((out / "data").glob("train-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in (out / "data").glob("train-*"))
    assert 1 <= len(done) < 13, f"the kill did not land mid-build: {len(done)} of 13 shards"
    assert subprocess.run(args, env=_env(), capture_output=True).returncode == 0
    resumed = load_pool(out)
    model, tokenizer = tiny_causal_lm(seed=0)
    reference = build_pool(model, tokenizer, datasets.Dataset.from_list(addition_rows(13)), tmp_path / "ref",
                           _config(shard_size=1, max_new_tokens=40), model_id="tiny-llama",
                           dataset_id="addition.jsonl", progress=False)
    assert list(resumed["prompt"]) == [r["question"] for r in addition_rows(13)]  # none lost, none twice
    _assert_same_rows(resumed, load_pool(reference))


@pytest.mark.slow
def test_accelerate_launch_two_processes_equals_one(built_pool, tiny_model_dir, prompts_file, tmp_path):
    out = tmp_path / "pool"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "heal_hf.cli"]
    proc = subprocess.run([*launch, *_cli_args(tiny_model_dir, prompts_file, out, progress=True,
                                               license="apache-2.0")],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "build-pool [1/2]" in proc.stderr and "build-pool [2/2]" in proc.stderr  # both processes built shards
    _assert_same_rows(load_pool(out), load_pool(built_pool))  # bit for bit: same shards, seeds and threads
