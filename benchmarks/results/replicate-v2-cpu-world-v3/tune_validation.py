"""Tuning HEAL on the validation split (sort_digits): python tune.py OUT MODEL POOL WORKER NWORKERS STEPS [SEED]"""
import sys
from pathlib import Path

import torch

from heal_hf.experiments.replicate import (
    ARMS,
    Arm,
    ReplicateSettings,
    base_evaluation,
    run_arm,
    target_files,
    test_set,
)

torch.set_num_threads(1)
out, model, pool, worker, nworkers, steps = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
seed = int(sys.argv[7]) if len(sys.argv) > 7 else 0
fam = "sort_digits"
out.mkdir(parents=True, exist_ok=True)
s = ReplicateSettings(output_dir=str(out), families=(fam,), seeds=(seed,), steps=steps, eval_problems=200,
                      eval_samples=4, curve_every=steps, curve_problems=8, eval_split="validation", model=model or None, pool=pool)
rows, path = test_set(fam, 200, out / "data", "validation")
data = {"test": path, "train-32": target_files(fam, seed, [32], out / "data")[32]}
base = base_evaluation(fam, s, rows, out)
H = lambda name, about, *kv: Arm(name, 32, True, True, "batch", about, tuple(kv))
arms = [ARMS["grpo-32"], ARMS["hybrid-32"], ARMS["heal-32"],
        H("heal-lam0.02", "lambda 0.02", ("eda_weight", 0.02)),
        H("heal-tf0.5", "target fraction 0.5", ("target_fraction", 0.5)),
        H("heal-batch", "scale_rewards batch", ("scale_rewards", "batch")),
        H("heal-batch-tf0.5", "scale_rewards batch, target fraction 0.5", ("scale_rewards", "batch"), ("target_fraction", 0.5)),
        Arm("grpo-32-batch", 32, False, False, "batch", "GRPO-32, scale_rewards batch", (("scale_rewards", "batch"),)),
        H("heal-tf0.5-lam0.02", "target fraction 0.5, lambda 0.02", ("target_fraction", 0.5), ("eda_weight", 0.02))]
if worker == 0:
    print("base", round(base["sample_accuracy"], 3), round(base["greedy_accuracy"], 3), flush=True)
for i, arm in enumerate(arms):
    if i % nworkers != worker:
        continue
    r = run_arm(fam, seed, arm, s, data, rows, out / f"{arm.name}-seed{seed}", base["mean_token_entropy"])
    print(arm.name, "sample", round(r["sample_accuracy"], 3), "greedy", round(r["greedy_accuracy"], 3), "pass@4", round(r["pass_at_k"], 3),
          "train-ret", round(r["train_entropy_retention"], 3), flush=True)
