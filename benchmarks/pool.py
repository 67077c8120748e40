"""General-entropy pool building throughput: heal-hf's batched builder vs a one-prompt-at-a-time loop, and its two phases.

    python benchmarks/pool.py [--model PATH] [--prompts 128] [--samples 8] [--max-new-tokens 48]
                              [--batch-size 512] [--threads N]

Both sides sample the same prompts with the same model and settings and produce the
same kind of rows (k responses, token entropies, verifier outcomes, profiles):
- naive: a loop that calls `sample_with_entropies` on one prompt at a time (its k
  responses in one generate call), verifies them and makes its pool row;
- heal-hf: `build_pool` (batch_size sequences per generate call), including writing
  the parquet shards, the pool scores and the dataset card;
- heal-hf two-phase: `build_pool` with backend "transformers-two-phase": the same
  samples, their entropies from one teacher-forced forward per batch instead of
  during generation (the path vLLM generation takes; vLLM itself is not run here).
It prints prompts/s and generated tokens/s of each, the speed-up over the naive loop
(goal: >= 5x), and the two-phase build's time over the one-phase build's.
The default model is a randomly initialized Llama of the toy reasoner's size (4
layers, width 128, char tokenizer); pass --model for a saved checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time

import datasets
import torch

from heal_hf.app.pool_build import build_pool
from heal_hf.core.verifiers import numeric_match
from heal_hf.data.models import load_causal_lm
from heal_hf.data.pool import (
    PoolBuildConfig,
    load_pool,
    pool_rows,
    tokenizer_fingerprint,
)
from heal_hf.data.rollout import sample_with_entropies
from heal_hf.toy.tiny import tiny_causal_lm


def naive_build(model, tokenizer, prompts: list[str], answers: list[str], config: PoolBuildConfig) -> list[dict]:
    """One prompt per generate call, one row at a time."""
    rows = []
    for i, (prompt, answer) in enumerate(zip(prompts, answers)):
        out = sample_with_entropies(model, tokenizer, [prompt], num_samples=config.samples_per_prompt,
                                    max_new_tokens=config.max_new_tokens, seed=config.seed + i,
                                    batch_size=config.samples_per_prompt)
        passed = [[numeric_match(text, answer) for text in out.texts[0]]]
        rows += pool_rows([prompt], [answer], ["bench"], out.texts, out.entropies, passed, "bench",
                          tokenizer_fingerprint(tokenizer), config.sampling(), bins=config.bins)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a saved causal LM (default: a toy-reasoner-sized tiny Llama)")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--samples", type=int, default=8, help="k responses per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=512, help="heal-hf: sequences per generate call")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        model, tokenizer = load_causal_lm(args.model, device="cpu", dtype="float32")
    else:
        model, tokenizer = tiny_causal_lm(seed=0, hidden_size=128, num_layers=4)
    prompts = [f"Q: {17 * i % 90 + 10} + {31 * i % 80 + 10} = ?\nA:" for i in range(args.prompts)]
    answers = [str((17 * i % 90 + 10) + (31 * i % 80 + 10)) for i in range(args.prompts)]
    config = PoolBuildConfig(samples_per_prompt=args.samples, max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size, shard_size=args.prompts)
    sample_with_entropies(model, tokenizer, prompts[:2], num_samples=2, max_new_tokens=4)  # warm-up, untimed

    start = time.perf_counter()
    naive_rows = naive_build(model, tokenizer, prompts, answers, config)
    naive_s = time.perf_counter() - start
    naive_tokens = sum(sum(r["lengths"]) for r in naive_rows)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_pool(model, tokenizer, datasets.Dataset.from_dict({"prompt": prompts, "answer": answers}),
                   f"{tmp}/pool", config, model_id="bench", dataset_id="bench", progress=False)
        heal_s = time.perf_counter() - start
        pool = load_pool(f"{tmp}/pool")
        heal_tokens = sum(sum(x) for x in pool["lengths"])
        assert len(pool) == len(naive_rows) == args.prompts

        two_phase = dataclasses.replace(config, backend="transformers-two-phase")
        start = time.perf_counter()
        build_pool(model, tokenizer, datasets.Dataset.from_dict({"prompt": prompts, "answer": answers}),
                   f"{tmp}/two-phase", two_phase, model_id="bench", dataset_id="bench", progress=False)
        two_s = time.perf_counter() - start
        scored = load_pool(f"{tmp}/two-phase")
        assert list(scored["responses"]) == list(pool["responses"])  # the same samples
        gap = max(abs(a - b) for r1, r2 in zip(pool["token_entropies"], scored["token_entropies"])
                  for e1, e2 in zip(r1, r2) for a, b in zip(e1, e2))

    params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.model or 'tiny Llama (random init)'}, {params / 1e6:.2f}M parameters; "
          f"{args.prompts} prompts x {args.samples} responses, <= {args.max_new_tokens} new tokens; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'builder':<34}{'seconds':>9}{'prompts/s':>11}{'tokens/s':>11}")
    print(f"{'naive (1 prompt per generate)':<34}{naive_s:>9.2f}{args.prompts / naive_s:>11.2f}"
          f"{naive_tokens / naive_s:>11.0f}")
    print(f"{f'heal-hf build_pool ({args.batch_size} seq/call)':<34}{heal_s:>9.2f}{args.prompts / heal_s:>11.2f}"
          f"{heal_tokens / heal_s:>11.0f}")
    print(f"{'heal-hf two-phase (generate, score)':<34}{two_s:>9.2f}{args.prompts / two_s:>11.2f}"
          f"{heal_tokens / two_s:>11.0f}")
    ratio = (args.prompts / heal_s) / (args.prompts / naive_s)
    print(f"speed-up (prompts/s): {ratio:.1f}x  (goal >= 5x)")
    print(f"two-phase cost: {two_s / heal_s:.2f}x the one-phase build's time (same samples; entropies within "
          f"{gap:.1e} nats)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
