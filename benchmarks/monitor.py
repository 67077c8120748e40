"""EntropyMonitor's cost: a tiny GRPO run with and without it, in one process, and its own time per step.

    python benchmarks/monitor.py [--steps 12] [--rounds 6] [--hidden-size 128] [--layers 4]
                                 [--completions 16] [--tokens 32] [--threads 1] [--history 10 100 1000 10000]

Plain TRL GRPOTrainer on the tiny Llama and arithmetic prompts of benchmarks/train_step.py
(`--completions` completions of exactly `--tokens` tokens, logging every step: the
monitor forecasts at every log, its worst case), trained `--rounds` times each way,
interleaved (round r starts with the other arm when r is odd). Printed:
1. the median process CPU time and wall time of a step, without the monitor, with it,
   and with it plus `reference=` (EDA distance per completion), and their ratios (the
   per-round paired CPU ratio too); on a shared machine these ratios carry noise of
   about +-1% themselves;
2. the monitor's own CPU time per step, measured inside it (its callbacks and its
   forward hook), as a share of the step: the precise number;
3. the CPU time of one log (record + forecast + verdict) when the run already has
   `--history` logged steps: the forecast thins long histories, so it stays bounded.
The first step of each run (warm-up) is dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import torch
from train_step import StepTimer, mixed_set, tiny_model
from transformers import TrainerControl, TrainerState
from trl import GRPOConfig, GRPOTrainer

from heal_hf.core.eda import EDAReference
from heal_hf.core.verifiers import verifier_reward
from heal_hf.data.rollout import sample_with_entropies
from heal_hf.toy.tiny import char_tokenizer
from heal_hf.trl import EntropyMonitor

OUT = Path("/tmp/heal-monitor-bench")


class TimedMonitor(EntropyMonitor):
    """EntropyMonitor that adds up the process CPU time spent in its callbacks and its forward hook."""

    cpu = 0.0

    def _timed(self, method, *args, **kwargs):
        start = time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            self.cpu += time.process_time() - start

    def _on_forward(self, *args, **kwargs):
        return self._timed(super()._on_forward, *args, **kwargs)

    def on_log(self, *args, **kwargs):
        return self._timed(super().on_log, *args, **kwargs)

    def on_save(self, *args, **kwargs):
        return self._timed(super().on_save, *args, **kwargs)

    def on_train_end(self, *args, **kwargs):
        return self._timed(super().on_train_end, *args, **kwargs)


def run(arm: str, args: argparse.Namespace, tokenizer, reference: EDAReference) -> tuple[list[tuple[float, float]], float]:
    """(wall, CPU) seconds of each step but the first, and the monitor's CPU seconds per step (0 without one)."""
    model = tiny_model(args.hidden_size, args.layers, tokenizer)
    config = GRPOConfig(
        output_dir=str(OUT / arm), max_steps=args.steps, per_device_train_batch_size=args.completions,
        num_generations=4, max_completion_length=args.tokens, generation_kwargs={"min_new_tokens": args.tokens},
        learning_rate=1e-5, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, bf16=False,
        activation_checkpointing=False, disable_tqdm=True, seed=0,
    )
    timer = StepTimer()
    monitor = None if arm == "GRPO" else TimedMonitor(reference=reference if "reference" in arm else None)
    trainer = GRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric")], args=config,
                          train_dataset=mixed_set(), processing_class=tokenizer, callbacks=[timer])
    if monitor is not None:
        trainer.add_callback(monitor)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train()
    own = 0.0 if monitor is None else monitor.cpu / args.steps
    return timer.times[1:], own


def log_cost(history: int, repeats: int = 20) -> float:
    """CPU seconds of one on_log of a monitor whose run already logged `history` steps (synthetic, falling entropy)."""
    rng = np.random.default_rng(0)
    monitor = EntropyMonitor(warn=False, write_every_s=float("inf"))
    state = TrainerState(max_steps=2 * history)
    state.log_history = [{"step": s, "entropy": float(np.exp(-s / history + rng.normal(0, 0.1))), "reward": 0.5,
                          "frac_reward_zero_std": 0.2} for s in range(1, history + 1)]
    state.global_step = history
    args, control = SimpleNamespace(output_dir=str(OUT / "log-cost")), TrainerControl()
    monitor.on_train_begin(args, state, control)
    start = time.process_time()
    for k in range(repeats):
        state.global_step += 1
        logs = {"entropy": 0.3, "reward": 0.5, "frac_reward_zero_std": 0.2}
        state.log_history.append({**logs, "step": state.global_step})
        monitor.on_log(args, state, control, logs=logs)
    return (time.process_time() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12, help="steps per run (the first is dropped)")
    ap.add_argument("--rounds", type=int, default=6, help="runs of each arm, interleaved")
    ap.add_argument("--hidden-size", type=int, default=128, help="model width")
    ap.add_argument("--layers", type=int, default=4, help="model depth")
    ap.add_argument("--completions", type=int, default=16, help="completions per step (4 per prompt)")
    ap.add_argument("--tokens", type=int, default=32, help="tokens per completion (fixed)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--history", type=int, nargs="*", default=[10, 100, 1000, 10000],
                    help="logged steps before the timed logs, for the per-log cost")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()
    tokenizer = char_tokenizer()
    general = [p for p, d in zip(mixed_set()["prompt"], mixed_set()["domain"]) if d == "general"]
    rollouts = sample_with_entropies(tiny_model(args.hidden_size, args.layers, tokenizer), tokenizer, general,
                                     num_samples=4, max_new_tokens=args.tokens, seed=0)
    reference = EDAReference.from_entropies(rollouts.flat_entropies())
    params = sum(p.numel() for p in tiny_model(args.hidden_size, args.layers, tokenizer).parameters())
    print(f"model: {params / 1e6:.2f}M parameters; {args.completions} completions x {args.tokens} tokens per step; "
          f"{args.rounds} rounds x {args.steps} steps, logging every step; torch threads {torch.get_num_threads()}")

    arms = ["GRPO", "GRPO + EntropyMonitor", "GRPO + EntropyMonitor(reference=)"]
    times: dict[str, list[tuple[float, float]]] = {a: [] for a in arms}
    round_cpu: dict[str, list[float]] = {a: [] for a in arms}
    own: dict[str, list[float]] = {a: [] for a in arms}
    for r in range(args.rounds):
        for arm in arms[r % 3:] + arms[: r % 3]:
            steps, monitor_cpu = run(arm, args, tokenizer, reference)
            times[arm] += steps
            round_cpu[arm].append(statistics.median(c for _, c in steps))
            own[arm].append(monitor_cpu)
            gc.collect()
    medians = {a: [statistics.median(t[i] for t in times[a]) for i in (0, 1)] for a in arms}
    wall0, cpu0 = medians["GRPO"]
    paired = {a: statistics.median(c / c0 for c, c0 in zip(round_cpu[a], round_cpu["GRPO"])) for a in arms}
    print("\n| run | wall s/step | wall ratio | CPU s/step | CPU ratio | CPU ratio, median of rounds "
          "| monitor's own CPU per step | share of the step |")
    print("|---|---|---|---|---|---|---|---|")
    for arm in arms:
        wall, cpu = medians[arm]
        mine = statistics.median(own[arm])
        print(f"| {arm} | {wall:.4f} | {wall / wall0:.3f} | {cpu:.4f} | {cpu / cpu0:.3f} | {paired[arm]:.3f} "
              f"| {1e3 * mine:.3f} ms | {100 * mine / cpu0:.2f}% |")
    if args.history:
        print("\n| logged steps so far | CPU per log (record, forecast, verdict) | share of a GRPO step above |")
        print("|---|---|---|")
        for n in args.history:
            cost = log_cost(n)
            print(f"| {n} | {1e3 * cost:.3f} ms | {100 * cost / cpu0:.2f}% |")


if __name__ == "__main__":
    main()
