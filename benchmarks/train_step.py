"""GRPO step time: plain GRPO vs GRPO + the drop-in EDA reward vs HEALGRPOTrainer, in one run.

    python benchmarks/train_step.py [--steps 10] [--rounds 6] [--hidden-size 128] [--layers 4]
                                    [--completions 16] [--tokens 32] [--threads 1] [--num-iterations 1 2]

The same tiny Llama (built in-process from one seed), the same mixed data set (4 target
+ 12 general arithmetic problems), the same batch shape (`--completions` completions of
exactly `--tokens` tokens: `min_new_tokens` pins the length, so every step does the same
work) and the same seed for all three. Each round trains each trainer for `--steps`
steps, interleaved and in a rotating order (round r starts with trainer r mod 3) so that
load on a shared machine hits all three alike; the first generation cycle of each run
(warm-up) is dropped, and each later cycle of `num_iterations` steps counts as its mean step. Printed, per
trainer: the median wall time and the median CPU time of this process (all its threads)
of an optimizer step (generation + rewards + loss + update), their ratios to plain
GRPO, and the median over rounds of the CPU ratio within each round (steadier when the
machine's load changes between rounds). On a shared machine the CPU time is the steadier measure of the work a step does
(wall time also counts waiting for a core); with one torch thread (the default) it is
not inflated by threads spinning while they wait for each other. Goal: HEALGRPOTrainer <= 1.05x; the drop-in
pays one no-grad forward per batch plus the evaluate module's compute.

Each `--num-iterations` value is a case with its own table: 1 (HEALGRPOTrainer reads the
entropies off `generate` with a hook) and 2 (TRL re-scores every batch with a no-grad
forward for `old_per_token_logps`, and HEALGRPOTrainer takes the entropies from it).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import statistics
import time

import datasets
import evaluate
import torch
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from heal_hf.core.eda import EDAReference
from heal_hf.core.verifiers import verifier_reward
from heal_hf.data.rollout import sample_with_entropies
from heal_hf.metrics import EDA_METRIC_PATH
from heal_hf.toy.tiny import char_tokenizer
from heal_hf.trl import HEALConfig, HEALGRPOTrainer, eda_reward_function


class StepTimer(TrainerCallback):
    """(wall, process CPU) seconds of each optimizer step."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []
        self._start = (0.0, 0.0)

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = (time.perf_counter(), time.process_time())

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append((time.perf_counter() - self._start[0], time.process_time() - self._start[1]))


def tiny_model(hidden_size: int, layers: int, tokenizer) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def mixed_set() -> datasets.Dataset:
    target = [(f"Q: {i} + 5 = ?\nA:", str(i + 5), "target") for i in range(4)]
    general = [(f"Q: {i} * 3 = ?\nA:", str(3 * i), "general") for i in range(12)]
    return datasets.Dataset.from_dict({k: list(v) for k, v in zip(("prompt", "answer", "domain"), zip(*(target + general)))})


def run(
    kind: str, args: argparse.Namespace, tokenizer, metric, pool_reference: EDAReference, num_iterations: int
) -> list[tuple[float, float]]:
    """Train one trainer of `kind` for args.steps steps; (wall, CPU) seconds per step, averaged over each
    generation cycle (`num_iterations` steps), the first cycle dropped."""
    model = tiny_model(args.hidden_size, args.layers, tokenizer)
    common = dict(
        output_dir="/tmp/heal-train-step-bench", max_steps=args.steps, per_device_train_batch_size=args.completions,
        num_generations=4, max_completion_length=args.tokens, generation_kwargs={"min_new_tokens": args.tokens},
        learning_rate=1e-5, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, bf16=False,
        activation_checkpointing=False, disable_tqdm=True, seed=0, num_iterations=num_iterations,
    )
    timer = StepTimer()
    verify = verifier_reward("numeric")
    if kind == "HEALGRPOTrainer":
        trainer = HEALGRPOTrainer(model=model, reward_funcs=[verify], args=HEALConfig(**common), train_dataset=mixed_set(),
                                  processing_class=tokenizer, pool=pool_reference, callbacks=[timer])
    else:
        rewards, callbacks = [verify], [timer]
        if kind == "GRPO + drop-in EDA":
            rewards.append(eda_reward_function(metric, model, tokenizer, pool=pool_reference))
            callbacks.append(rewards[-1])  # it takes the trainer's temperature when training starts
        trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=GRPOConfig(**common), train_dataset=mixed_set(),
                              processing_class=tokenizer, callbacks=callbacks)
    with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints every step's log dict
        trainer.train()
    # Steps of one generation batch differ (only the first generates): time whole cycles, first one dropped.
    cycles = timer.times[num_iterations:]
    return [tuple(sum(t[i] for t in cycles[c : c + num_iterations]) / num_iterations for i in (0, 1))
            for c in range(0, len(cycles) - num_iterations + 1, num_iterations)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="steps per run (the first is dropped)")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved runs of each trainer")
    ap.add_argument("--hidden-size", type=int, default=128, help="model width")
    ap.add_argument("--layers", type=int, default=4, help="model depth")
    ap.add_argument("--completions", type=int, default=16, help="completions per step (4 per prompt)")
    ap.add_argument("--tokens", type=int, default=32, help="tokens per completion (fixed)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--num-iterations", type=int, nargs="+", default=[1, 2],
                    help="TRL num_iterations, one table each (2: TRL re-scores every batch)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()
    tokenizer = char_tokenizer()
    metric = evaluate.load(EDA_METRIC_PATH, keep_in_memory=True)
    general = [p for p, d in zip(mixed_set()["prompt"], mixed_set()["domain"]) if d == "general"]
    rollouts = sample_with_entropies(tiny_model(args.hidden_size, args.layers, tokenizer), tokenizer, general,
                                     num_samples=4, max_new_tokens=args.tokens, seed=0)
    pool_reference = EDAReference.from_entropies(rollouts.flat_entropies())  # a fallback for batches without general rows

    kinds = ["plain GRPO", "GRPO + drop-in EDA", "HEALGRPOTrainer"]
    params = sum(p.numel() for p in tiny_model(args.hidden_size, args.layers, tokenizer).parameters())
    print(f"model: {params / 1e6:.2f}M parameters; {args.completions} completions x {args.tokens} tokens per step; "
          f"{args.rounds} rounds x {args.steps} steps; torch threads {torch.get_num_threads()}")
    for num_iterations in args.num_iterations:
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        round_cpu: dict[str, list[float]] = {k: [] for k in kinds}  # per round: median CPU s/step
        for r in range(args.rounds):
            for kind in kinds[r % 3 :] + kinds[: r % 3]:
                steps = run(kind, args, tokenizer, metric, pool_reference, num_iterations)
                times[kind] += steps
                round_cpu[kind].append(statistics.median(cpu for _, cpu in steps))
                gc.collect()  # the previous trainer's memory, before the next one is timed
        medians = {k: [statistics.median(t[i] for t in times[k]) for i in (0, 1)] for k in kinds}
        wall0, cpu0 = medians["plain GRPO"]
        # Load from other processes drifts between rounds; a ratio taken within each round cancels it.
        paired = {k: statistics.median(c / c0 for c, c0 in zip(round_cpu[k], round_cpu["plain GRPO"])) for k in kinds}
        print(f"\nnum_iterations = {num_iterations}")
        print("| trainer | wall s/step | wall ratio | CPU s/step | CPU ratio | CPU ratio, median of rounds | cycles timed |")
        print("|---|---|---|---|---|---|---|")
        for kind in kinds:
            wall, cpu = medians[kind]
            print(f"| {kind} | {wall:.3f} | {wall / wall0:.3f} | {cpu:.3f} | {cpu / cpu0:.3f} | {paired[kind]:.3f} "
                  f"| {len(times[kind])} |")


if __name__ == "__main__":
    main()
