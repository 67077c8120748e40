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
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..core.verifiers import get_verifier, verifier_reward
from ..data.files import (
    atomic_write,
    claim_folder,
    error_line,
    is_network_error,
    write_json_atomic,
)
from ..data.run_folder import (
    CURVES_FILE,
    METRICS_FILE,
    RUN_FILE,
    STATE_FILE,
    TRAIN_SET_FILE,
    history_from_logs,
    last_complete_checkpoint,
)
from ..toy import check_toy_reasoner
from .push import hub_token, name_adapter_base, push_run
from .train_options import (
    DEFAULT_MODEL,
    GRPO_FIELDS,
    HEAL_FIELDS,
    RUN_FLAGS,
    TRAIN_LOG,
    TrainSettings,
    check_batch_mix,
    check_prompt_lengths,
    check_train_settings,
    config_fields,
    load_problems,
    model_context,
    take_secrets,
    training_config,
)


@dataclass
class TrainResult:
    """Where a run's outputs are, and its metrics (as in metrics.json)."""

    output_dir: Path
    metrics: dict[str, Any]
    trainer: Any = field(repr=False, default=None)
    pushed_url: str | None = None
    main_process: bool = True


@dataclass
class _RunData:
    """What a run trains and evaluates on, loaded and checked before any model weights."""

    target: Any
    eval_set: Any
    tokenizer: Any
    pool: Any
    mixed: Any  # the hybrid training set: target rows + general picks, `domain` column
    sampler: Any  # how many target prompts a batch holds (the trainer draws with its own)
    train_set: Any  # `mixed`, its prompts in chat form with --chat-template


VERIFIER_COLUMN = "verifier"
"""The mixed set's column naming each row's verifier, present when --general-verifier is given."""
WRITE_ERRORS: tuple[type[BaseException], ...] = (OSError, RuntimeError)
"""What a failed write raises: OSError, torch.save's RuntimeError; safetensors' SafetensorError is added on use."""


def train(settings: TrainSettings, overrides: dict[str, Any] | None = None, callbacks: list[Any] | None = None,
          quiet: bool = False) -> TrainResult:
    """Run few-shot HEAL training (see the module doc). `overrides` are HEALConfig fields;
    `callbacks` are transformers TrainerCallbacks added to the trainer.

    `quiet` (what `heal-hf train` does): the terminal shows one progress bar over the steps and warnings of a pool
    sampled by another model; everything else the run prints (TRL's per-step log dicts, warnings, bars) goes to
    TRAIN_LOG in the output folder (`heal_hf.app.console`, as `heal-hf demo`).
    """
    if not quiet:
        return _train_safely(settings, overrides, callbacks)
    from .console import RunLog, output_to

    log = RunLog()
    terminal = sys.stderr
    try:
        with output_to(log) as terminal:
            return _train_safely(settings, overrides, callbacks, log=log, terminal=terminal)
    except Exception as err:
        terminal.write("\n")  # the error line starts on its own line, not after a progress bar
        if not isinstance(err, ValueError):  # ours name the fix; anything else shows what the run printed first
            terminal.write(log.held())
        raise
    finally:
        log.close()


def _train_safely(settings: TrainSettings, overrides: dict[str, Any] | None, callbacks: list[Any] | None,
                  log: Any = None, terminal: Any = None) -> TrainResult:
    """`_train`, where a write that fails once the run has started (a full disk) is one OSError naming the
    folder, and what it leaves behind is only what `--resume` continues from."""
    from safetensors import SafetensorError

    try:
        return _train(settings, overrides, callbacks, log=log, terminal=terminal)
    except (*WRITE_ERRORS, SafetensorError) as err:
        output_dir = Path(settings.output_dir)
        if not _is_write_error(err) or not (output_dir / RUN_FILE).is_file():
            raise
        removed = remove_unfinished(output_dir)
        raise OSError(
            f"output_dir: writing to {output_dir} failed ({error_line(err)}); free space on its disk (or choose "
            f"another --output-dir) and continue with --resume; {removed}"
        ) from None


_TORCH_WRITE_ERROR = r"writ|[Nn]o space|iostream|inline_container|PytorchStreamWriter|unexpected pos|[Dd]isk quota"
"""What torch.save's RuntimeErrors say when the disk refuses a write."""


def _is_write_error(err: BaseException) -> bool:
    """Whether `err` (or what caused it) is a failed write rather than a bug."""
    from safetensors import SafetensorError

    while err is not None:
        if isinstance(err, (OSError, SafetensorError)):
            return True
        if isinstance(err, RuntimeError) and re.search(_TORCH_WRITE_ERROR, str(err)):
            return True
        err = err.__cause__ or err.__context__
    return False


def remove_unfinished(output_dir: Path) -> str:
    """Delete what an interrupted run left that could pass for finished; a sentence saying what was kept.

    Partial checkpoints (no heal_state.json yet) and, while heal_run.json says "training",
    every top-level file but it and the training set (model weights, TRL's generic card,
    metrics): `--resume` writes them again. Complete checkpoints stay.
    """
    for folder in output_dir.glob("checkpoint-*"):
        if folder.is_dir() and folder != last_complete_checkpoint(output_dir) and not (folder / STATE_FILE).is_file():
            shutil.rmtree(folder, ignore_errors=True)
    try:
        finished = json.loads((output_dir / RUN_FILE).read_text(encoding="utf-8")).get("status") == "complete"
    except (OSError, ValueError, AttributeError):
        finished = False
    if not finished:
        for path in output_dir.iterdir():
            if path.is_file() and path.name not in (RUN_FILE, TRAIN_SET_FILE):
                path.unlink(missing_ok=True)
    checkpoint = last_complete_checkpoint(output_dir)
    kept = f"{checkpoint.name} is kept" if checkpoint else "no checkpoint was complete"
    return f"partial files were removed, {kept}"


def _train(settings: TrainSettings, overrides: dict[str, Any] | None, callbacks: list[Any] | None,
           log: Any = None, terminal: Any = None) -> TrainResult:
    """`train` without its handling of output and of failed writes."""
    from accelerate import PartialState


    state = PartialState()
    output_dir = Path(settings.output_dir)
    config, fingerprint, previous, push_token = _checked_start(settings, dict(overrides or {}))
    checkpoint = last_complete_checkpoint(output_dir) if previous else None
    data = _load_data(settings, config)
    run = _run_record(settings, config, fingerprint, data)
    state.wait_for_everyone()  # every process has passed the checks before anything is written

    model = load_training_model(settings)
    run["model"]["parameters"] = sum(p.numel() for p in model.parameters())
    metrics: dict[str, Any] = {"eval": {}}
    if data.eval_set is not None and settings.eval_baseline:
        if previous.get("eval_baseline") is not None:
            metrics["eval"]["base"] = previous["eval_baseline"]
        elif state.is_main_process:
            metrics["eval"]["base"] = _evaluate(model, data, settings, config)
    run["eval_baseline"] = metrics["eval"].get("base")
    if log is not None:
        from .console import step_bar

        config.disable_tqdm = True  # the bar below instead of the Trainer's; its log dicts go to the log file
        if state.is_main_process:
            after = "evaluating on the held-out problems" if data.eval_set is not None else None
            callbacks = [*(callbacks or []), step_bar("train", config.max_steps, terminal, after=after)]
    trainer = _trainer(model, settings, config, data, callbacks)
    run["model"]["trainable_parameters"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    # Written only now that the trainer has accepted its arguments too: a refused run leaves no folder behind.
    if state.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if not (output_dir / TRAIN_SET_FILE).exists():
            with atomic_write(output_dir / TRAIN_SET_FILE) as tmp:
                data.mixed.to_parquet(str(tmp))
        write_json_atomic(output_dir / RUN_FILE, run)
    state.wait_for_everyone()
    if log is not None:
        log.open_file(output_dir / (TRAIN_LOG if state.is_main_process else f"train.process{state.process_index}.log"))
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=None if checkpoint is None else str(checkpoint))
    runtime = time.perf_counter() - started
    trainer.save_model(str(output_dir))
    _finish(trainer, run, metrics, data, settings, config, runtime, checkpoint)
    state.wait_for_everyone()
    pushed = None
    if settings.push_to_hub and state.is_main_process:
        try:
            pushed = push_run(output_dir, settings.push_to_hub, settings.private, token=push_token)
        except Exception as err:
            if not is_network_error(err):
                raise
            raise ValueError(f"push_to_hub: the run is saved in {output_dir} but was not pushed: {error_line(err)}; "
                             "then run the same command with --resume to push it") from None
    return TrainResult(output_dir, metrics, trainer, pushed, main_process=state.is_main_process)


def _checked_start(settings: TrainSettings, overrides: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any], str | None]:
    """Every check that needs no data, then the claim of the folder: (config, fingerprint, previous run, push token)."""
    unknown = sorted(set(overrides) - config_fields())
    if unknown:
        raise ValueError(f"overrides: unknown HEALConfig fields {unknown}")
    push_token = take_secrets(dataclasses.asdict(settings), overrides)  # never stored, logged or pushed
    check_train_settings(settings)
    get_verifier(settings.verifier)
    if settings.general_verifier is not None:
        get_verifier(settings.general_verifier)
    # Training arguments before the folder is claimed: a refused setting leaves it as it was.
    # The mixed set names its columns prompt / answer / domain whatever the target's were.
    config = training_config(settings, overrides)
    fingerprint = {k: v for k, v in dataclasses.asdict(settings).items() if k not in RUN_FLAGS}
    fingerprint.update({f"config.{k}": v for k, v in sorted(overrides.items())})
    previous = claim_folder(Path(settings.output_dir), RUN_FILE, fingerprint, settings.resume, key="fingerprint") or {}
    if settings.push_to_hub:
        push_token = push_token or hub_token()
        from ..data.model_identity import hub_model_id

        if settings.lora and not hub_model_id(settings.model, settings.base_model_id):
            raise ValueError(f"push_to_hub: a pushed adapter names its base model by Hub id, and --model "
                             f"{Path(settings.model).name!r} has none; pass --base-model-id")
    return config, fingerprint, previous, push_token


def _finish(trainer: Any, run: dict[str, Any], metrics: dict[str, Any], data: _RunData, settings: TrainSettings,
            config: Any, runtime: float, checkpoint: Path | None) -> None:
    """On the main process: name the adapter's base, evaluate, write metrics, curves, the record and the card."""
    from accelerate import PartialState

    from ..hub.cards import plot_entropy_curves, write_model_card

    if not PartialState().is_main_process:
        return
    output_dir = Path(settings.output_dir)
    name_adapter_base(output_dir, run["model"]["base_model_id"])
    if data.eval_set is not None:
        metrics["eval"]["trained"] = _evaluate(trainer.model, data, settings, config)
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
    write_model_card(output_dir)


def _load_data(settings: TrainSettings, config: Any) -> _RunData:
    """Target and eval problems, the tokenizer, the pool and the hybrid training set (a resumed run's own)."""
    import datasets
    from transformers import AutoTokenizer

    from ..data.model_identity import model_identity
    from ..data.models import check_model_files
    from ..data.pool import DOMAIN_GENERAL, load_pool, tokenizer_fingerprint
    from ..data.processors import HybridSelection
    from ..trl import DomainMixSampler, batch_target_count
    from .evaluation import conversational

    target = load_problems(settings.target, settings.target_split, settings.prompt_column, settings.answer_column,
                           "target", settings.verifier)
    eval_set = None
    if settings.eval is not None:
        eval_set = load_problems(settings.eval, settings.eval_split, settings.prompt_column, settings.answer_column,
                                 "eval", settings.verifier)
    if settings.model == DEFAULT_MODEL:
        check_toy_reasoner()  # a missing or damaged bundled file is named, with the fix
    check_model_files(settings.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(settings.model, trust_remote_code=settings.trust_remote_code)
        context = model_context(settings.model, settings.trust_remote_code)
    except Exception as err:  # no such folder, a Hub id that cannot be reached, a damaged config or tokenizer
        raise ValueError(f"model: cannot load {settings.model!r} ({error_line(err)}); pass --model with a local "
                         "folder or a Hub id of a causal LM") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    pool = load_pool(settings.pool, bins=config.eda_bins, tokenizer_hash=tokenizer_fingerprint(tokenizer),
                     model=model_identity(settings.model, settings.base_model_id))
    train_set_path = Path(settings.output_dir) / TRAIN_SET_FILE
    if settings.resume and train_set_path.exists():
        mixed = datasets.Dataset.from_parquet(str(train_set_path))  # the exact set the run started with
    else:
        mixed = HybridSelection(
            pool, n_general=settings.n_general, prompt_column=settings.prompt_column,
            answer_column=settings.answer_column, redundancy=settings.selection_redundancy, seed=config.seed,
        )(target)
        if settings.general_verifier is not None:  # each row names its checker (the reward reads VERIFIER_COLUMN)
            mixed = mixed.add_column(VERIFIER_COLUMN, [settings.general_verifier if d == DOMAIN_GENERAL else settings.verifier
                                                       for d in mixed["domain"]])
    per_batch = config.generation_batch_size // config.num_generations
    n_target, n_general = mixed["domain"].count("target"), mixed["domain"].count("general")
    check_batch_mix(per_batch, batch_target_count(per_batch, n_target, n_general, config.target_fraction), n_general,
                    config.num_generations)  # named by the command's options, before the sampler's own check
    sampler = DomainMixSampler(mixed["domain"], config.num_generations, per_batch, target_fraction=config.target_fraction)
    for what, rows, column in (("target", target, settings.prompt_column), ("eval", eval_set, settings.prompt_column),
                               ("pool: the selected general prompts", mixed, "prompt")):
        if rows is not None:
            check_prompt_lengths(rows[column], tokenizer, context, config.max_completion_length,
                                 what if what.startswith("pool") else f"{what}: {getattr(settings, what)}",
                                 settings.chat_template)
    train_set = mixed.map(lambda row: {"prompt": conversational([row["prompt"]])[0]}) if settings.chat_template else mixed
    return _RunData(target, eval_set, tokenizer, pool, mixed, sampler, train_set)


def load_training_model(settings: TrainSettings) -> Any:
    """The causal LM to train; a folder or Hub id that cannot give one is a one-line ValueError with the fix."""
    from transformers import AutoModelForCausalLM

    from ..data.models import check_causal_lm

    try:
        model = AutoModelForCausalLM.from_pretrained(
            settings.model, trust_remote_code=settings.trust_remote_code,
            dtype="auto" if torch.cuda.is_available() else torch.float32,
        )
    except Exception as err:  # truncated weights, a config disagreeing with them, an unreachable Hub id
        raise ValueError(
            f"model: cannot load the weights of {settings.model!r} ({error_line(err)}); the folder's weights are "
            "damaged or do not match its config.json: save the model again with save_pretrained, or pass another "
            "--model"
        ) from None
    check_causal_lm(model)
    return model


def _run_record(settings: TrainSettings, config: Any, fingerprint: dict[str, Any], data: _RunData) -> dict[str, Any]:
    """heal_run.json as the run starts: settings, model, data, training settings and versions."""
    from ..data.model_identity import hub_model_id, model_fingerprint
    from ..data.pool import DOMAIN_GENERAL, POOL_REPO_ID, tokenizer_fingerprint
    from ..data.pool_shards import split_pool_source

    pool_dataset, _ = split_pool_source(settings.pool)  # the card's `datasets:` takes a repo id, not REPO:CONFIG
    run = {
        "heal_hf_version": __version__,
        "status": "training",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fingerprint": fingerprint,
        "settings": dataclasses.asdict(settings),
        "model": {
            "path": settings.model,
            "base_model_id": hub_model_id(settings.model, settings.base_model_id),
            "fingerprint": model_fingerprint(settings.model),
            "adapter": settings.lora,
            "tokenizer_hash": tokenizer_fingerprint(data.tokenizer),
        },
        "data": {
            "target": {"source": settings.target, "split": settings.target_split, "rows": len(data.target)},
            "general": {
                "source": settings.pool,
                "hub_id": POOL_REPO_ID if settings.pool == "bundled" else (
                    pool_dataset if not Path(pool_dataset).exists() else None),
                "rows": data.mixed["domain"].count(DOMAIN_GENERAL),
                "pool_rows": len(data.pool),
                "pool_model_id": data.pool[0]["model_id"],
                "redundancy": settings.selection_redundancy,
            },
            "eval": None if data.eval_set is None else {
                "source": settings.eval, "split": settings.eval_split, "rows": len(data.eval_set)},
            "prompts_per_batch": config.generation_batch_size // config.num_generations,
            "target_prompts_per_batch": data.sampler.n_target,
            "example_prompt": data.target[0][settings.prompt_column],
        },
        "training": {k: getattr(config, k) for k in HEAL_FIELDS + GRPO_FIELDS},
        "versions": _versions(),
    }
    if settings.lora:
        run["training"].update(lora_r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                               lora_target_modules=settings.lora_target_modules)
    return run


def _trainer(model: Any, settings: TrainSettings, config: Any, data: _RunData, callbacks: list[Any] | None) -> Any:
    """The HEALGRPOTrainer of a run: the verifier's reward, the pool, and a LoRA adapter with --lora."""
    from ..trl import HEALGRPOTrainer

    peft_config = None
    if settings.lora:
        from peft import LoraConfig

        targets = settings.lora_target_modules
        peft_config = LoraConfig(
            r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
            target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
            task_type="CAUSAL_LM",
        )
    return HEALGRPOTrainer(
        model=model, reward_funcs=[verifier_reward(settings.verifier, verifier_column=VERIFIER_COLUMN)], args=config,
        train_dataset=data.train_set,
        processing_class=data.tokenizer, pool=data.pool, peft_config=peft_config, callbacks=callbacks,
    )


def _evaluate(model: Any, data: _RunData, settings: TrainSettings, config: Any) -> dict:
    from .evaluation import evaluate_target

    return evaluate_target(
        model, data.tokenizer, data.eval_set[settings.prompt_column],
        [str(a) for a in data.eval_set[settings.answer_column]], settings.verifier, settings.eval_samples,
        config.max_completion_length, config.temperature, chat_template=settings.chat_template, seed=config.seed,
        rollout_metrics=config.rollout_metrics,
    )


def _versions() -> dict[str, str]:
    import datasets
    import peft
    import transformers
    import trl

    return {"heal_hf": __version__, "trl": trl.__version__, "transformers": transformers.__version__,
            "torch": torch.__version__, "peft": peft.__version__, "datasets": datasets.__version__}
