"""The two-phase pool builder (generate, then one teacher-forced forward), resume, processes, and vLLM's absence.

vLLM itself cannot run here (no GPU build): everything around it is tested with
transformers as the generator; `vllm_completion_ids` is not exercised.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import datasets
import numpy as np
import pytest
from conftest import addition_rows, peaked_tiny_lm
from huggingface_hub import DatasetCard
from test_pool_build import _assert_same_rows, _cli_args, _config, _env, _snapshot

from heal_hf.app.pool_build import build_pool
from heal_hf.cli import main
from heal_hf.data.pool import load_pool, sample_pool_rows
from heal_hf.data.pool_shards import MANIFEST_NAME, PoolBuildConfig, shard_name
from heal_hf.data.rollout import (
    VLLM_MISSING,
    completion_entropies,
    sample_with_entropies,
)
from heal_hf.toy.tiny import tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_thread")
TWO_PHASE = "transformers-two-phase"
# Columns computed from the entropies: equal within float rounding, not bit for bit.
ENTROPY_COLUMNS = ("token_entropies", "entropy_curves", "magnitude", "total_variation", "volatility", "mean_entropy",
                   "curve_diversity", "features", "uncertainty_score", "diversity_score")


def _build(out, **overrides):
    model, tokenizer = tiny_causal_lm(seed=0)
    return build_pool(model, tokenizer, datasets.Dataset.from_list(addition_rows(13)), out, _config(**overrides),
                      model_id="tiny-llama", dataset_id="toy-addition", progress=False, license="apache-2.0")


def _flat(values) -> np.ndarray:
    """Any nesting of lists of floats, flattened in order."""
    if isinstance(values, (int, float)):
        return np.asarray([values], dtype=np.float64)
    parts = [_flat(v) for v in values]
    return np.concatenate(parts) if parts else np.zeros(0)


def test_teacher_forced_entropies_equal_those_recorded_while_sampling():
    """Score the one-phase sampler's own token ids (other batches, other padding): within 1e-5."""
    model, tok = peaked_tiny_lm(seed=1)
    prompts = [f"Q: {i} + {3 * i} = ?\nA:" for i in range(1, 8)] + ["Q: 100 + 1 = ?\nA:"]
    out = sample_with_entropies(model, tok, prompts, num_samples=3, max_new_tokens=16, temperature=0.7, top_k=5,
                                top_p=0.9, seed=3, batch_size=6)
    recorded = [e for per in out.entropies for e in per]
    assert len({round(x, 3) for e in recorded for x in e}) > 50  # peaked: entropies vary by token
    assert any(len(i) < 16 for per in out.token_ids for i in per)  # some end at EOS, so EOS is scored too
    prompt_ids = [tok(p)["input_ids"] for p in prompts for _ in range(3)]
    scored = completion_entropies(model, prompt_ids, [i for per in out.token_ids for i in per], temperature=0.7,
                                  batch_size=5, pad_id=tok.pad_token_id)
    assert [len(e) for e in scored] == [len(e) for e in recorded]
    np.testing.assert_allclose(_flat(scored), _flat(recorded), atol=1e-5, rtol=0)
    # The two-phase sampler draws the same samples and gives the same entropies.
    two = sample_with_entropies(model, tok, prompts, num_samples=3, max_new_tokens=16, temperature=0.7, top_k=5,
                                top_p=0.9, seed=3, batch_size=6, two_phase=True)
    assert two.token_ids == out.token_ids and two.texts == out.texts and two.tokens == out.tokens
    np.testing.assert_allclose(_flat([e for per in two.entropies for e in per]), _flat(recorded), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def two_phase_pool(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("two-phase") / "pool", backend=TWO_PHASE)


def test_two_phase_pool_equals_the_one_phase_pool(built_pool, two_phase_pool):
    one, two = load_pool(built_pool), load_pool(two_phase_pool)
    assert one.column_names == two.column_names and len(one) == len(two) == 13
    for column in one.column_names:
        if column in ENTROPY_COLUMNS:
            np.testing.assert_allclose(_flat(two[column]), _flat(one[column]), atol=1e-5, rtol=0, err_msg=column)
        else:  # the same samples: responses, lengths, verdicts, sampling settings, model
            assert list(two[column]) == list(one[column]), column
    manifest = json.loads((two_phase_pool / MANIFEST_NAME).read_text())
    assert manifest["config"]["backend"] == TWO_PHASE
    card = DatasetCard.load(two_phase_pool / "README.md").text
    assert "--batch-size 24 --backend transformers-two-phase" in card  # the equivalent command rebuilds it
    assert "--backend" not in DatasetCard.load(built_pool / "README.md").text


def test_an_interrupted_two_phase_build_resumes_to_the_same_rows(two_phase_pool, tmp_path):
    out = tmp_path / "pool"
    shutil.copytree(two_phase_pool, out)
    for i in (1, 2):  # the build stopped after shard 0, mid-write of shard 1
        (out / "data" / shard_name(i, 3)).unlink()
    (out / "data" / f".{shard_name(1, 3)}.999.tmp").write_bytes(b"partial")
    (out / "README.md").unlink()
    kept = _snapshot(out / "data")[shard_name(0, 3)]
    with pytest.raises(ValueError, match="incomplete"):
        load_pool(out)
    _build(out, backend=TWO_PHASE)
    after = _snapshot(out / "data")
    assert sorted(after) == [shard_name(i, 3) for i in range(3)] and after[shard_name(0, 3)] == kept
    _assert_same_rows(load_pool(out), load_pool(two_phase_pool))
    # Another backend is another build: resuming with it changes nothing.
    (out / "data" / shard_name(2, 3)).unlink()
    before = _snapshot(out)
    with pytest.raises(ValueError, match="other settings.*'backend': 'transformers-two-phase'"):
        _build(out)
    assert _snapshot(out) == before


def test_backend_vllm_without_vllm_is_one_line_before_anything_is_written(tiny_model_dir, prompts_file, tmp_path,
                                                                          capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # absent even where it is installed (it is not, here)
    assert importlib.util.find_spec("vllm") is None
    assert main(_cli_args(tiny_model_dir, prompts_file, tmp_path / "cli", backend="vllm")) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert errors == [f"heal-hf build-pool: error: {VLLM_MISSING}"] and "pip install 'heal-hf[vllm]'" in errors[0]
    assert not (tmp_path / "cli").exists()
    with pytest.raises(ValueError, match=r"pip install 'heal-hf\[vllm\]'"):
        _build(tmp_path / "lib", backend="vllm")
    assert not (tmp_path / "lib").exists()
    # Rows sampled for vLLM need the engine; any other backend must not get one.
    model, tok = tiny_causal_lm(seed=0)
    for backend, llm in (("vllm", None), ("transformers", object())):
        with pytest.raises(ValueError, match="pass a vllm.LLM exactly when backend is 'vllm'"):
            sample_pool_rows(model, tok, ["Q: 1 + 1 = ?\nA:"], ["2"], ["s"], PoolBuildConfig(backend=backend), 0, "m",
                             llm=llm)
    with pytest.raises(ValueError, match="backend: expected one of transformers, transformers-two-phase, vllm"):
        PoolBuildConfig(backend="sglang").validate()


@pytest.mark.slow
def test_accelerate_launch_two_processes_equals_one_two_phase(two_phase_pool, tiny_model_dir, prompts_file, tmp_path):
    out = tmp_path / "pool"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "heal_hf.cli"]
    proc = subprocess.run([*launch, *_cli_args(tiny_model_dir, prompts_file, out, progress=True, license="apache-2.0",
                                               backend=TWO_PHASE)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "build-pool [1/2]" in proc.stderr and "build-pool [2/2]" in proc.stderr  # both processes built shards
    _assert_same_rows(load_pool(out), load_pool(two_phase_pool))  # bit for bit: same shards, seeds and threads
