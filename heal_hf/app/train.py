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
import math
import re
import shutil
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import __version__
from ..core.eda import DEFAULT_EDA_WEIGHT, REFERENCE_MODES, EDASettings
from ..core.verifiers import check_reference_answers, get_verifier, verifier_reward
from ..data.files import (
    atomic_write,
    check_text_column,
    claim_folder,
    error_line,
    is_network_error,
    load_rows,
    read_text_utf8,
    write_json_atomic,
    write_text_atomic,
)
from ..data.run_folder import (
    CURVES_FILE,
    LOG_FILE,
    METRICS_FILE,
    RUN_FILE,
    STATE_FILE,
    TRAIN_SET_FILE,
    history_from_logs,
    last_complete_checkpoint,
)
from ..toy import TOY_REASONER_PATH, check_toy_reasoner

DEFAULT_MODEL = str(TOY_REASONER_PATH)
"""The model `heal-hf train` uses without --model: the bundled toy reasoner (switch it here)."""
PUSH_IGNORE = ["checkpoint-*", "checkpoint-*/**", ".*", "**/.*", "training_args.bin", "*.log"]
"""Not uploaded by push: checkpoints, hidden files (the run's own temporaries), and what names this machine's
paths: TrainingArguments pickled by the Trainer, the run's log (heal_run.json records the settings)."""
ADAPTER_CONFIG = "adapter_config.json"
TRAIN_LOG = LOG_FILE
"""The run's log in its folder: TRL's per-step dicts, warnings and bars (the terminal shows one bar and the summary)."""


@dataclass
class TrainSettings:
    """What `heal-hf train` does besides GRPO itself (GRPO/HEAL settings live in `HEALConfig`)."""

    target: str = field(metadata={"help": "target-domain problems: a .json/.jsonl/.csv/.parquet file or a Hub dataset id"})
    output_dir: str = field(metadata={"help": "folder for the model or adapter, card, metrics and checkpoints"})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "causal LM to train: a local folder or a Hub id (default: the bundled toy reasoner)"})
    pool: str = field(default="bundled", metadata={"help": "general-entropy pool: a folder, a Hub id with its model's config as REPO:CONFIG (e.g. heal/general-entropy-pool:toy-reasoner; REPO alone: the default config), or 'bundled' (the pool shipped with heal-hf)"})
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
    "eda_estimator": EDASettings.__dataclass_fields__["estimator"].metadata["help"],
    "eda_only_correct": "give EDA only to rollouts the verifier accepts",
    "target_fraction": "share of target prompts per batch (default: the training set's share, --n-general decides)",
    "save_steps": "steps between checkpoints (what --resume continues from)",
    "logging_steps": "steps between logged metrics",
    "seed": "seed of selection, sampling and training",
}
"""HEALConfig fields `heal-hf train` has flags for (any field works in --config), with their help."""
TRAINING_CHOICES = {"eda_estimator": EDASettings.__dataclass_fields__["estimator"].metadata["choices"],
                    "eda_reference": REFERENCE_MODES}
"""The allowed values of those flags that take one of a few names."""


def training_defaults() -> dict[str, Any]:
    """HEALConfig values `heal-hf train` uses unless the config or the command line says otherwise.

    Covers every TRAINING_OPTIONS key. The HEAL ones are HEALConfig's defaults, taken from where HEALConfig takes
    them (EDASettings, the core's constants), since importing HEALConfig (TRL) would slow every `heal-hf` command.
    """
    return {
        "max_steps": 100,
        "learning_rate": 1e-5,
        "per_device_train_batch_size": 32,
        "num_generations": 8,
        "max_completion_length": 128,
        "temperature": 1.0,
        "beta": 0.0,
        "eda_weight": DEFAULT_EDA_WEIGHT,
        "eda_reference": REFERENCE_MODES[0],
        "eda_estimator": EDASettings().estimator,
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
    "eda_weight", "eda_reference", "eda_bins", *(f"eda_{name}" for name in EDASettings.__dataclass_fields__),
    "eda_min_reference_rows", "eda_only_correct", "target_fraction",
)
GRPO_FIELDS = (
    "max_steps", "learning_rate", "lr_scheduler_type", "per_device_train_batch_size", "gradient_accumulation_steps",
    "num_generations", "generation_batch_size", "max_completion_length", "temperature", "top_p", "top_k", "beta",
    "loss_type", "scale_rewards", "num_iterations", "epsilon", "epsilon_high", "top_entropy_quantile", "seed",
    "warmup_steps", "entropy_coef", "use_adaptive_entropy", "entropy_target", "entropy_coef_delta",
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
    from ..trl import HEALConfig

    return {f.name for f in dataclasses.fields(HEALConfig)}


def read_config(path: str | Path | None) -> dict[str, Any]:
    """A flat YAML mapping of options (see `split_options`); {} when no path."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config: no such file {path}")
    try:
        data = yaml.safe_load(read_text_utf8(path, "config")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config: {path} is not valid YAML ({' '.join(str(err).split())}); fix the file") from None
    if not isinstance(data, dict):
        raise ValueError(f"config: {path} must hold a mapping of option: value, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


# --- Checks: every setting, before anything is written -----------------------------

SECRET_FIELD = re.compile(r"(token|secret|password|passwd|api_key|credentials?)$")
"""Option names that carry a secret: taken out of a run's settings, never stored, logged or pushed."""
TOKEN_VALUE = re.compile(r"hf_[A-Za-z0-9]{20,}")
"""What a Hugging Face access token looks like, wherever it is put."""
PUSH_TOKEN_FIELDS = ("hub_token", "push_to_hub_token")
"""Secret options `heal-hf train` uses: the token of --push-to-hub."""

# option: (low, high, low allowed, high allowed, whole number); None: no bound on that side.
_RANGES: dict[str, tuple[float | None, float | None, bool, bool, bool]] = {
    "max_steps": (1, None, True, False, True),
    "learning_rate": (0, None, False, False, False),
    "per_device_train_batch_size": (1, None, True, False, True),
    "gradient_accumulation_steps": (1, None, True, False, True),
    "num_generations": (2, None, True, False, True),
    "generation_batch_size": (1, None, True, False, True),
    "steps_per_generation": (1, None, True, False, True),
    "num_iterations": (1, None, True, False, True),
    "max_completion_length": (1, None, True, False, True),
    "temperature": (0, None, False, False, False),
    "top_p": (0, 1, False, True, False),
    "min_p": (0, 1, True, True, False),
    "repetition_penalty": (0, None, False, False, False),
    "top_entropy_quantile": (0, 1, False, True, False),
    "save_steps": (0, None, False, False, False),
    "logging_steps": (0, None, False, False, False),
    "save_total_limit": (1, None, True, False, True),
    "seed": (0, 2**32 - 1, True, True, True),
    "adam_beta1": (0, 1, True, False, False),
    "adam_beta2": (0, 1, True, False, False),
    "adam_epsilon": (0, None, False, False, False),
    "warmup_ratio": (0, 1, True, True, False),
    "eda_bins": (2, None, True, False, True),
    "eda_momentum": (0, 1, True, True, False),
    "eda_eps": (0, None, False, False, False),
    "eda_min_reference_rows": (1, None, True, False, True),
    "target_fraction": (0, 1, False, False, False),
    # TrainSettings
    "n_general": (0, None, True, False, True),
    "selection_redundancy": (0, 1, True, False, False),
    "lora_r": (1, None, True, False, True),
    "lora_alpha": (0, None, False, False, False),
    "lora_dropout": (0, 1, True, False, False),
    "eval_samples": (1, None, True, False, True),
}


def option_name(name: str) -> str:
    """How a user sets `name`: its flag, or the --config key when there is no flag."""
    flag = "--" + name.replace("_", "-")
    return flag if name in _SETTINGS_FIELDS or name in TRAINING_OPTIONS else f"{name} (in --config)"


def take_secrets(settings: dict[str, Any], overrides: dict[str, Any]) -> str | None:
    """Remove every secret-bearing option from `overrides` (in place); return the push token given, if any.

    A run's settings are stored (heal_run.json, training_args.bin) and pushed, so no
    secret may stay among them: `hub_token` is kept aside for --push-to-hub only, any
    other secret option is refused, and so is a value anywhere that looks like a token.
    """
    token = None
    for name in sorted(overrides):
        if not SECRET_FIELD.search(name):
            continue
        value = overrides.pop(name)
        if name not in PUSH_TOKEN_FIELDS:
            raise ValueError(f"{name}: a secret cannot be a run setting (runs are stored and pushed); remove it "
                             "from --config and give it through the environment")
        if value is not None:
            token = str(value)
    for name, value in {**settings, **overrides}.items():
        if any(TOKEN_VALUE.search(str(v)) for v in (value if isinstance(value, (list, tuple)) else [value])):
            raise ValueError(f"{option_name(name)}: holds what looks like a Hugging Face token; tokens are never "
                             "stored with a run: remove it and set HF_TOKEN (or run `hf auth login`) instead")
    return token


def _numeric_hint(hint: Any) -> type | None:
    """float or int when a dataclass field's type is (optionally) that number, else None."""
    text = str(hint)
    if "bool" in text or "str" in text:
        return None
    return float if "float" in text else int if "int" in text else None


def coerce_numbers(options: dict[str, Any], cls: type) -> dict[str, Any]:
    """`options` with numbers written as text (YAML reads `1e-5` as a string) parsed, for `cls`'s numeric fields.

    Anything else given for a number (text that is no number, a list, true/false) is a
    ValueError naming the option.
    """
    hints = {f.name: _numeric_hint(f.type) for f in dataclasses.fields(cls)}
    out = dict(options)
    for name, value in options.items():
        kind = hints.get(name)
        if kind is None or value is None:
            continue
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"{option_name(name)}: expected a number, got {value!r}")
        if kind is int:
            if not (math.isfinite(number) and float(number).is_integer()):
                raise ValueError(f"{option_name(name)}: expected a whole number, got {value!r}")
            number = int(number)
        out[name] = number
    return out


def check_numbers(values: dict[str, Any], defaults: dict[str, Any]) -> None:
    """ValueError naming the first numeric setting out of its range.

    Every number must be finite; those in `_RANGES` within their range; any other whose
    default is not negative must not be negative (a sentinel like -1 is only allowed where
    the default is one).
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            raise ValueError(f"{option_name(name)}: expected a finite number, got {value!r}")
        if name in _RANGES:
            low, high, low_ok, high_ok, whole = _RANGES[name]
            if whole and not float(value).is_integer():
                raise ValueError(f"{option_name(name)}: expected a whole number, got {value!r}")
            below = low is not None and (value < low or (value == low and not low_ok))
            above = high is not None and (value > high or (value == high and not high_ok))
            if below or above:
                raise ValueError(f"{option_name(name)}: expected {_range_text(low, high, low_ok, high_ok)}, "
                                 f"got {value!r}")
        else:
            default = defaults.get(name)
            if value < 0 and isinstance(default, (int, float)) and not isinstance(default, bool) and default >= 0:
                raise ValueError(f"{option_name(name)}: expected a number >= 0, got {value!r}")


def _range_text(low: float | None, high: float | None, low_ok: bool, high_ok: bool) -> str:
    if high is None:
        return f"a number {'>=' if low_ok else '>'} {low:g}"
    if low is None:
        return f"a number {'<=' if high_ok else '<'} {high:g}"
    return f"a number in {'[' if low_ok else '('}{low:g}, {high:g}{']' if high_ok else ')'}"


def check_settings(settings: TrainSettings) -> None:
    """ValueError naming the first TrainSettings field of the wrong type or out of range (options from --config)."""
    hints = typing.get_type_hints(TrainSettings)
    values = dataclasses.asdict(settings)
    for name, value in values.items():
        hint = str(hints[name])
        if value is None and "None" in hint:
            continue
        if hints[name] is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{option_name(name)}: expected true or false, got {value!r}")
        elif _numeric_hint(hint) is not None:
            coerce_numbers({name: value}, TrainSettings)
        elif "str" in hint and not isinstance(value, str):
            raise ValueError(f"{option_name(name)}: expected text, got {value!r}")
    check_numbers(coerce_numbers(values, TrainSettings), {})


def training_config(settings: TrainSettings, overrides: dict[str, Any]) -> Any:
    """The run's HEALConfig from `training_defaults()` and `overrides`, every number checked; writes nothing."""
    from ..trl import HEALConfig

    options = coerce_numbers({**training_defaults(), **overrides}, HEALConfig)
    defaults = {f.name: f.default for f in dataclasses.fields(HEALConfig)}
    check_numbers(options, defaults)
    try:
        config = HEALConfig(
            output_dir=settings.output_dir, **{**options, "answer_column": "answer", "verifier": settings.verifier},
        )
    except TypeError as err:  # a value of the wrong kind for TrainingArguments / GRPOConfig
        raise ValueError(f"config: {error_line(err)}; check the types of the options in --config") from None
    check_numbers({k: getattr(config, k) for k in defaults}, defaults)  # values derived from them, too
    return config


def model_context(source: str, trust_remote_code: bool = False) -> int | None:
    """The model's context length in tokens, from its config (None when it says none)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    config = getattr(config, "text_config", None) or config
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_prompt_lengths(
    prompts: list[str], tokenizer: Any, context: int | None, max_completion_length: int, what: str,
    chat_template: bool = False,
) -> None:
    """ValueError naming the prompts (rows from 0) whose tokens plus `max_completion_length` exceed `context`.

    Cheap on huge prompts: a token covers at least one UTF-8 byte, so a prompt whose bytes
    fit needs no tokenizing, and one over 64 bytes a token on average is refused unread.
    """
    if context is None:
        return
    budget = context - max_completion_length
    flag = "--max-completion-length"
    if budget < 1:
        raise ValueError(f"max_completion_length: {max_completion_length} tokens fill the model's whole context of "
                         f"{context} tokens and leave none for a prompt; lower {flag}")
    if chat_template:
        overhead = len(tokenizer.apply_chat_template([{"role": "user", "content": ""}], add_generation_prompt=True,
                                                     tokenize=True, return_dict=False))
    else:
        overhead = len(tokenizer("").input_ids)
    overhead += 1  # a tokenizer's leading-space piece
    bad, count = [], 0
    for i, prompt in enumerate(prompts):
        size = len(prompt.encode("utf-8"))
        if size + overhead <= budget:
            continue
        if size > 64 * budget:
            why = f"{len(prompt)} characters"
        else:
            tokens = len(tokenizer(prompt).input_ids) + overhead - 1
            if tokens <= budget:
                continue
            why = f"{tokens} tokens"
        count += 1
        if len(bad) < 5:
            bad.append(f"row {i} ({why})")
    if count:
        more = f" and {count - len(bad)} more" if count > len(bad) else ""
        raise ValueError(f"{what}: {count} prompts are too long for the model: {', '.join(bad)}{more}; its context "
                         f"holds {context} tokens, {max_completion_length} of them for the completion ({flag}), so "
                         f"a prompt may have at most {budget}; shorten or drop those rows, or lower {flag}")


def check_batch_mix(per_batch: int, n_target_per_batch: int, general_rows: int, num_generations: int) -> None:
    """ValueError unless every generation batch holds at least one target prompt (and a general one, when any)."""
    if general_rows == 0 or 0 < n_target_per_batch < per_batch:
        return
    raise ValueError(
        f"per_device_train_batch_size: a generation batch holds {per_batch} prompt(s) (completions per batch / "
        f"--num-generations) and would get {n_target_per_batch} target prompts, but HEAL mixes target and general "
        f"prompts in every batch; raise --per-device-train-batch-size to at least {2 * num_generations} "
        "(2 x --num-generations), or pass --n-general 0 to train on the target alone"
    )


# --- Data -------------------------------------------------------------------------


def load_problems(
    source: str, split: str, prompt_column: str, answer_column: str, what: str, verifier: str | None = None
) -> Any:
    """Problems (a `datasets.Dataset`) with prompt and answer columns, from a local file/folder or a Hub id.

    With `verifier`, every reference answer must be one it can check. Each failure is
    a one-line ValueError naming `what`, the source and the fix.
    """
    ds = load_rows(source, split=split, what=what)
    for column, flag in ((prompt_column, "--prompt-column"), (answer_column, "--answer-column")):
        if column not in ds.column_names:
            raise ValueError(f"{what}: no {column!r} column in {source} (columns: {ds.column_names}); set {flag}")
    # Chat-format prompts (lists of messages) are refused with the rest: --chat-template wraps text prompts.
    check_text_column(ds, prompt_column, f"{what}: {source}", "write each prompt as one non-empty string "
                      "(--chat-template wraps it in the tokenizer's chat template), or drop those rows")
    check_text_column(ds, answer_column, f"{what}: {source}", 'write each reference answer as a non-empty string '
                      '(e.g. "42", not 42), or drop those rows')
    if verifier is not None:
        check_reference_answers(verifier, ds[answer_column], f"{what}: {source}")
    return ds


# --- Token, push -----------------------------------------------------------------


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


def name_adapter_base(folder: str | Path, base_model_id: str | None) -> bool:
    """Point a saved adapter's adapter_config.json at its base model's Hub id (what loads it anywhere).

    Returns whether `folder` holds an adapter named so; with no Hub id known it is left as PEFT wrote it.
    """
    path = Path(folder) / ADAPTER_CONFIG
    if not path.is_file() or not base_model_id:
        return False
    config = json.loads(path.read_text())
    if config.get("base_model_name_or_path") != base_model_id:
        config["base_model_name_or_path"] = base_model_id
        write_text_atomic(path, json.dumps(config, indent=2, sort_keys=True))  # PEFT's own layout
    return True


def write_card(folder: str | Path, repo_id: str | None = None) -> Path:
    """The model card of a run or checkpoint folder for `repo_id`, and its adapter named by the same base model id."""
    from ..data.run_folder import run_record
    from ..hub.cards import write_model_card

    run, _ = run_record(folder)
    name_adapter_base(folder, run["model"].get("base_model_id"))
    return write_model_card(folder, repo_id=repo_id)


def portable_record(run: dict[str, Any]) -> dict[str, Any]:
    """heal_run.json as pushed: every local path as its file or folder name, the model as its Hub id when known."""
    settings = run["settings"]
    local = {str(settings["model"]): run["model"].get("base_model_id") or Path(str(settings["model"])).name}
    for key in ("output_dir", "target", "eval", "pool"):
        value = settings.get(key)
        if isinstance(value, str) and (Path(value).exists() or Path(value).is_absolute()):
            local[value] = Path(value).name
    for path in list(local):  # the same folders written out in full
        local.setdefault(str(Path(path).resolve()), local[path])
    package = str(Path(__file__).resolve().parents[1])

    def portable(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: portable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [portable(v) for v in value]
        if not isinstance(value, str):
            return value
        if value in local:
            return local[value]
        for path in sorted(local, key=len, reverse=True):
            if len(path) > 1 and path in value and Path(path).is_absolute():
                value = value.replace(path, local[path])
        if package in value:
            value = value.replace(package, "heal_hf")
        return Path(value).name if Path(value).is_absolute() else value

    return portable(run)


def stage_push(output_dir: str | Path, repo_id: str, folder: str | Path) -> Path:
    """Write into `folder` exactly what `push_run` uploads to `repo_id`: the run's files but checkpoints, its card
    for `repo_id` (rewritten in the run folder too, with adapter_config.json naming the base model's Hub id), and a
    heal_run.json without this machine's paths (`portable_record`)."""
    import shutil

    from ..data.run_folder import RUN_FILE, run_record

    run, _ = run_record(output_dir)
    if run["model"].get("adapter") and not run["model"].get("base_model_id"):
        raise ValueError(f"push_to_hub: the adapter's base model is the local folder {Path(run['settings']['model']).name!r}, "
                         "which has no Hub id; pass --base-model-id with its Hub id")
    write_card(output_dir, repo_id=repo_id)
    folder = Path(folder)
    for name in files_to_push(output_dir):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if name != RUN_FILE:
            shutil.copy2(Path(output_dir) / name, folder / name)
    write_json_atomic(folder / RUN_FILE, portable_record(run))
    return folder


def push_run(output_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Stage the run for `repo_id` (`stage_push`), then create the repo and upload that folder. Returns the commit URL."""
    import tempfile

    from huggingface_hub import HfApi

    token = token or hub_token()
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="heal-hf-push-") as staged:
        stage_push(output_dir, repo_id, staged)
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=staged,
                                 commit_message="Upload HEAL few-shot RLVR run (heal-hf)")
    return info.commit_url


# --- The pipeline -----------------------------------------------------------------


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

    from ..hub.cards import plot_entropy_curves, write_model_card

    state = PartialState()
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - _config_fields())
    if unknown:
        raise ValueError(f"overrides: unknown HEALConfig fields {unknown}")
    push_token = take_secrets(dataclasses.asdict(settings), overrides)  # never stored, logged or pushed
    check_settings(settings)
    output_dir = Path(settings.output_dir)
    get_verifier(settings.verifier)
    # Training arguments before the folder is claimed: a refused setting leaves it as it was.
    # The mixed set names its columns prompt / answer / domain whatever the target's were.
    config = training_config(settings, overrides)
    fingerprint = {k: v for k, v in dataclasses.asdict(settings).items() if k not in _RUN_FLAGS}
    fingerprint.update({f"config.{k}": v for k, v in sorted(overrides.items())})
    previous = claim_folder(output_dir, RUN_FILE, fingerprint, settings.resume, key="fingerprint") or {}
    checkpoint = last_complete_checkpoint(output_dir) if previous else None
    if settings.push_to_hub:
        push_token = push_token or hub_token()
        from ..data.model_identity import hub_model_id

        if settings.lora and not hub_model_id(settings.model, settings.base_model_id):
            raise ValueError(f"push_to_hub: a pushed adapter names its base model by Hub id, and --model "
                             f"{Path(settings.model).name!r} has none; pass --base-model-id")
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

    if state.is_main_process:
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


def _load_data(settings: TrainSettings, config: Any) -> _RunData:
    """Target and eval problems, the tokenizer, the pool and the hybrid training set (a resumed run's own)."""
    import datasets
    from transformers import AutoTokenizer

    from ..data.model_identity import model_identity
    from ..data.pool import load_pool, tokenizer_fingerprint
    from ..data.processors import HybridSelection
    from ..data.rollout import check_model_files
    from ..trl import DomainMixSampler
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
    per_batch = config.generation_batch_size // config.num_generations
    sampler = DomainMixSampler(mixed["domain"], config.num_generations, per_batch, target_fraction=config.target_fraction)
    check_batch_mix(per_batch, sampler.n_target, len(sampler.general_rows), config.num_generations)
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

    from ..data.rollout import check_causal_lm

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
    from ..data.pool import DOMAIN_GENERAL, POOL_REPO_ID, split_pool_source, tokenizer_fingerprint

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
        model=model, reward_funcs=[verifier_reward(settings.verifier)], args=config, train_dataset=data.train_set,
        processing_class=data.tokenizer, pool=data.pool, peft_config=peft_config, callbacks=callbacks,
    )


def _evaluate(model: Any, data: _RunData, settings: TrainSettings, config: Any) -> dict:
    from .evaluation import evaluate_target

    return evaluate_target(
        model, data.tokenizer, data.eval_set[settings.prompt_column],
        [str(a) for a in data.eval_set[settings.answer_column]], settings.verifier, settings.eval_samples,
        config.max_completion_length, config.temperature, chat_template=settings.chat_template, seed=config.seed,
    )


def _versions() -> dict[str, str]:
    import datasets
    import peft
    import transformers
    import trl

    return {"heal_hf": __version__, "trl": trl.__version__, "transformers": transformers.__version__,
            "torch": torch.__version__, "peft": peft.__version__, "datasets": datasets.__version__}
