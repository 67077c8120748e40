"""A pool build: its settings, its shards' seeds, and the folder `heal-hf build-pool` writes.

A build folder holds `pool_build.json` (the build's settings and shard count),
`data/train-XXXXX-of-NNNNN.parquet` shards and, once finalized, a dataset card
`README.md`. `heal_hf.app.pool_build` writes them; `heal_hf.data.pool` reads them
(and this module checks them) without running a model.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..core.verifiers import get_verifier

SCHEMA_VERSION = "1"
"""The version of the pool's row schema (`heal_hf.data.pool.POOL_FEATURES`), in every row and build manifest."""

MANIFEST_NAME = "pool_build.json"
DATA_DIR = "data"


def shard_name(index: int, num_shards: int) -> str:
    """File name of shard `index` (the Hub's `train-XXXXX-of-NNNNN.parquet` convention)."""
    return f"train-{index:05d}-of-{num_shards:05d}.parquet"


def read_build_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The `pool_build.json` of a build folder (ValueError when there is none or it is unreadable)."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"pool: {path} not found; {out_dir} is not a heal-hf pool build folder") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"pool: {path} is corrupt ({err}); restore it or rebuild into a new folder") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"pool: {out_dir} was built with schema v{manifest.get('schema_version')} but this heal-hf writes "
            f"v{SCHEMA_VERSION}; build into a new folder or install the matching heal-hf"
        )
    return manifest


def build_shard_paths(out_dir: str | Path) -> list[Path]:
    """The shard files of a build folder, in order; ValueError when some are missing."""
    out = Path(out_dir)
    num_shards = int(read_build_manifest(out)["num_shards"])
    paths = [out / DATA_DIR / shard_name(i, num_shards) for i in range(num_shards)]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise ValueError(
            f"pool: the build in {out} is incomplete ({num_shards - len(missing)}/{num_shards} shards; missing "
            f"{missing[:3]}{'...' if len(missing) > 3 else ''}); resume it by re-running the same `heal-hf build-pool`"
        )
    return paths


def shard_rows(path: Path) -> int:
    """Rows in a parquet shard; ValueError naming the file when it is damaged."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise ValueError(
            f"pool: shard {path} is corrupt or truncated ({err}); delete that file and re-run the same "
            "`heal-hf build-pool` command to rebuild it"
        ) from None


POOL_BACKENDS = ("transformers", "transformers-two-phase", "vllm")
"""How a pool's responses are generated and scored (`PoolBuildConfig.backend`):
transformers' `generate` with the entropies recorded during generation (one phase);
`generate`, then one teacher-forced forward per batch for the entropies (two phase);
vLLM, then the same teacher-forced forward with transformers (two phase)."""


@dataclass
class PoolBuildConfig:
    """How a general-entropy pool is sampled. A resumed build must use the same settings."""

    samples_per_prompt: int = field(default=8, metadata={"help": "k: responses sampled per prompt"})
    bins: int = field(default=32, metadata={"help": "K: entropy-curve bins"})
    max_new_tokens: int = field(default=128, metadata={"help": "generation cap per response (tokens)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (entropies use it too)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling; does not change the entropies"})
    top_k: int = field(default=0, metadata={"help": "top-k sampling, 0 = off; does not change the entropies"})
    seed: int = field(default=0, metadata={"help": "build seed; shard i samples with shard_seed(seed, i)"})
    verifier: str = field(default="numeric", metadata={"help": "answer check: exact | one_of | numeric | math"})
    verifier_column: str | None = field(
        default=None, metadata={"help": "a column naming each row's verifier (exact | one_of | numeric | math); overrides verifier"}
    )
    prompt_column: str = field(default="prompt", metadata={"help": "the dataset's prompt column"})
    answer_column: str = field(default="answer", metadata={"help": "the dataset's reference-answer column"})
    source_column: str | None = field(default=None, metadata={"help": "a column naming each row's source"})
    source: str | None = field(default=None, metadata={"help": "source of every row (default: the dataset id)"})
    shard_size: int = field(default=64, metadata={"help": "prompts per shard (the unit of resume and of work)"})
    batch_size: int = field(default=64, metadata={"help": "sequences per generate call and per scoring forward"})
    chat_template: bool = field(default=False, metadata={"help": "wrap prompts in the tokenizer's chat template"})
    backend: str = field(
        default="transformers",
        metadata={"help": "transformers: generate, entropies recorded while generating; transformers-two-phase: "
                  "generate, then one teacher-forced forward for the entropies; vllm: generate with vLLM, "
                  "then the same forward with transformers (pip install 'heal-hf[vllm]')"},
    )

    def validate(self) -> "PoolBuildConfig":
        """Raise ValueError on settings that cannot build a pool."""
        for name in ("samples_per_prompt", "max_new_tokens", "shard_size", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.bins, int) or self.bins < 2:
            raise ValueError(f"bins: expected an integer K >= 2, got {self.bins!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: expected a number in (0, 1], got {self.top_p!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k: expected an integer >= 0 (0 = off), got {self.top_k!r}")
        if not isinstance(self.verifier, str):  # the name is recorded in the build manifest and card
            raise ValueError(f"verifier: expected a name (exact, one_of, numeric, math), got {self.verifier!r}")
        get_verifier(self.verifier)
        if self.backend not in POOL_BACKENDS:
            raise ValueError(f"backend: expected one of {', '.join(POOL_BACKENDS)}, got {self.backend!r}")
        return self

    def sampling(self) -> dict[str, Any]:
        """The pool's `sampling` column for rows of this build."""
        return {
            "num_samples": self.samples_per_prompt,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
        }


def shard_seed(seed: int, shard: int | str) -> int:
    """Sampling seed of shard `shard` (an index or any key): a hash of (seed, shard), in [0, 2^63)."""
    digest = hashlib.sha256(f"heal-hf/pool/{seed}/{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


RESERVED_CONFIG_NAMES = ("default", "data")
"""Names a pool config may not take (the Hub's default config and the shards' folder)."""


def check_config_name(name: str) -> str:
    """`name` if it can name a pool's config in a Hub dataset (and its folder); ValueError otherwise."""
    if (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?", name)
            or ".." in name or name.lower() in RESERVED_CONFIG_NAMES):
        raise ValueError(
            f"config: {name!r} cannot name a pool config (letters, digits, '-', '_', '.', at most 64, no leading "
            f"or trailing punctuation, not {' or '.join(RESERVED_CONFIG_NAMES)}); choose another name"
        )
    return name


def config_name_for(model_id: str) -> str:
    """The config name of a model's pool: the last part of its id, other characters than [A-Za-z0-9._-] as '-'
    ("Qwen/Qwen2.5-1.5B-Instruct" -> "Qwen2.5-1.5B-Instruct")."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(model_id).rstrip("/").split("/")[-1])
    name = re.sub(r"\.{2,}", ".", name).strip("-._")[:64].rstrip("-._")
    try:
        return check_config_name(name)
    except ValueError:
        raise ValueError(f"config: cannot name a config after the model id {model_id!r}; "
                         "name the pool's config yourself (NAME=DIR)") from None


def split_pool_source(source: str) -> tuple[str, str | None]:
    """`"heal/general-entropy-pool:toy-reasoner"` -> (the dataset, the config name); anything else -> (source, None).

    An existing path is never split (a folder may have a colon in its name), nor a
    Windows drive path.
    """
    head, sep, tail = source.rpartition(":")
    if not sep or not head or not tail or "/" in tail or "\\" in tail or Path(source).exists():
        return source, None
    return head, tail
