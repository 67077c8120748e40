"""Shared fixtures and helpers: tiny causal LMs, their prompts, one small pool built from them, a free port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Iterator

import datasets
import pytest
import torch

from heal_hf.app.pool_build import build_pool
from heal_hf.data.pool import PoolBuildConfig
from heal_hf.toy.tiny import tiny_causal_lm

UNDER_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
"""CI sets CI=true: there a missing tool fails the run instead of skipping its tests."""


def require(available: bool, reason: str) -> None:
    """Skip the calling test when a tool it needs is missing here; fail it under CI (a skipped test is not a pass)."""
    if available:
        return
    if UNDER_CI:
        pytest.fail(f"{reason}; CI=true, so this fails instead of skipping: install it on the CI machine", pytrace=False)
    pytest.skip(reason)


# Small enough to build in seconds on 2 cores, large enough for several shards.
TINY_POOL_CONFIG = dict(samples_per_prompt=3, bins=8, max_new_tokens=12, shard_size=5, batch_size=24)


def peaked_tiny_lm(seed: int = 0):
    """A tiny random Llama with scaled-up weights, so entropies vary by token instead of sitting at log(V)."""
    model, tok = tiny_causal_lm(seed=seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.mul_(6)
    return model, tok


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def greedy_accuracy(model, tokenizer, rows: list[tuple[str, str]], verifier: str, max_new_tokens: int) -> float:
    """Share of (prompt, answer) rows a model answers right: greedy, one unpadded `generate` per prompt
    (independent of heal_hf's batched, left-padded evaluation)."""
    from heal_hf.core.verifiers import get_verifier

    check = get_verifier(verifier)
    right = 0.0
    with torch.no_grad():
        for prompt, answer in rows:
            ids = tokenizer(prompt, return_tensors="pt")
            out = model.generate(**ids, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
            right += check(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True), answer)
    return right / len(rows)


def addition_rows(n: int) -> list[dict[str, str]]:
    """General-domain-like rows: an addition prompt, its answer and a family name."""
    return [
        {"question": f"Q: {i} + {i + 3} = ?\nA:", "solution": str(2 * i + 3), "family": "add" if i % 3 else "add3"}
        for i in range(n)
    ]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with n torch threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: what torchrun gives each process (so pools compare bit for bit), and
    much faster for tiny models than two threads fighting over a busy 2-core machine."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialized tiny Llama + char tokenizer saved with save_pretrained (no download)."""
    folder = tmp_path_factory.mktemp("tiny-lm")
    model, tokenizer = tiny_causal_lm(seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def prompts_file(tmp_path_factory) -> Path:
    """13 prompts as JSON lines with non-default column names (question / solution / family)."""
    path = tmp_path_factory.mktemp("prompts") / "addition.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in addition_rows(13)))
    return path


@pytest.fixture(scope="session")
def built_pool(tmp_path_factory) -> Path:
    """A finalized pool folder (13 prompts, 3 shards) built in-process from the tiny model. Read-only."""
    out = tmp_path_factory.mktemp("pool") / "general-entropy-pool"
    model, tokenizer = tiny_causal_lm(seed=0)
    config = PoolBuildConfig(prompt_column="question", answer_column="solution", source_column="family",
                             **TINY_POOL_CONFIG)
    dataset = datasets.Dataset.from_list(addition_rows(13))
    with torch_threads(1):
        build_pool(model, tokenizer, dataset, out, config, model_id="tiny-llama", dataset_id="toy-addition",
                   progress=False, license="apache-2.0")
    return out
