"""What `heal-hf train` takes and checks: its settings, the HEALConfig options it has flags for,
the config file, and every check made before anything is written (numbers, secrets, text
columns, prompt lengths, the domain mix of a batch).

Importing this module is light (the CLI builds its options from it).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ..core.eda import DEFAULT_EDA_WEIGHT, REFERENCE_MODES, EDASettings
from ..core.verifiers import check_reference_answers
from ..data.files import (
    check_text_column,
    error_line,
    load_rows,
    read_text_utf8,
)
from ..data.run_folder import (
    LOG_FILE,
)
from ..toy import TOY_REASONER_PATH

DEFAULT_MODEL = str(TOY_REASONER_PATH)
"""The model `heal-hf train` uses without --model: the bundled toy reasoner (switch it here)."""
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
    verifier: str = field(default="numeric", metadata={"help": "answer checker: exact, one_of (any of `|`-separated answers), numeric or math"})
    general_verifier: str | None = field(default=None, metadata={"help": "answer checker of the general-domain rows when the target's cannot read their answers (e.g. --verifier reasoning_gym --general-verifier exact; default: --verifier for every row)"})
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
RUN_FLAGS = {"resume", "push_to_hub", "private"}  # may differ between a run and its resumption


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split flat options (a YAML config merged with the command line) into settings and HEALConfig overrides."""
    unknown = sorted(set(options) - _SETTINGS_FIELDS - config_fields())
    if unknown:
        raise ValueError(
            f"config: unknown options {unknown}; use heal-hf train options or HEALConfig / GRPOConfig field names"
        )
    return (
        {k: v for k, v in options.items() if k in _SETTINGS_FIELDS},
        {k: v for k, v in options.items() if k not in _SETTINGS_FIELDS},
    )


def config_fields() -> set[str]:
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


def check_train_settings(settings: TrainSettings) -> None:
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


