"""Few-shot HEAL end to end: what `heal-hf train` runs.

    settings -> checks (before anything heavy) -> target data + pool -> hybrid selection
    -> HEALGRPOTrainer (EDA, domain-mixed batches) -> evaluation -> save: model or
    adapter, heal_run.json, metrics.json, entropy_curves.png, README.md (model card)
    -> optional push to the Hub.

Every bad input found before training is a ValueError naming the fix. A run writes
checkpoints every `save_steps`; `resume=True` continues the last one. Files the run
writes itself are written atomically. Importing this module is light (the CLI builds
its options from it); datasets, transformers and TRL load when a run starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from . import __version__
from .verifiers import get_verifier, verifier_reward

DEFAULT_MODEL = str(Path(__file__).parent / "toy" / "assets" / "toy-reasoner")
"""The model `heal-hf train` uses without --model: the bundled toy reasoner (switch it here)."""
RUN_FILE = "heal_run.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "entropy_curves.png"
TRAIN_SET_FILE = "heal_train_set.parquet"
PUSH_IGNORE = ["checkpoint-*", "checkpoint-*/**", ".*", "**/.*"]
"""Not uploaded by push: checkpoints and hidden files (the run's own temporaries)."""
DATA_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class TrainSettings:
    """What `heal-hf train` does besides GRPO itself (GRPO/HEAL settings live in `HEALConfig`)."""

    target: str = field(metadata={"help": "target-domain problems: a .json/.jsonl/.csv/.parquet file or a Hub dataset id"})
    output_dir: str = field(metadata={"help": "folder for the model or adapter, card, metrics and checkpoints"})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "causal LM to train: a local folder or a Hub id (default: the bundled toy reasoner)"})
    pool: str = field(default="bundled", metadata={"help": "general-entropy pool: a folder, a Hub id, or 'bundled' (the pool shipped with heal-hf)"})
    eval: str | None = field(default=None, metadata={"help": "held-out target problems to evaluate on, a file or Hub id (default: none, no evaluation)"})
    target_split: str = field(default="train", metadata={"help": "split of a Hub target dataset"})
    eval_split: str = field(default="test", metadata={"help": "split of a Hub eval dataset"})
    prompt_column: str = field(default="prompt", metadata={"help": "column holding the problems"})
    answer_column: str = field(default="answer", metadata={"help": "column holding the reference answers"})
    verifier: str = field(default="numeric", metadata={"help": "answer checker: exact, numeric or math"})
    n_general: int | None = field(default=None, metadata={"help": "general problems to select from the pool (default: 3 x the target rows, capped at the pool's size)"})
    selection_redundancy: float = field(default=0.5, metadata={"help": "MMR redundancy penalty of the selection, in [0, 1)"})
    chat_template: bool = field(default=False, metadata={"help": "wrap prompts in the tokenizer's chat template"})
    lora: bool = field(default=False, metadata={"help": "train a LoRA adapter instead of the full model"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_target_modules: str = field(default="all-linear", metadata={"help": "LoRA target modules (comma list or all-linear)"})
    eval_samples: int = field(default=4, metadata={"help": "k of pass@k: sampled answers per eval problem"})
    eval_baseline: bool = field(default=True, metadata={"help": "also evaluate the model before training"})
    base_model_id: str | None = field(default=None, metadata={"help": "Hub id of --model for the card's base_model when --model is a folder (default: none)"})
    license: str = field(default="apache-2.0", metadata={"help": "license in the model card (match your base model's)"})
    push_to_hub: str | None = field(default=None, metadata={"help": "Hub repo id to push the result to, needs HF_TOKEN or a login (default: no push)"})
    private: bool = field(default=False, metadata={"help": "create the pushed repo as private"})
    resume: bool = field(default=False, metadata={"help": "continue the run in --output-dir from its last checkpoint"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow the model's own code from the Hub"})


def _cuda_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


TRAINING_OPTIONS = {
    "max_steps": "optimizer steps to train",
    "learning_rate": "AdamW learning rate",
    "per_device_train_batch_size": "completions per device and step (prompts x num_generations)",
    "num_generations": "completions sampled per prompt (the GRPO group)",
    "max_completion_length": "tokens per completion",
    "temperature": "sampling temperature (entropies are of softmax(logits / temperature))",
    "beta": "KL coefficient to the initial model (0: no reference model)",
    "eda_weight": "lambda in r = r_verify + lambda * r_EDA",
    "eda_reference": "EDA reference: batch (the batch's general rows), pool, or ema",
    "eda_only_correct": "give EDA only to rollouts the verifier accepts",
    "target_fraction": "share of target prompts per batch (default: the training set's share, --n-general decides)",
    "save_steps": "steps between checkpoints (what --resume continues from)",
    "logging_steps": "steps between logged metrics",
    "seed": "seed of selection, sampling and training",
}
"""HEALConfig fields `heal-hf train` has flags for (any field works in --config), with their help."""


def training_defaults() -> dict[str, Any]:
    """HEALConfig values `heal-hf train` uses unless the config or the command line says otherwise.

    Covers every TRAINING_OPTIONS key; the HEAL ones equal HEALConfig's defaults (a test checks).
    """
    return {
        "max_steps": 100,
        "learning_rate": 1e-5,
        "per_device_train_batch_size": 32,
        "num_generations": 8,
        "max_completion_length": 128,
        "temperature": 1.0,
        "beta": 0.0,
        "eda_weight": 0.1,
        "eda_reference": "batch",
        "eda_only_correct": False,
        "target_fraction": None,
        "save_steps": 25,
        "logging_steps": 1,
        "seed": 0,
        "save_total_limit": 2,
        "report_to": "none",
        "activation_checkpointing": False,  # small models: recomputation costs more than it saves
        "bf16": _cuda_bf16(),
        "use_cpu": not torch.cuda.is_available(),
    }


HEAL_FIELDS = (
    "eda_weight", "eda_reference", "eda_bins", "eda_w_mag", "eda_w_dyn", "eda_eps", "eda_momentum",
    "eda_min_reference_rows", "eda_only_correct", "target_fraction",
)
GRPO_FIELDS = (
    "max_steps", "learning_rate", "lr_scheduler_type", "per_device_train_batch_size", "gradient_accumulation_steps",
    "num_generations", "generation_batch_size", "max_completion_length", "temperature", "top_p", "top_k", "beta",
    "loss_type", "scale_rewards", "num_iterations", "seed",
)
_SETTINGS_FIELDS = {f.name for f in dataclasses.fields(TrainSettings)}
_RUN_FLAGS = {"resume", "push_to_hub", "private"}  # may differ between a run and its resumption


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split flat options (a YAML config merged with the command line) into settings and HEALConfig overrides."""
    unknown = sorted(set(options) - _SETTINGS_FIELDS - _config_fields())
    if unknown:
        raise ValueError(
            f"config: unknown options {unknown}; use heal-hf train options or HEALConfig / GRPOConfig field names"
        )
    return (
        {k: v for k, v in options.items() if k in _SETTINGS_FIELDS},
        {k: v for k, v in options.items() if k not in _SETTINGS_FIELDS},
    )


def _config_fields() -> set[str]:
    from .trl import HEALConfig

    return {f.name for f in dataclasses.fields(HEALConfig)}


def read_config(path: str | Path | None) -> dict[str, Any]:
    """A flat YAML mapping of options (see `split_options`); {} when no path."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config: no such file {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config: {path} must hold a mapping of option: value, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


# --- Data -------------------------------------------------------------------------


def load_problems(source: str, split: str, prompt_column: str, answer_column: str, what: str) -> Any:
    """Problems (a `datasets.Dataset`) with prompt and answer columns, from a local file/folder or a Hub id."""
    import datasets

    path = Path(source)
    if path.suffix.lower() in DATA_SUFFIXES:
        if not path.is_file():
            raise ValueError(f"{what}: no such file {path}")
        ds = datasets.load_dataset(DATA_SUFFIXES[path.suffix.lower()], data_files=str(path), split="train")
    elif path.is_dir():
        ds = datasets.load_dataset(str(path), split=split)
    else:
        try:
            ds = datasets.load_dataset(source, split=split)
        except Exception as err:  # offline, missing repo or split: say which input failed
            raise ValueError(f"{what}: could not load {source!r} (split {split!r}): {err}") from None
    for column, flag in ((prompt_column, "--prompt-column"), (answer_column, "--answer-column")):
        if column not in ds.column_names:
            raise ValueError(f"{what}: no {column!r} column in {source} (columns: {ds.column_names}); set {flag}")
    if len(ds) == 0:
        raise ValueError(f"{what}: {source} has no rows")
    missing = [i for i, a in enumerate(ds[answer_column]) if a is None or str(a).strip() == ""]
    if missing:
        raise ValueError(f"{what}: rows {missing[:5]} of {source} have no {answer_column!r}; every problem needs an answer")
    return ds


def _conversational(prompts: Sequence[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": p}] for p in prompts]


# --- Evaluation -------------------------------------------------------------------


@torch.no_grad()
def greedy_completions(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, chat_template: bool, batch_size: int = 16
) -> list[str]:
    """Greedy completions of `prompts`, left-padded in batches."""
    from .rollout import completion_lengths

    texts = [
        tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in _conversational(prompts)
    ] if chat_template else list(prompts)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    eos = model.generation_config.eos_token_id
    eos_ids = [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
    out: list[str] = []
    try:
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=not chat_template)
            enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            ids = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id)[:, enc["input_ids"].shape[1] :].cpu()
            lengths = completion_lengths(ids, eos_ids)
            out += tokenizer.batch_decode([row[:n] for row, n in zip(ids, lengths)], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return out


def evaluate_target(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    answers: Sequence[str],
    verifier: str,
    samples: int,
    max_new_tokens: int,
    temperature: float,
    chat_template: bool = False,
    seed: int = 0,
) -> dict[str, float]:
    """Greedy accuracy, pass@k (k = `samples` sampled answers) and mean token entropy (nats) of the samples."""
    from tqdm.auto import tqdm

    from .rollout import sample_with_entropies

    check = get_verifier(verifier)
    was_training = model.training
    model.eval()
    try:
        greedy = greedy_completions(model, tokenizer, prompts, max_new_tokens, chat_template)
        with tqdm(total=len(prompts), desc="evaluating", unit="problem") as bar:
            rollouts = sample_with_entropies(
                model, tokenizer, list(prompts), num_samples=samples, max_new_tokens=max_new_tokens,
                temperature=temperature, seed=seed, chat_template=chat_template, progress=bar.update,
            )
    finally:
        model.train(was_training)
    correct = [[check(t, a) for t in texts] for texts, a in zip(rollouts.texts, answers)]
    tokens = [h for e in rollouts.flat_entropies() for h in e]
    return {
        "greedy_accuracy": sum(check(c, a) for c, a in zip(greedy, answers)) / len(prompts),
        f"pass@{samples}": sum(max(c) for c in correct) / len(prompts),
        "sample_accuracy": sum(map(sum, correct)) / (len(prompts) * samples),
        "mean_token_entropy": sum(tokens) / len(tokens) if tokens else 0.0,
        "problems": len(prompts),
    }


# --- Output folder, token, push ---------------------------------------------------


def check_output_dir(output_dir: Path, resume: bool, fingerprint: dict[str, Any]) -> Path | None:
    """Refuse a folder holding another run; with resume, return the last checkpoint (None: start fresh)."""
    run_file = output_dir / RUN_FILE
    if not resume:
        if output_dir.exists() and any(output_dir.iterdir()):
            what = "another heal-hf run" if run_file.exists() else "files"
            raise ValueError(
                f"output_dir: {output_dir} already holds {what}; pass --resume to continue it or choose a new --output-dir"
            )
        return None
    if not run_file.exists():
        raise ValueError(f"output_dir: --resume needs a run in {output_dir}, but it has no {RUN_FILE}; drop --resume")
    stored = json.loads(run_file.read_text())["fingerprint"]
    changed = sorted(k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k))
    if changed:
        raise ValueError(
            f"output_dir: the run in {output_dir} used different options {changed}; resume it with the same "
            "options or start a new --output-dir"
        )
    return last_complete_checkpoint(output_dir)


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest checkpoint-N that was fully written (its heal_state.json comes last), or None.

    A run killed while saving leaves a partial folder; resuming skips it.
    """
    from .trl import STATE_FILE

    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    complete = [p for p in found if (p / STATE_FILE).is_file() and (p / "trainer_state.json").is_file()]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def hub_token() -> str:
    """The Hub token (HF_TOKEN or `hf auth login`); ValueError when there is none. Never printed."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise ValueError(
            "push_to_hub: no Hugging Face token found; set HF_TOKEN or run `hf auth login` before training"
        )
    return token


def files_to_push(output_dir: str | Path) -> list[str]:
    """Relative paths `push_run` uploads: everything but checkpoints and hidden files."""
    from huggingface_hub.utils import filter_repo_objects

    root = Path(output_dir)
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return list(filter_repo_objects(paths, ignore_patterns=PUSH_IGNORE))


def push_run(output_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Regenerate the card for `repo_id`, then create the repo and upload the run folder. Returns the commit URL."""
    from huggingface_hub import HfApi

    from .cards import write_model_card

    token = token or hub_token()
    write_model_card(output_dir, repo_id=repo_id)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id, folder_path=str(output_dir), ignore_patterns=PUSH_IGNORE,
        commit_message="Upload HEAL few-shot RLVR run (heal-hf)",
    )
    return info.commit_url


# --- Metrics and the entropy-curve figure -----------------------------------------


def history_from_logs(log_history: Sequence[dict[str, Any]]) -> list[dict[str, float]]:
    """Per logged step: HEAL's metrics, the total reward, per-function mean rewards and TRL's entropy."""

    def keep(key: str) -> bool:
        return key.startswith("heal/") or key in ("reward", "entropy") or (key.startswith("rewards/") and key.endswith("/mean"))

    return [
        {"step": entry["step"], **{k: float(v) for k, v in entry.items() if keep(k)}}
        for entry in log_history
        if "step" in entry and any(k.startswith("heal/") for k in entry)
    ]


def plot_entropy_curves(metrics: dict[str, Any], path: str | Path, bins: int | None = None) -> Path:
    """Save the figure of a run: entropy and its retention per domain over steps, and the mean K-bin curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = metrics.get("history", [])
    curves = metrics.get("curves", {})
    colors = {"target": "tab:red", "general": "tab:blue"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for domain, color in colors.items():
        for ax, key in ((axes[0], f"heal/entropy/{domain}"), (axes[1], f"heal/entropy_retention/{domain}")):
            points = [(h["step"], h[key]) for h in history if key in h]
            if points:
                ax.plot(*zip(*points), color=color, label=domain)
        for when, style in (("initial", "--"), ("latest", "-")):
            curve = curves.get(when, {}).get(domain, {}).get("curve")
            if curve:
                x = [(k + 0.5) / len(curve) for k in range(len(curve))]
                axes[2].plot(x, curve, style, color=color, label=f"{domain}, {'step 0' if when == 'initial' else 'last step'}")
    axes[0].set(title="Mean token entropy", xlabel="step", ylabel="nats")
    axes[1].set(title="Entropy retention (now / step 0)", xlabel="step")
    axes[2].set(title="Entropy dynamics (mean curve)", xlabel="normalized position in the response", ylabel="nats")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# --- The pipeline -----------------------------------------------------------------


@dataclass
class TrainResult:
    """Where a run's outputs are, and its metrics (as in metrics.json)."""

    output_dir: Path
    metrics: dict[str, Any]
    trainer: Any = field(repr=False, default=None)
    pushed_url: str | None = None
    main_process: bool = True


def train(settings: TrainSettings, overrides: dict[str, Any] | None = None, callbacks: list[Any] | None = None) -> TrainResult:
    """Run few-shot HEAL training (see the module doc). `overrides` are HEALConfig fields;
    `callbacks` are transformers TrainerCallbacks added to the trainer."""
    import datasets
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .pool import POOL_REPO_ID, load_pool, tokenizer_fingerprint
    from .processors import DOMAIN_GENERAL, HybridSelection
    from .trl import DomainMixSampler, HEALConfig, HEALGRPOTrainer, write_json_atomic

    state = PartialState()
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - _config_fields())
    if unknown:
        raise ValueError(f"overrides: unknown HEALConfig fields {unknown}")
    output_dir = Path(settings.output_dir)
    get_verifier(settings.verifier)
    fingerprint = {k: v for k, v in dataclasses.asdict(settings).items() if k not in _RUN_FLAGS}
    fingerprint.update({f"config.{k}": v for k, v in sorted(overrides.items())})
    checkpoint = check_output_dir(output_dir, settings.resume, fingerprint)
    if settings.push_to_hub:
        hub_token()

    # Training arguments first: they say how many prompts one batch takes.
    # The mixed set names its columns prompt / answer / domain whatever the target's were.
    config = HEALConfig(
        output_dir=str(output_dir),
        **{**training_defaults(), **overrides, "answer_column": "answer", "verifier": settings.verifier},
    )

    target = load_problems(settings.target, settings.target_split, settings.prompt_column, settings.answer_column, "target")
    eval_set = None
    if settings.eval is not None:
        eval_set = load_problems(settings.eval, settings.eval_split, settings.prompt_column, settings.answer_column, "eval")
    if not Path(settings.model).exists() and settings.model == DEFAULT_MODEL:
        raise ValueError(f"model: the bundled toy reasoner is not installed at {DEFAULT_MODEL}; pass --model")
    tokenizer = AutoTokenizer.from_pretrained(settings.model, trust_remote_code=settings.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    pool = load_pool(settings.pool, bins=config.eda_bins, tokenizer_hash=tokenizer_fingerprint(tokenizer))
    train_set_path = output_dir / TRAIN_SET_FILE
    if settings.resume and train_set_path.exists():
        mixed = datasets.Dataset.from_parquet(str(train_set_path))  # the exact set the run started with
    else:
        mixed = HybridSelection(
            pool, n_general=settings.n_general, prompt_column=settings.prompt_column,
            answer_column=settings.answer_column, redundancy=settings.selection_redundancy, seed=config.seed,
        )(target)
    per_batch = config.generation_batch_size // config.num_generations
    sampler = DomainMixSampler(mixed["domain"], config.num_generations, per_batch, target_fraction=config.target_fraction)
    train_set = mixed.map(lambda row: {"prompt": _conversational([row["prompt"]])[0]}) if settings.chat_template else mixed

    run = {
        "heal_hf_version": __version__,
        "status": "training",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fingerprint": fingerprint,
        "settings": dataclasses.asdict(settings),
        "model": {
            "path": settings.model,
            "base_model_id": settings.base_model_id or (settings.model if not Path(settings.model).exists() else None),
            "adapter": settings.lora,
            "tokenizer_hash": tokenizer_fingerprint(tokenizer),
        },
        "data": {
            "target": {"source": settings.target, "split": settings.target_split, "rows": len(target)},
            "general": {
                "source": settings.pool,
                "hub_id": POOL_REPO_ID if settings.pool == "bundled" else (
                    settings.pool if not Path(settings.pool).exists() else None),
                "rows": mixed["domain"].count(DOMAIN_GENERAL),
                "pool_rows": len(pool),
                "pool_model_id": pool[0]["model_id"],
                "redundancy": settings.selection_redundancy,
            },
            "eval": None if eval_set is None else {"source": settings.eval, "split": settings.eval_split, "rows": len(eval_set)},
            "prompts_per_batch": per_batch,
            "target_prompts_per_batch": sampler.n_target,
            "example_prompt": target[0][settings.prompt_column],
        },
        "training": {k: getattr(config, k) for k in HEAL_FIELDS + GRPO_FIELDS},
        "versions": _versions(),
    }
    if settings.lora:
        run["training"].update(lora_r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                               lora_target_modules=settings.lora_target_modules)
    state.wait_for_everyone()  # every process has passed the checks before anything is written

    model = AutoModelForCausalLM.from_pretrained(
        settings.model, trust_remote_code=settings.trust_remote_code,
        dtype="auto" if torch.cuda.is_available() else torch.float32,
    )
    run["model"]["parameters"] = sum(p.numel() for p in model.parameters())
    previous = json.loads((output_dir / RUN_FILE).read_text()) if settings.resume else {}
    metrics: dict[str, Any] = {"eval": {}}
    if eval_set is not None and settings.eval_baseline:
        if previous.get("eval_baseline") is not None:
            metrics["eval"]["base"] = previous["eval_baseline"]
        elif state.is_main_process:
            metrics["eval"]["base"] = _evaluate(model, tokenizer, eval_set, settings, config)
    run["eval_baseline"] = metrics["eval"].get("base")
    if state.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if not train_set_path.exists():
            tmp = output_dir / f".{TRAIN_SET_FILE}.tmp"
            mixed.to_parquet(str(tmp))
            os.replace(tmp, train_set_path)
        write_json_atomic(output_dir / RUN_FILE, run)
    state.wait_for_everyone()

    peft_config = None
    if settings.lora:
        from peft import LoraConfig

        targets = settings.lora_target_modules
        peft_config = LoraConfig(
            r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
            target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
            task_type="CAUSAL_LM",
        )
    trainer = HEALGRPOTrainer(
        model=model, reward_funcs=[verifier_reward(settings.verifier)], args=config, train_dataset=train_set,
        processing_class=tokenizer, pool=pool, peft_config=peft_config, callbacks=callbacks,
    )
    run["model"]["trainable_parameters"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=None if checkpoint is None else str(checkpoint))
    runtime = time.perf_counter() - started
    trainer.save_model(str(output_dir))

    if state.is_main_process:
        if eval_set is not None:
            metrics["eval"]["trained"] = _evaluate(trainer.model, tokenizer, eval_set, settings, config)
        metrics.update(
            train={"global_step": trainer.state.global_step, "runtime_s": runtime,
                   "resumed_from": None if checkpoint is None else Path(checkpoint).name},
            history=history_from_logs(trainer.state.log_history),
            curves={"initial": trainer.eda.initial, "latest": trainer.eda.latest},
        )
        if not metrics["eval"]:
            del metrics["eval"]
        write_json_atomic(output_dir / METRICS_FILE, metrics)
        plot_entropy_curves(metrics, output_dir / CURVES_FILE)
        run.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        write_json_atomic(output_dir / RUN_FILE, run)
        from .cards import write_model_card

        write_model_card(output_dir)
    state.wait_for_everyone()
    pushed = None
    if settings.push_to_hub and state.is_main_process:
        pushed = push_run(output_dir, settings.push_to_hub, settings.private)
    return TrainResult(output_dir, metrics, trainer, pushed, main_process=state.is_main_process)


def _evaluate(model: Any, tokenizer: Any, eval_set: Any, settings: TrainSettings, config: Any) -> dict:
    return evaluate_target(
        model, tokenizer, eval_set[settings.prompt_column], [str(a) for a in eval_set[settings.answer_column]],
        settings.verifier, settings.eval_samples, config.max_completion_length, config.temperature,
        chat_template=settings.chat_template, seed=config.seed,
    )


def _versions() -> dict[str, str]:
    import datasets
    import peft
    import transformers
    import trl

    return {"heal_hf": __version__, "trl": trl.__version__, "transformers": transformers.__version__,
            "torch": torch.__version__, "peft": peft.__version__, "datasets": datasets.__version__}
