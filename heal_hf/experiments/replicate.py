"""HEAL's headline claim at toy scale, and the few-shot demo: what `heal-hf replicate` and `heal-hf demo` run.

The claim (docs/method.md): with 32 target-domain examples, HEAL (hybrid data + EDA) matches
or beats plain GRPO on 1,000 target examples, and keeps entropy from collapsing.
`replicate` trains, per target family of `heal_hf.toy.tasks` and seed, at equal RL
steps from the same bundled toy reasoner:

    grpo-32     plain GRPO on 32 target examples
    grpo-1k     plain GRPO on 1,000 target examples
    heal-32     HEAL: 32 target + 3 x 32 selected general problems, EDA (batch reference)
    hybrid-32   the same mixed data, no EDA              (ablation)
    eda-32      EDA with the pool as reference, no mixing (ablation)
    clip-higher-32      GRPO-32 with DAPO's Clip-Higher (TRL: epsilon_high = 0.28)
    entropy-mask-32     GRPO-32 training only the top 30% highest-entropy tokens (TRL's top_entropy_quantile, tuned to 0.3)
    entropy-bonus-32    GRPO-32 with TRL's adaptive entropy bonus (use_adaptive_entropy, aimed at the base entropy)
    heal-mask-32        HEAL-32 with the high-entropy token mask (do HEAL and the mask add up?)
    heal-32-pool  HEAL with the pool as EDA reference (a variant, only when asked for)

Clip-Higher, the mask and the entropy bonus are the fixes users reach for today, all in TRL. Clip-Higher acts only
when the policy takes more than one gradient step per generation batch (at
num_iterations = 1 TRL's importance ratio is exactly 1), so every arm runs with the
same `num_iterations` (2 by default): equal steps, equal budget. The arms that mix in
general data or use EDA scale advantages by the batch's reward std, HEALConfig's default
with EDA on (TRL's per-group std would blow the small EDA term up; see HEALConfig); the
GRPO arms keep TRL's default, the group's.

Every arm goes through `heal_hf.app.train.train` (HEALGRPOTrainer; the GRPO arms with
lambda = 0, which leaves GRPO's objective untouched but still logs entropies), then
is evaluated on the family's held-out test problems: greedy accuracy, pass@k of k
samples at the training temperature, and entropy retention (mean token entropy of
those samples after training / before). A held-out greedy-accuracy curve is taken
every few steps. Each finished run is kept in `out/runs/...`, so an interrupted
replication re-run with the same options continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..app.console import output_to
from ..app.evaluation import accuracy_curve_callback
from ..core.eda import DEFAULT_ESTIMATOR, ESTIMATORS
from ..data.files import claim_folder, write_json_atomic, write_text_atomic
from ..data.run_folder import RUN_FILE
from ..toy import explore, tasks
from .report import intervals, plot_replication, results_markdown

EDA_WEIGHT = 0.1
BEHAVIOUR = (explore.TRY_CHECK,)
"""The rollout metric every run logs (`heal_hf.toy.explore`): try/check steps over all steps, per domain, over
training, on the curve's greedy completions and on the held-out samples (0 where a world never tries)."""


@dataclass(frozen=True)
class Arm:
    """One training recipe of the replication."""

    name: str
    target_size: int
    mix_general: bool  # 3 x target_size general problems selected from the pool
    eda: bool  # the EDA reward, with lambda = ReplicateSettings.eda_weight
    eda_reference: str
    about: str
    grpo: tuple[tuple[str, Any], ...] = ()  # HEALConfig fields this arm sets (the baselines' TRL options)
    mask: bool = False  # TRL's high-entropy token mask at ReplicateSettings.mask_quantile
    entropy_bonus: bool = False  # TRL's adaptive entropy bonus, aimed at the base model's entropy on the family


ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm("grpo-32", 32, False, False, "batch", "plain GRPO, 32 target examples"),
        Arm("grpo-1k", 1000, False, False, "batch", "plain GRPO, 1,000 target examples"),
        Arm("heal-32", 32, True, True, "batch", "HEAL: 32 target + 96 selected general, EDA (batch reference)"),
        Arm("hybrid-32", 32, True, False, "batch", "ablation: the same hybrid data, no EDA",
            (("scale_rewards", "batch"),)),  # HEAL-32's advantage scaling (HEALConfig's default with EDA on)
        Arm("eda-32", 32, False, True, "pool", "ablation: EDA against the pool, no general problems"),
        Arm("clip-higher-32", 32, False, False, "batch", "baseline: GRPO-32 with Clip-Higher (epsilon_high 0.28)",
            (("epsilon_high", 0.28),)),
        Arm("entropy-mask-32", 32, False, False, "batch",
            "baseline: GRPO-32 on the highest-entropy tokens only (TRL's top_entropy_quantile, 0.3 as tuned on validation)",
            mask=True),
        Arm("entropy-bonus-32", 32, False, False, "batch",
            "baseline: GRPO-32 with TRL's adaptive entropy bonus (use_adaptive_entropy, target = the base model's "
            "entropy on the family)", entropy_bonus=True),
        Arm("heal-mask-32", 32, True, True, "batch", "HEAL-32 trained on the highest-entropy tokens only", mask=True),
        Arm("heal-32-pool", 32, True, True, "pool", "variant: HEAL with the pool as EDA reference (not run by default)"),
    )
}
DEFAULT_ARMS = ("grpo-32", "grpo-1k", "heal-32", "hybrid-32", "eda-32", "clip-higher-32", "entropy-mask-32",
                "entropy-bonus-32", "heal-mask-32")

TOY_GRPO: dict[str, Any] = {
    "per_device_train_batch_size": 32,
    "num_generations": 8,
    "max_completion_length": tasks.COMPLETION_BUDGETS[tasks.BUNDLED_WORLD],  # another world's families: completion_length
    "temperature": 1.0,
    "beta": 0.0,
    "logging_steps": 1,
    "save_steps": 25,
}
"""GRPO settings of the toy runs (HEALConfig fields); `max_steps` and `seed` come per run."""


def completion_length(family: str) -> int:
    """Tokens a run's completions may use: its family's world's budget (48 in v6, 64 in explore)."""
    return tasks.completion_budget(family)


def toy_grpo(family: str) -> dict[str, Any]:
    """TOY_GRPO with the family's world's completion length."""
    return {**TOY_GRPO, "max_completion_length": completion_length(family)}


@dataclass
class ReplicateSettings:
    """What `heal-hf replicate` runs; every field is a command-line option."""

    output_dir: str = field(default="runs/replicate", metadata={"help": "folder for the runs, results.json, results.md and curves.png"})
    families: tuple[str, ...] = field(default=tasks.TARGET_FAMILIES, metadata={"help": "target families (another world's, e.g. explore's gym_countdown, with that world's --model and --pool)"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "seeds: target draws, selection, sampling, training"})
    arms: tuple[str, ...] = field(default=DEFAULT_ARMS, metadata={"help": "arms to run (heal-32-pool: HEAL with the pool as EDA reference)"})
    steps: int = field(default=400, metadata={"help": "RL steps of every arm (equal steps; 400 was chosen on the validation split for the bundled toy world)"})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate (5e-5 with a 10% warmup: the recipe chosen on validation, benchmarks/results/replicate-v3-cpu/recipe)"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of the steps spent warming the learning rate up linearly (0.1 = 40 of 400 steps); v2's recipe, 0 with 2e-4, dropped GRPO-1K by 0.15-0.29 before it learned"})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "learning-rate schedule after warmup (transformers' lr_scheduler_type: linear, cosine, constant_with_warmup)"})
    num_iterations: int = field(default=2, metadata={"help": "gradient steps per generation batch (TRL's num_iterations; above 1 the importance ratio moves, so clipping such as Clip-Higher acts)"})
    eda_weight: float = field(default=EDA_WEIGHT, metadata={"help": "lambda of the EDA arms"})
    eda_estimator: str = field(default=DEFAULT_ESTIMATOR, metadata={"help": "EDA estimator of the EDA arms: calibrated or gaussian"})
    eda_direction: str = field(default="both", metadata={"help": "EDA direction of the EDA arms: both (align) or below (penalize only less entropy or variation than the reference)"})
    mask_quantile: float = field(default=0.3, metadata={"help": "TRL's top_entropy_quantile of the mask arms (entropy-mask-32, heal-mask-32); 0.3 was tuned on validation (TRL recommends 0.2), benchmarks/results/replicate-v3-cpu/tuning"})
    entropy_bonus_delta: float = field(default=0.005, metadata={"help": "TRL's entropy_coef_delta of entropy-bonus-32 (adaptive entropy control)"})
    target_fraction: float | None = field(default=None, metadata={"help": "share of target prompts per batch in the hybrid arms (default: the data's share, 1/4)"})
    eval_split: str = field(default="test", metadata={"help": "held-out split evaluated: test (to report) or validation (to tune on)"})
    eval_problems: int = field(default=200, metadata={"help": "held-out problems per family"})
    eval_samples: int = field(default=4, metadata={"help": "k of pass@k"})
    curve_every: int = field(default=25, metadata={"help": "steps between points of the held-out accuracy curve"})
    curve_problems: int = field(default=100, metadata={"help": "held-out problems of the accuracy curve (greedy; at least 100, so one problem moves it by 0.01 at most)"})
    model: str | None = field(default=None, metadata={"help": "model folder (default: the bundled toy reasoner)"})
    pool: str = field(default="bundled", metadata={"help": "general-entropy pool of that model (default: the bundled pool)"})
    workers: int = field(default=1, metadata={"help": "processes training (family, seed) groups in parallel (2 on 2 cores; more on a GPU)"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads per process (toy models run fastest on one)"})
    report_only: bool = field(default=False, metadata={"help": "train nothing: report the runs already finished in output_dir"})
    report: bool = field(default=True, metadata={"help": "write results.json, results.md and curves.png at the end (workers do not)"})


LR_SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup")
QUICK = dict(families=("sort_digits",), seeds=(0,), steps=6, eval_problems=16, eval_samples=2, curve_every=3,
             curve_problems=8)
"""`--quick`: every arm once on one family, a few steps (a smoke test of the whole pipeline, minutes on CPU)."""


def check_replicate_settings(s: ReplicateSettings) -> None:
    """Clear errors for bad options, before anything runs."""
    for family in s.families:
        if tasks.get_family(family).domain != tasks.TARGET:
            raise ValueError(f"families: {family!r} is a general-domain family; choose from {list(tasks.ALL_TARGET_FAMILIES)}")
    if s.eda_direction not in ("both", "below"):
        raise ValueError(f"eda_direction: {s.eda_direction!r}; choose both or below")
    if not 0.0 < s.mask_quantile <= 1.0:
        raise ValueError(f"mask_quantile: {s.mask_quantile!r}; expected a share in (0, 1]")
    if not s.entropy_bonus_delta > 0:
        raise ValueError(f"entropy_bonus_delta: {s.entropy_bonus_delta!r}; expected > 0")
    if s.eda_estimator not in ESTIMATORS:
        raise ValueError(f"eda_estimator: {s.eda_estimator!r}; choose from {list(ESTIMATORS)}")
    unknown = sorted(set(s.arms) - set(ARMS))
    if unknown:
        raise ValueError(f"arms: unknown arms {unknown}; choose from {list(ARMS)}")
    if len({completion_length(f) for f in s.families}) > 1:
        raise ValueError(f"families: {list(s.families)} mix toy worlds (their completion budgets differ); run each world "
                         "with its own --model, --pool and --output-dir")
    for name, values in (("families", s.families), ("seeds", s.seeds), ("arms", s.arms)):
        if not values:
            raise ValueError(f"{name}: empty; pass at least one")
        clashes = sorted({v for v in values if list(values).count(v) > 1}, key=str)
        if clashes:
            raise ValueError(f"{name}: {clashes} given more than once; each run needs its own {name[:-1]}")
    if s.eval_split not in ("test", "validation"):
        raise ValueError(f"eval_split: {s.eval_split!r}; choose test (to report) or validation (to tune on)")
    if not 0.0 <= s.warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio: {s.warmup_ratio!r}; expected a share of the steps in [0, 1)")
    if s.lr_scheduler_type not in LR_SCHEDULES:
        raise ValueError(f"lr_scheduler_type: {s.lr_scheduler_type!r}; choose from {list(LR_SCHEDULES)}")
    for name in ("steps", "num_iterations", "eval_problems", "eval_samples", "curve_every", "curve_problems", "workers",
                 "threads"):
        if getattr(s, name) < 1:
            raise ValueError(f"{name}: expected a positive number, got {getattr(s, name)}")


# --- Data -------------------------------------------------------------------------


def write_jsonl(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write the rows' prompt and answer as JSON lines, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps({"prompt": r["prompt"], "answer": r["answer"]}) + "\n" for r in rows))
    return path


def target_files(family: str, seed: int, sizes: Sequence[int], data_dir: Path) -> dict[int, Path]:
    """Target train sets of each size for one seed: the 32 are the first 32 of the 1,000 (nested draws)."""
    rows = tasks.generate(family, max(sizes), split="train", seed=seed)
    return {n: write_jsonl(rows[:n], data_dir / f"{family}-train-{n}-seed{seed}.jsonl") for n in sizes}


def test_set(family: str, problems: int, data_dir: Path, split: str = "test") -> tuple[list[dict[str, str]], Path]:
    """The family's held-out problems (one fixed draw of `split`, shared by every arm and seed) and their file."""
    rows = tasks.generate(family, problems, split=split, seed=0)
    return rows, write_jsonl(rows, data_dir / f"{family}-{split}-{problems}.jsonl")


# --- One run ------------------------------------------------------------------------


def run_complete(folder: Path) -> bool:
    """A run folder whose training finished and whose results were written."""
    try:
        return json.loads((folder / RUN_FILE).read_text())["status"] == "complete" and (
            folder / "replicate_run.json").exists()
    except (OSError, ValueError, KeyError):
        return False


def run_arm(
    family: str, seed: int, arm: Arm, settings: ReplicateSettings, data: dict[str, Path],
    test_rows: Sequence[dict[str, str]], folder: Path, base_entropy: float, callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train one arm (or read its finished results) and return its result row.

    Everything the trainer and the evaluation print (TRL's per-step log dicts, progress
    bars, warnings) goes to `<arm>.train.log` beside the run's folder; `callbacks` are
    extra TrainerCallbacks (e.g. a progress bar of the caller's own).
    """
    from ..app.train import train
    from ..app.train_options import TrainSettings

    if run_complete(folder):
        row = json.loads((folder / "replicate_run.json").read_text())
        ours = arm_identity(arm, settings)
        stored = row.get("arm_settings", ours)  # runs written before arm settings were recorded: the folder's
        if stored != ours:
            differ = "; ".join(f"{k}={stored.get(k)!r} there, {v!r} here" for k, v in ours.items() if stored.get(k) != v)
            raise ValueError(f"output_dir: {folder} was trained with other {arm.name} settings ({differ}); pass the "
                             "same settings, move that run away to retrain it, or use a new --output-dir")
        return row
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted run starts over; finished ones are kept
    fam = tasks.get_family(family)
    curve_rows = test_rows[: settings.curve_problems]
    curve = accuracy_curve_callback([r["prompt"] for r in curve_rows], [r["answer"] for r in curve_rows], fam.verifier,
                                    settings.curve_every, completion_length(family), BEHAVIOUR[0])
    run_settings = TrainSettings(
        target=str(data[f"train-{arm.target_size}"]), output_dir=str(folder), eval=str(data["test"]),
        pool=settings.pool, verifier=fam.verifier, n_general=None if arm.mix_general else 0,
        general_verifier=None if fam.verifier == tasks.GENERAL_VERIFIER or not arm.mix_general else tasks.GENERAL_VERIFIER,
        eval_samples=settings.eval_samples, eval_baseline=False, license="apache-2.0",
        **({"model": settings.model} if settings.model else {"base_model_id": "heal/toy-reasoner"}),
    )
    overrides = {
        **toy_grpo(family), **recipe(settings), "max_steps": settings.steps, "seed": seed,
        "eda_weight": settings.eda_weight if arm.eda else 0.0, "eda_reference": arm.eda_reference,
        "disable_tqdm": True, "save_steps": settings.steps, "rollout_metrics": list(BEHAVIOUR),
    }
    overrides.update({"eda_estimator": settings.eda_estimator, "eda_direction": settings.eda_direction, **dict(arm.grpo)})
    if arm.mask:
        overrides["top_entropy_quantile"] = settings.mask_quantile
    if arm.entropy_bonus:
        overrides.update(use_adaptive_entropy=True, entropy_coef=0.0, entropy_coef_delta=settings.entropy_bonus_delta,
                         entropy_target=base_entropy)
    if arm.mix_general and settings.target_fraction is not None:
        overrides["target_fraction"] = settings.target_fraction
    folder.mkdir(parents=True)
    with open(folder.parent / f"{arm.name}.train.log", "w") as log, output_to(log):
        result = train(run_settings, overrides, callbacks=[curve, *callbacks])
    trained = result.metrics["eval"]["trained"]
    history = result.metrics.get("history", [])
    tail = [h["heal/entropy_retention/target"] for h in history if "heal/entropy_retention/target" in h]
    tail = tail[-max(1, len(tail) // 10):]
    row = {
        "family": family, "seed": seed, "arm": arm.name, "steps": result.metrics["train"]["global_step"],
        "greedy_accuracy": trained["greedy_accuracy"],
        "pass_at_k": trained[f"pass@{settings.eval_samples}"],
        "sample_accuracy": trained["sample_accuracy"],
        "mean_token_entropy": trained["mean_token_entropy"],
        "entropy_retention": trained["mean_token_entropy"] / base_entropy if base_entropy > 0 else math.nan,
        "train_entropy_retention": sum(tail) / len(tail) if tail else math.nan,
        "accuracy_curve": curve.points,
        "entropy_curve": [(h["step"], h["heal/entropy/target"]) for h in history if "heal/entropy/target" in h],
        "runtime_s": result.metrics["train"]["runtime_s"],
        "try_check_share": trained["rollout_metrics"]["sampled"][BEHAVIOUR[0]],
        "behaviour_curve": curve.behaviour,
        "train_behaviour_curve": {d: [(h["step"], h[f"heal/{BEHAVIOUR[0]}/{d}"]) for h in history
                                      if f"heal/{BEHAVIOUR[0]}/{d}" in h] for d in (tasks.TARGET, tasks.GENERAL)},
        "per_problem": trained.get("per_problem"),
        "arm_settings": arm_identity(arm, settings),
    }
    write_json_atomic(folder / "replicate_run.json", row)
    return row


def base_evaluation(
    family: str, settings: ReplicateSettings, test_rows: Sequence[dict[str, str]], out: Path
) -> dict[str, Any]:
    """The untrained model on the family's test problems (cached in out/base-<family>.json)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..app.evaluation import evaluate_target
    from ..toy import TOY_REASONER_PATH, check_toy_reasoner

    split = "" if settings.eval_split == "test" else f"{settings.eval_split}-"
    path = out / f"base-{family}-{split}{settings.eval_problems}x{settings.eval_samples}.json"
    if path.exists():
        return json.loads(path.read_text())
    model_dir = settings.model or check_toy_reasoner(TOY_REASONER_PATH)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = evaluate_target(
        model, tokenizer, [r["prompt"] for r in test_rows], [r["answer"] for r in test_rows],
        tasks.get_family(family).verifier,
        settings.eval_samples, completion_length(family), TOY_GRPO["temperature"], seed=0,
        rollout_metrics=BEHAVIOUR,
    )
    write_json_atomic(path, base)
    return base


# --- The whole replication -----------------------------------------------------------


SETTINGS_FILE = "replicate_settings.json"
RUN_IDENTITY = ("steps", "learning_rate", "warmup_ratio", "lr_scheduler_type", "num_iterations", "eval_split",
                "eval_problems", "eval_samples", "curve_every", "curve_problems", "model", "pool")
"""The settings every finished run of one output folder shares (arms, families and seeds may grow)."""
ARM_IDENTITY = {"eda": ("eda_weight", "eda_estimator", "eda_direction"), "mix_general": ("target_fraction",),
                "mask": ("mask_quantile",), "entropy_bonus": ("entropy_bonus_delta",)}
"""Arm flag -> the settings that decide what a run of such an arm is (checked run by run, so that the GRPO
arms of one folder serve HEAL arms whose settings were tuned after they ran)."""


LEGACY_IDENTITY = {"warmup_ratio": 0.0, "lr_scheduler_type": "linear"}
"""What folders written before these settings existed ran with (their replicate_settings.json lacks them)."""
LEGACY_ARM_KEYS = ("eda_weight", "eda_estimator", "target_fraction", "warmup_steps")
"""Entries older replicate_settings.json files hold that are now checked run by run (ARM_IDENTITY), or not at all."""


def recipe(settings: ReplicateSettings) -> dict[str, Any]:
    """The optimizer recipe every arm shares (HEALConfig fields)."""
    return {"learning_rate": settings.learning_rate, "warmup_steps": round(settings.warmup_ratio * settings.steps),
            "lr_scheduler_type": settings.lr_scheduler_type, "num_iterations": settings.num_iterations}


def arm_identity(arm: Arm, settings: ReplicateSettings) -> dict[str, Any]:
    """The settings this arm's runs depend on beyond the folder's (ARM_IDENTITY)."""
    return {k: getattr(settings, k) for flag, keys in ARM_IDENTITY.items() if getattr(arm, flag) for k in keys}


def run_identity(settings: ReplicateSettings) -> dict[str, Any]:
    """The settings that decide what a run in the output folder is (RUN_IDENTITY)."""
    return {k: getattr(settings, k) for k in RUN_IDENTITY}


def replicate(settings: ReplicateSettings) -> dict[str, Any]:
    """Run every (family, seed, arm), then write results.json, results.md and curves.png to output_dir.

    With `report_only`, nothing is trained: the report covers the runs already finished
    (`missing` in the result lists the others).
    """
    import torch
    from tqdm.auto import tqdm

    check_replicate_settings(settings)
    torch.set_num_threads(settings.threads)
    out = Path(settings.output_dir)
    # Finished runs are reused by folder: a folder of runs made with another recipe is refused before anything runs.
    claim_folder(out, SETTINGS_FILE, run_identity(settings), defaults=LEGACY_IDENTITY, ignore=LEGACY_ARM_KEYS)
    started = time.perf_counter()
    if settings.workers > 1 and not settings.report_only:
        run_workers(settings)  # every run finishes there; the loop below then only reads them back
    sizes = sorted({ARMS[a].target_size for a in settings.arms})
    rows, base, missing = [], {}, []
    jobs = [(f, s, a) for f in settings.families for s in settings.seeds for a in settings.arms]
    with tqdm(total=len(jobs), desc="replicate", unit="run") as bar:
        for family in settings.families:
            data_dir = out / "data"
            test_rows, test_path = test_set(family, settings.eval_problems, data_dir, settings.eval_split)
            data = {"test": test_path}
            base[family] = base_evaluation(family, settings, test_rows, out)
            for seed in settings.seeds:
                data.update({f"train-{n}": p for n, p in target_files(family, seed, sizes, data_dir).items()})
                for arm in settings.arms:
                    bar.set_postfix_str(f"{family} seed {seed} {arm}")
                    folder = out / "runs" / family / f"seed{seed}" / arm
                    bar.update()
                    if settings.report_only and not run_complete(folder):
                        missing.append(f"{family}/seed{seed}/{arm}")
                        continue
                    rows.append(run_arm(family, seed, ARMS[arm], settings, data, test_rows, folder,
                                        base[family]["mean_token_entropy"]))
    results = {
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()},
        "grpo": {**toy_grpo(settings.families[0]), **recipe(settings), "max_steps": settings.steps},
        "base": base, "runs": rows, "missing": missing, "wall_s": time.perf_counter() - started,
    }
    results["intervals"] = intervals(results)
    if not settings.report:
        return results
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "results.md", results_markdown(results))
    plot_replication(results, out / "curves.png")
    return results


def command_line(settings: ReplicateSettings) -> list[str]:
    """`heal-hf replicate` options that reproduce `settings`."""
    argv = []
    for f in dataclasses.fields(ReplicateSettings):
        value = getattr(settings, f.name)
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(("--" if value else "--no-") + f.name.replace("_", "-"))
            continue
        argv.append("--" + f.name.replace("_", "-"))
        argv += [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    return argv


def run_commands(jobs: Sequence[tuple[str, list[str]]], workers: int, log_dir: Path,
                 env: dict[str, str] | None = None, finished: Any = None) -> dict[str, int]:
    """Run the (name, command line) `jobs`, at most `workers` at once, each logging to `log_dir/<name>.log`;
    return each name's exit code, calling `finished(name, code, done, total)` as each one ends. Commands that
    resume (replicate's) make the whole queue resumable."""
    import subprocess

    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running, codes = list(jobs), [], {}
    while pending or running:
        while pending and len(running) < workers:
            name, cmd = pending.pop(0)
            log = open(log_dir / f"{name}.log", "w")
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
        time.sleep(0.5)
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                running.remove(item)
                log.close()
                codes[name] = proc.returncode
                if finished is not None:
                    finished(name, proc.returncode, len(codes), len(jobs))
    return codes


def print_finished(name: str, code: int, done: int, total: int) -> None:
    """`run_commands`' `finished` for a script's log: one line per finished job, timed."""
    print(f"{time.strftime('%H:%M:%S')} {name} exit {code} ({done}/{total})", flush=True)


def run_workers(settings: ReplicateSettings) -> None:
    """Train the (family, seed) groups in `settings.workers` parallel `heal-hf replicate` processes."""
    import sys

    jobs = []
    for family in settings.families:
        for seed in settings.seeds:
            child = dataclasses.replace(settings, families=(family,), seeds=(seed,), workers=1, report=False)
            jobs.append((f"{family}-seed{seed}", [sys.executable, "-m", "heal_hf.cli", "replicate", *command_line(child)]))
    logs = Path(settings.output_dir) / "logs"
    codes = run_commands(jobs, settings.workers, logs, env=dict(os.environ, OMP_NUM_THREADS=str(settings.threads)))
    failed = [name for name, code in codes.items() if code != 0]
    if failed:
        raise RuntimeError(f"replicate: the workers of {failed} failed; see {logs}/<family>-seed<seed>.log, "
                           "then re-run the same command (finished runs are kept)")
