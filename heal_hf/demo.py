"""`heal-hf demo`: few-shot HEAL on the bundled toy reasoner, end to end, in minutes on a CPU.

32 examples of one target family, hybrid selection from the bundled general-entropy
pool, GRPO with EDA (`heal_hf.train.train`), then the held-out test split before and
after: greedy accuracy, pass@k and entropy retention. Writes what `heal-hf train`
writes (model, model card, entropy_curves.png, metrics.json) to the output folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .replicate import TOY_GRPO, target_files, test_set
from .toy import tasks

DEMO_STEPS = 40


def default_output_dir(family: str) -> str:
    """A new folder per demo run: runs/demo-<family>-<time>."""
    return f"runs/demo-{family}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_demo(
    target: str = "sort_digits",
    output_dir: str | None = None,
    shots: int = 32,
    steps: int = DEMO_STEPS,
    eval_problems: int = 100,
    eval_samples: int = 4,
    seed: int = 0,
    eda_weight: float = 0.1,
    resume: bool = False,
    threads: int = 1,
) -> tuple[Path, dict[str, Any]]:
    """Train and evaluate; return the output folder and its metrics (as in metrics.json).

    `threads`: torch CPU threads; the toy reasoner is too small to gain from more than one,
    and extra threads stall whenever another process holds a core.
    """
    import torch

    from .toy import check_toy_reasoner
    from .train import TrainSettings, train

    family = tasks.get_family(target)
    if family.domain != tasks.TARGET:
        raise ValueError(f"target: {target!r} is a general-domain family; choose from {list(tasks.TARGET_FAMILIES)}")
    if shots < 1 or steps < 1 or eval_problems < 1 or eval_samples < 1:
        raise ValueError("shots, steps, eval_problems, eval_samples: expected positive numbers")
    check_toy_reasoner()
    torch.set_num_threads(threads)
    out = Path(output_dir or default_output_dir(target))
    data_dir = out.with_name(out.name + "-data")
    train_file = target_files(target, seed, [shots], data_dir)[shots]
    _, eval_file = test_set(target, eval_problems, data_dir)
    settings = TrainSettings(
        target=str(train_file), eval=str(eval_file), output_dir=str(out), verifier=family.verifier,
        eval_samples=eval_samples, license="apache-2.0", base_model_id="heal/toy-reasoner", resume=resume,
    )
    overrides = {**TOY_GRPO, "max_steps": steps, "seed": seed, "eda_weight": eda_weight, "logging_steps": 5}
    result = train(settings, overrides)
    return result.output_dir, result.metrics


def summary_table(metrics: dict[str, Any], eval_samples: int) -> str:
    """The before/after table the demo prints."""
    base, trained = metrics["eval"]["base"], metrics["eval"]["trained"]
    history = metrics.get("history", [])
    retention = {d: next((h[f"heal/entropy_retention/{d}"] for h in reversed(history)
                          if f"heal/entropy_retention/{d}" in h), float("nan")) for d in ("target", "general")}
    rows = [
        ("greedy accuracy", base["greedy_accuracy"], trained["greedy_accuracy"]),
        (f"pass@{eval_samples}", base[f"pass@{eval_samples}"], trained[f"pass@{eval_samples}"]),
        ("sampled accuracy (T=1)", base["sample_accuracy"], trained["sample_accuracy"]),
        ("token entropy (nats)", base["mean_token_entropy"], trained["mean_token_entropy"]),
    ]
    lines = [f"{'held-out test':<26}{'before':>10}{'after':>10}"]
    lines += [f"{name:<26}{b:>10.3f}{a:>10.3f}" for name, b, a in rows]
    ratio = trained["mean_token_entropy"] / base["mean_token_entropy"] if base["mean_token_entropy"] > 0 else float("nan")
    lines.append(f"{'entropy retention (eval)':<26}{1.0:>10.3f}{ratio:>10.3f}")
    lines.append(f"{'entropy retention (train)':<26}{'target':>10}{'general':>10}")
    lines.append(f"{'  last logged step':<26}{retention['target']:>10.3f}{retention['general']:>10.3f}")
    return "\n".join(lines)
