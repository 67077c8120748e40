"""`heal-hf demo`: few-shot GRPO and few-shot HEAL side by side on the bundled toy reasoner, in minutes on a CPU.

From the same start (the bundled toy reasoner), on the same 32 examples of one target
family, with the same steps and settings (the replication's, `heal_hf.experiments.replicate`):
`grpo-32` trains plain GRPO; `heal-32` mixes in 96 general problems selected from the
bundled general-entropy pool and adds the EDA reward. Both are then evaluated on the
family's held-out test problems (sampled and greedy accuracy, pass@k, token entropy), and
the demo prints them beside the base model, with entropy retention during training.

The output folder holds each run's folder (`grpo-32/`, `heal-32/`: model, model card,
metrics, `entropy_curves.png`), each run's full log (`<arm>.train.log`: TRL's per-step log
dicts, warnings), `curves.png` (both runs' target entropy and held-out accuracy over
steps) and `demo.json` (the table's numbers). The terminal shows one progress bar per
run and the table.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from ..app.console import output_to, step_bar
from ..data.files import claim_folder, write_json_atomic
from ..toy import tasks
from .replicate import (
    ARMS,
    ReplicateSettings,
    base_evaluation,
    plot_replication,
    run_arm,
    target_files,
    test_set,
)

DEMO_STEPS = 40
DEMO_ARMS = ("grpo-32", "heal-32")
DEMO_FILE = "demo.json"
DEMO_SETTINGS_FILE = "demo_settings.json"


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
    eda_weight: float | None = None,
    resume: bool = False,
    threads: int = 1,
) -> tuple[Path, dict[str, Any]]:
    """Train both arms and evaluate them; return the output folder and the numbers of the table.

    `resume`: continue an interrupted demo in `output_dir` (same options): finished runs are
    kept, the others start over. `threads`: torch CPU threads; the toy reasoner is too small
    to gain from more than one.
    """
    import torch

    from ..toy import check_toy_reasoner

    family = tasks.get_family(target)
    if family.domain != tasks.TARGET:
        raise ValueError(f"target: {target!r} is a general-domain family; choose from {list(tasks.TARGET_FAMILIES)}")
    if shots < 1 or steps < 1 or eval_problems < 1 or eval_samples < 1:
        raise ValueError("shots, steps, eval_problems, eval_samples: expected positive numbers")
    check_toy_reasoner()
    torch.set_num_threads(threads)
    out = Path(output_dir or default_output_dir(target))
    options = {"target": target, "shots": shots, "steps": steps, "eval_problems": eval_problems,
               "eval_samples": eval_samples, "seed": seed, "eda_weight": eda_weight}
    claim_folder(out, DEMO_SETTINGS_FILE, options, resume)
    settings = ReplicateSettings(
        output_dir=str(out), families=(target,), seeds=(seed,), arms=DEMO_ARMS, steps=steps,
        eval_problems=eval_problems, eval_samples=eval_samples, curve_every=max(1, steps // 4),
        curve_problems=min(100, eval_problems), threads=threads,
        **({"eda_weight": eda_weight} if eda_weight is not None else {}),
    )
    arms = {name: dataclasses.replace(ARMS[name], target_size=shots) for name in DEMO_ARMS}
    data_dir = out / "data"
    test_rows, test_path = test_set(target, eval_problems, data_dir)
    data = {"test": test_path, f"train-{shots}": target_files(target, seed, [shots], data_dir)[shots]}
    terminal = sys.stderr
    with open(out / "base.eval.log", "w") as log, output_to(log):
        print("evaluating the base model on the held-out problems", file=terminal, flush=True)
        base = base_evaluation(target, settings, test_rows, out)
    rows = {}
    for name, arm in arms.items():
        rows[name] = run_arm(target, seed, arm, settings, data, test_rows, out / name, base["mean_token_entropy"],
                             callbacks=[step_bar(name, steps, terminal)])
    results = {
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()},
        "shots": shots, "base": {target: base}, "runs": list(rows.values()),
    }
    plot_replication(results, out / "curves.png")
    write_json_atomic(out / DEMO_FILE, results)
    return out, results


def summary_table(results: dict[str, Any]) -> str:
    """The side-by-side table the demo prints: base model, GRPO-32 and HEAL-32 on the held-out problems."""
    k = results["settings"]["eval_samples"]
    family = results["settings"]["families"][0]
    base = results["base"][family]
    runs = {r["arm"]: r for r in results["runs"]}
    names = list(runs)
    rows = [
        ("sampled accuracy (T=1)", base["sample_accuracy"], "sample_accuracy"),
        ("greedy accuracy", base["greedy_accuracy"], "greedy_accuracy"),
        (f"pass@{k}", base[f"pass@{k}"], "pass_at_k"),
        ("token entropy (nats)", base["mean_token_entropy"], "mean_token_entropy"),
        ("entropy retention (eval)", 1.0, "entropy_retention"),
    ]
    title = f"held-out test ({base['problems']} problems)"
    lines = [f"{title:<34}{'base':>9}" + "".join(f"{n:>10}" for n in names)]
    lines += [f"{label:<34}{b:>9.3f}" + "".join(f"{runs[n][key]:>10.3f}" for n in names) for label, b, key in rows]
    lines.append(f"{'entropy retention (train, target)':<34}{'':>9}"
                 + "".join(f"{runs[n]['train_entropy_retention']:>10.3f}" for n in names))
    seeds = results["settings"]["seeds"]
    lines.append(f"behind each number: {len(seeds)} seed (seed {seeds[0]}), {base['problems']} held-out problems x {k} "
                 f"samples, one run per arm; heal-hf replicate measures over seeds, with intervals")
    return "\n".join(lines)
