"""HEAL variants on the validation split, after the replication put HEAL-32 below GRPO-32.

    python investigate_validation.py OUT FAMILY WORKER NWORKERS [SEED [ARM,ARM,...]]

Runs the variants round-robin over NWORKERS processes (start one per WORKER index), each
through heal_hf.experiments.replicate.run_arm at the replication's settings (300 steps, lr 2e-4,
num_iterations 2), evaluated on 200 validation problems x 4 samples. Finished runs are reused.
"""
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
out, fam, worker, nworkers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
out.mkdir(parents=True, exist_ok=True)
s = ReplicateSettings(output_dir=str(out), families=(fam,), seeds=(seed,), eval_problems=200, eval_samples=4,
                      curve_every=300, curve_problems=8, eval_split="validation")
rows, path = test_set(fam, 200, out / "data", "validation")
data = {"test": path, "train-32": target_files(fam, seed, [32], out / "data")[32]}
base = base_evaluation(fam, s, rows, out)


def heal(name: str, about: str, reference: str = "batch", *kv) -> Arm:
    return Arm(name, 32, True, True, reference, about, tuple(kv))


arms = [
    ARMS["grpo-32"],
    ARMS["heal-32"],
    ARMS["heal-32-pool"],
    heal("heal-only-correct", "EDA only on rollouts the verifier accepts", "batch", ("eda_only_correct", True)),
    heal("heal-below", "EDA penalizes only less entropy than the reference", "batch", ("eda_direction", "below")),
    heal("heal-lr1e-4", "learning rate 1e-4", "batch", ("learning_rate", 1e-4)),
    Arm("grpo-32-lr1e-4", 32, False, False, "batch", "GRPO-32 at learning rate 1e-4", (("learning_rate", 1e-4),)),
]
only = sys.argv[6].split(",") if len(sys.argv) > 6 else None  # run only these arms
arms = [a for a in arms if only is None or a.name in only]
if worker == 0:
    print("base", round(base["sample_accuracy"], 3), round(base["greedy_accuracy"], 3), flush=True)
for i, arm in enumerate(arms):
    if i % nworkers != worker:
        continue
    r = run_arm(fam, seed, arm, s, data, rows, out / f"{arm.name}-seed{seed}", base["mean_token_entropy"])
    print(f"{arm.name}\tsample {r['sample_accuracy']:.3f}\tgreedy {r['greedy_accuracy']:.3f}\tpass@4 {r['pass_at_k']:.3f}"
          f"\ttrain-ret {r['train_entropy_retention']:.3f}\teval-ret {r['entropy_retention']:.3f}", flush=True)
