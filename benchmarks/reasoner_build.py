"""Toy reasoner build speed: one padded batch a step (every model before H23) vs the batch in micro-batches.

    python benchmarks/reasoner_build.py [--micro-batches 4] [--steps 40] [--rounds 3] [--threads 2] [--full-steps 4000]

`datasets_scripts/train_toy_reasoner.py`'s own mix, model and optimizer step for world explore with H21's
options (4,800 examples of each search target, check 7,500, missing_term 5,000; 38,304 rows), the same
shuffled batches of 64 in both cases: once as one batch padded to its longest row, once as `--micro-batches`
parts of rows of similar length, weighted to the same gradient (`train_toy_reasoner.micro_batches`). Each
round trains a fresh model from the same seed for `--steps` steps in each case, alternating which goes
first; the first 5 steps of each are warm-up and dropped. Printed: the share of the computed tokens that
are real (not padding) over an epoch's batches, the median ms a step, the ratio to one batch, and the
minutes `--full-steps` steps would take. Goal (issue 24, section 4): the reasoner rebuilt in at most 25
minutes on 2 cores, evaluation included.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import time
from pathlib import Path

import torch

from heal_hf.toy.tiny import tiny_causal_lm

SCRIPT = Path(__file__).resolve().parents[1] / "datasets_scripts" / "train_toy_reasoner.py"


def training_script():
    spec = importlib.util.spec_from_file_location("train_toy_reasoner", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def epoch_order(lengths: list[int], seed: int = 0) -> list[int]:
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    return order


def utilisation(script, lengths: list[int], starts: list[int], order: list[int], parts: int) -> float:
    real = padded = 0
    for k in range(0, len(order) // 64 * 64, 64):
        for run, _ in script.micro_batches(order[k : k + 64], lengths, starts, parts):
            real += sum(lengths[i] for i in run)
            padded += len(run) * max(lengths[i] for i in run)
    return real / padded


def time_steps(script, ids, starts, lengths, pad_id, order: list[int], parts: int, steps: int, warm: int = 5) -> list[float]:
    torch.manual_seed(0)
    model, _ = tiny_causal_lm(seed=0, hidden_size=128, num_layers=4, num_heads=4, max_positions=256)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01, betas=(0.9, 0.98))
    model.train()
    times = []
    for step in range(warm + steps):
        started = time.perf_counter()
        script.train_step(model, optimizer, ids, starts, lengths, order[step * 64 : (step + 1) * 64], parts, pad_id)
        if step >= warm:
            times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--micro-batches", type=int, default=4, help="--micro-batches value to compare (default 4)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per order and round (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating which order goes first (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, the reasoner's build)")
    parser.add_argument("--full-steps", type=int, default=4000, help="steps of a full build, for the projection (default 4000)")
    args = parser.parse_args(argv)
    if not 2 <= args.micro_batches <= 64 or args.steps < 1 or args.rounds < 1:
        parser.error("--micro-batches takes 2 to 64, --steps and --rounds 1 or more")
    torch.set_num_threads(args.threads)
    script = training_script()
    rows = script.training_rows(
        2500, script.parse_target_examples(["gym_equation=4800", "pair_sum=4800"], "explore"), 0, "explore",
        script.parse_target_try_share(["0.01", "pair_sum=0.02"], "explore"),
        script.parse_general_examples(["check=7500", "missing_term=5000"], "explore"),
        script.parse_direct_first_try(["1.0", "gym_equation=0.75"], "explore"))
    _, tokenizer = tiny_causal_lm(seed=0, hidden_size=128, num_layers=4, num_heads=4, max_positions=256)
    ids, starts = script.encode(rows, tokenizer)
    lengths = [len(seq) for seq in ids]
    order = epoch_order(lengths)
    cases = {"one batch (baseline)": 1, f"--micro-batches {args.micro_batches}": args.micro_batches}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(args.rounds):
        for name in list(cases)[r % 2 :] + list(cases)[: r % 2]:
            times[name] += time_steps(script, ids, starts, lengths, tokenizer.pad_token_id, order, cases[name], args.steps)
    base = statistics.median(times["one batch (baseline)"])
    print(f"{len(rows)} rows, {args.threads} threads, {args.rounds} x {args.steps} timed steps per case")
    print(f"{'case':<22}{'tokens real':>13}{'ms/step':>10}{'ratio':>8}{f'{args.full_steps} steps':>14}")
    for name, parts in cases.items():
        ms = statistics.median(times[name])
        print(f"{name:<22}{utilisation(script, lengths, starts, order, parts):>13.2f}{ms * 1e3:>10.1f}{base / ms:>8.2f}"
              f"{ms * args.full_steps / 60:>11.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
