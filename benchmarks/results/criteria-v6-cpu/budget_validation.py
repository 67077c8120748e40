"""RL budget on the validation split (world v6): GRPO-1K and GRPO-32 for up to STEPS steps, greedy validation
accuracy every EVERY steps on 200 problems, sampled accuracy at the end.
    python budget_validation.py OUT FAMILY ARM STEPS EVERY [SEED]"""
import json
import sys
from pathlib import Path

import torch

from heal_hf.experiments.replicate import (
                      ARMS,
                      ReplicateSettings,
                      base_evaluation,
                      run_arm,
                      target_files,
                      test_set,
)

torch.set_num_threads(1)
out, fam, arm, steps, every = Path(sys.argv[1]), sys.argv[2], ARMS[sys.argv[3]], int(sys.argv[4]), int(sys.argv[5])
seed = int(sys.argv[6]) if len(sys.argv) > 6 else 0
out.mkdir(parents=True, exist_ok=True)
s = ReplicateSettings(output_dir=str(out), families=(fam,), seeds=(seed,), steps=steps, eval_problems=200, eval_samples=4,
                      curve_every=every, curve_problems=200, eval_split="validation")
rows, path = test_set(fam, 200, out / "data", "validation")
data = {"test": path, **{f"train-{k}": v for k, v in target_files(fam, seed, [32, 1000], out / "data").items()}}
base = base_evaluation(fam, s, rows, out)
r = run_arm(fam, seed, arm, s, data, rows, out / f"{fam}-{arm.name}-seed{seed}", base["mean_token_entropy"])
print(json.dumps({"family": fam, "arm": arm.name, "base_sample": base["sample_accuracy"], "base_greedy": base["greedy_accuracy"],
                  "final_sample": r["sample_accuracy"], "final_greedy": r["greedy_accuracy"],
                  "curve": r.get("accuracy_curve"), "train_retention": r["train_entropy_retention"]}), flush=True)
