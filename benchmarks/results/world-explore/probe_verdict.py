"""Can the toy architecture learn a verdict at all? A probe, not a reasoner candidate.

    nice -n 10 python benchmarks/results/world-explore/probe_verdict.py [--steps 600] [--out probe-verdict]

G2's and G3's reasoners compute a check's value right most of the time but do not compare it
with the goal (G3's `check` family, the verdict alone, passes 0.56: a coin). This probe trains
the reasoner's architecture (`train_toy_reasoner.py`'s defaults: 4 layers, width 128) from
scratch on `check` problems only, in two formats, the same steps, data and seed each:

- `as-is`:    ` 61+1=62 no. Answer: no` (the goal is only in the question, `Q: 61+1=65?`);
- `restated`: ` 61+1=62 vs 65 no. Answer: no` (the goal copied beside the value, so that the
  verdict compares two neighbouring numbers);
- `difference`: ` 61+1=62, 65-62=3 no. Answer: no` (the goal minus the value worked out, so that the
  verdict reads one number: yes exactly when it is 0).

and reports each one's greedy verdict accuracy on 200 test problems (chance: 0.5), split by
one-operation and three-operand checks. Writes NAME.json beside this script.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

from heal_hf.app.evaluation import greedy_completions
from heal_hf.core.verifiers import extract_answer
from heal_hf.toy import tasks
from heal_hf.toy.tiny import tiny_causal_lm

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


def _trainer():
    spec = importlib.util.spec_from_file_location("train_toy_reasoner", ROOT / "datasets_scripts" / "train_toy_reasoner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def restated(row: dict) -> dict:
    """The row with the goal copied beside the working's value: ` 61+1=62 vs 65 no. Answer: no`."""
    claimed = row["prompt"].removeprefix("Q: ").split("?")[0].rsplit("=", 1)[1]
    working, verdict = row["response"].split(". Answer:")[0].rsplit(" ", 1)
    return {**row, "response": f"{working} vs {claimed} {verdict}. Answer: {row['answer']}"}


def difference(row: dict) -> dict:
    """The row with the goal minus the value worked: ` 61+1=62, 65-62=3 no. Answer: no`."""
    claimed = int(row["prompt"].removeprefix("Q: ").split("?")[0].rsplit("=", 1)[1])
    working, verdict = row["response"].split(". Answer:")[0].rsplit(" ", 1)
    value = int(working.rsplit("=", 1)[1])
    return {**row, "response": f"{working}, {claimed}-{value}={claimed - value} {verdict}. Answer: {row['answer']}"}


FORMATS = {"as-is": lambda r: r, "restated": restated, "difference": difference}


def train_and_score(fmt: str, steps: int, seed: int, train_rows: list[dict], test_rows: list[dict]) -> dict:
    script = _trainer()
    rows = [FORMATS[fmt](r) for r in train_rows]
    torch.manual_seed(seed)
    model, tokenizer = tiny_causal_lm(seed=seed, hidden_size=128, num_layers=4, num_heads=4, max_positions=256)
    ids, starts = script.encode(rows, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / steps))))
    order, indices = random.Random(seed), []
    started = time.perf_counter()
    model.train()
    for _ in range(steps):
        if len(indices) < 64:
            fresh = list(range(len(ids)))
            order.shuffle(fresh)
            indices += fresh
        pick, indices = indices[:64], indices[64:]
        batch = script.batch_tensors([ids[i] for i in pick], [starts[i] for i in pick], tokenizer.pad_token_id)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    greedy = greedy_completions(model, tokenizer, [r["prompt"] for r in test_rows], 48, chat_template=False, batch_size=64)
    right = [float(extract_answer(g).strip() == r["answer"]) for g, r in zip(greedy, test_rows)]
    three = [len([c for c in r["prompt"].split("=")[0] if c in "+-*"]) == 2 for r in test_rows]
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"format": fmt, "steps": steps, "minutes": (time.perf_counter() - started) / 60, "final_loss": loss.item(),
            "verdict_accuracy": mean(right),
            "one_operation": mean([x for x, t in zip(right, three) if not t]),
            "three_operands": mean([x for x, t in zip(right, three) if t]),
            "examples": greedy[:4]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--out", default="probe-verdict")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train_rows = tasks.generate("check", 2500, split="train", seed=args.seed)
    test_rows = tasks.generate("check", 200, split="test", seed=args.seed)
    results = [train_and_score(fmt, args.steps, args.seed, train_rows, test_rows) for fmt in args.formats]
    (HERE / f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        print(f"{r['format']:<10} verdict accuracy {r['verdict_accuracy']:.3f} (one operation {r['one_operation']:.3f}, "
              f"three operands {r['three_operands']:.3f}), loss {r['final_loss']:.3f}, {r['minutes']:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
