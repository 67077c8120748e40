"""Build a general-entropy pool: sharded, resumable, multi-process (what `heal-hf build-pool` runs).

Shard i of a build is a fixed chunk of `shard_size` prompts sampled with
`shard_seed(seed, i)`, so its rows do not depend on which process built it or when.
Every file is written through `heal_hf.data.files.atomic_write`: after a kill -9 a shard
either exists whole or not at all, and the next run builds exactly the missing ones.
The folder's layout is `heal_hf.data.pool_shards`, its reading `heal_hf.data.pool`, its card `heal_hf.hub.cards`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..core.selection import CRITERIA
from ..core.verifiers import check_reference_answers
from ..data.files import atomic_write, check_text_column, claim_folder, load_rows
from ..data.model_identity import model_identity
from ..data.models import check_causal_lm
from ..data.pool import POOL_FEATURES, POOL_REPO_ID, pool_scores, sample_pool_rows, tokenizer_fingerprint, validate_pool
from ..data.pool_shards import (
    DATA_DIR,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    PoolBuildConfig,
    build_shard_paths,
    read_build_manifest,
    shard_name,
    shard_rows,
    shard_seed,
)
from ..data.rollout import check_vllm, load_vllm
from ..hub.cards import write_pool_card

_IDENTITY_EXEMPT = ("heal_hf_version", "command")  # manifest keys a resumed build may differ in


def build_pool(
    model: Any,
    tokenizer: Any,
    dataset: datasets.Dataset,
    out_dir: str | Path,
    config: PoolBuildConfig | None = None,
    model_id: str | None = None,
    dataset_id: str | None = None,
    process_index: int = 0,
    num_processes: int = 1,
    progress: bool = True,
    finalize: bool = True,
    repo_id: str = POOL_REPO_ID,
    license: str | None = None,
    command: str | None = None,
    poll_seconds: float = 2.0,
    llm: Any = None,
) -> Path:
    """Build (or resume) a general-entropy pool in `out_dir` and return the folder.

    Samples `config.samples_per_prompt` responses per prompt of `dataset` with `model`, records their
    token entropies, verifies them against the answer column and writes pool rows (POOL_FEATURES) as
    parquet shards under `out_dir/data/`. `config.backend` chooses how (POOL_BACKENDS): entropies
    recorded during `generate`, or generation first (transformers or vLLM) and then one batched
    teacher-forced forward of `model` for the entropies. Shards already there are kept, so re-running
    after an interruption (even kill -9) builds only what is missing.

    With several processes (e.g. under `accelerate launch`), process `process_index`
    of `num_processes` builds shards i with i % num_processes == process_index; the
    rows equal those of a one-process build. Process 0 then waits for the other
    shards and, with `finalize`, fills the pool scores and writes the dataset card
    (`finalize_pool`).

    Args:
        model, tokenizer: a causal LM and its tokenizer.
        dataset: rows with `config.prompt_column` and `config.answer_column`.
        out_dir: a new or empty folder, or a previous build of the same pool.
        model_id: recorded in every row (default: the model's Hub id, else its folder's name; see
            `heal_hf.data.model_identity.model_identity`, whose fingerprint the manifest records).
        dataset_id: recorded in the card, and the default `source` of every row.
        repo_id, license: the dataset card's repo id and license (see `write_pool_card`).
        command: how to rebuild the pool, shown on the card (default: the equivalent
            `heal-hf build-pool` command).
        llm: backend "vllm" only: a `vllm.LLM` of the same checkpoint (default: one
            loaded from `model.name_or_path` once there are shards to build, `load_vllm`).
    """
    config = (config or PoolBuildConfig()).validate()
    if config.backend == "vllm" and llm is None:
        check_vllm()
    check_causal_lm(model)
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process_index: expected 0 <= {process_index} < num_processes = {num_processes}")
    dataset_id = dataset_id or dataset.info.dataset_name or "dataset"
    identity = model_identity(model)
    model_id = model_id or identity.name
    problems = _problems(dataset, config, dataset_id)
    num_shards = -(-len(problems.prompts) // config.shard_size)
    tokenizer_hash = tokenizer_fingerprint(tokenizer)
    out = Path(out_dir)
    _ = (out / MANIFEST_NAME).exists() and read_build_manifest(out)  # another schema version, said as such
    manifest = _manifest(model_id, identity.fingerprint, tokenizer_hash, dataset_id, problems, config, num_shards, command)
    claim_folder(out, MANIFEST_NAME, manifest, ignore=_IDENTITY_EXEMPT, what="out")
    (out / DATA_DIR).mkdir(exist_ok=True)
    mine = [i for i in range(num_shards) if i % num_processes == process_index]
    todo = [i for i in mine if not _shard_done(out / DATA_DIR / shard_name(i, num_shards), problems.shard(i, config))]
    if todo and config.backend == "vllm" and llm is None:
        llm = load_vllm(str(model.name_or_path), dtype=_dtype_name(model), distributed=num_processes > 1)
    total = sum(len(problems.shard(i, config)) for i in mine)
    with tqdm(total=total, initial=total - sum(len(problems.shard(i, config)) for i in todo), unit="prompt",
              desc=f"build-pool [{process_index + 1}/{num_processes}]", position=process_index,
              disable=not progress, smoothing=0.1, dynamic_ncols=True) as bar:
        for i in todo:
            rows = sample_pool_rows(model, tokenizer, config=config, seed=shard_seed(config.seed, i), model_id=model_id,
                                    tokenizer_hash=tokenizer_hash, progress=bar.update, llm=llm,
                                    **problems.part(problems.shard(i, config)))
            _write_shard(out / DATA_DIR / shard_name(i, num_shards), rows)
    if process_index != 0 or not finalize:
        return out
    _wait_for_shards(out / DATA_DIR, num_shards, poll_seconds, progress)
    return finalize_pool(out, repo_id=repo_id, license=license)


class _Problems(NamedTuple):
    """A pool's dataset as the build reads it: prompts, answers, sources, and each row's verifier (None: one for all)."""

    prompts: list[str]
    answers: list[str]
    sources: list[str]
    verifiers: list[str] | None

    def shard(self, index: int, config: PoolBuildConfig) -> range:
        """The rows of shard `index`: a fixed chunk of `config.shard_size`, whoever builds it."""
        return range(index * config.shard_size, min(len(self.prompts), (index + 1) * config.shard_size))

    def part(self, rows: range) -> dict[str, list[str] | None]:
        """The prompts, answers, sources and verifiers of `rows`, as `sample_pool_rows` takes them."""
        part = slice(rows.start, rows.stop)
        return {"prompts": self.prompts[part], "answers": self.answers[part], "sources": self.sources[part],
                "verifiers": self.verifiers[part] if self.verifiers else None}

    def fingerprint(self) -> str:
        """A short hash of every row: a resumed build must read the same dataset."""
        digest = hashlib.sha256()
        for row in zip(self.prompts, self.answers, self.sources, self.verifiers or [None] * len(self.prompts)):
            digest.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        return digest.hexdigest()[:16]


def _problems(dataset: datasets.Dataset, config: PoolBuildConfig, dataset_id: str) -> _Problems:
    """The problems of a pool's dataset; ValueError, before the folder is touched, on a missing column, no rows,
    or a reference answer its verifier cannot check."""
    for role, column in (("prompt_column", config.prompt_column), ("answer_column", config.answer_column),
                         ("source_column", config.source_column), ("verifier_column", config.verifier_column)):
        if column is not None and column not in dataset.column_names:
            raise ValueError(
                f"dataset: no {column!r} column (columns: {dataset.column_names}); "
                f"set {role} (--{role.replace('_', '-')}) to the column that holds it"
            )
    if len(dataset) == 0:
        raise ValueError("dataset: it has no rows; expected at least one prompt")
    # Chat-format prompts (lists of messages) are refused with the rest: a pool's prompts are plain text.
    check_text_column(dataset, config.prompt_column, f"dataset {dataset_id}", "write each prompt as one non-empty "
                      "string (or point --prompt-column at a text column), or drop those rows")
    check_text_column(dataset, config.answer_column, f"dataset {dataset_id}", "write each reference answer as a "
                      'non-empty string (e.g. "42", not 42), or drop those rows')
    prompts = [str(p) for p in dataset[config.prompt_column]]
    answers = [str(a) for a in dataset[config.answer_column]]
    if config.source_column:
        sources = [str(s) for s in dataset[config.source_column]]
    else:
        sources = [config.source or dataset_id] * len(prompts)
    verifiers = [str(v) for v in dataset[config.verifier_column]] if config.verifier_column else None
    names = verifiers or [config.verifier] * len(answers)
    for name in set(names):
        check_reference_answers(name, [a for a, n in zip(answers, names) if n == name], f"dataset {dataset_id}")
    return _Problems(prompts, answers, sources, verifiers)


def _manifest(
    model_id: str, model_fingerprint: str | None, tokenizer_hash: str, dataset_id: str, problems: _Problems,
    config: PoolBuildConfig, num_shards: int, command: str | None,
) -> dict[str, Any]:
    """The build's `pool_build.json`: what the pool is sampled from and how (a resumed build must match it).

    `model_fingerprint`: the sampling model's config and weights (`heal_hf.data.model_identity`; None for a
    model with no files), what `load_pool(..., model=...)` checks the pool's users against."""
    return {
        "schema_version": SCHEMA_VERSION,
        "heal_hf_version": __version__,
        "model_id": model_id,
        "model_fingerprint": model_fingerprint,
        "tokenizer_hash": tokenizer_hash,
        "dataset": {"id": dataset_id, "num_prompts": len(problems.prompts), "fingerprint": problems.fingerprint()},
        "config": asdict(config),
        "num_shards": num_shards,
        "command": command,
    }


def _shard_done(path: Path, rows: range) -> bool:
    """Whether shard `path` is built, with the rows this build expects; removes what a killed run left of it."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink()
    if not path.exists():
        return False
    found, expected_rows = shard_rows(path), len(rows)
    if found != expected_rows:
        raise ValueError(
            f"pool: shard {path} has {found} rows but this build expects {expected_rows}; delete that file "
            "and re-run the same `heal-hf build-pool` command to rebuild it"
        )
    return True


def _dtype_name(model: Any) -> str:
    """The dtype of `model`'s weights by name ("float32"): vLLM generates in the scorer's dtype."""
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def _write_shard(path: Path, rows: list[dict[str, Any]]) -> None:
    # pyarrow straight from the rows (datasets' from_list made the same table, 3x slower)
    table = pa.Table.from_pylist(rows, schema=POOL_FEATURES.arrow_schema)
    with atomic_write(path) as tmp:
        pq.write_table(table, tmp)


def _wait_for_shards(data: Path, num_shards: int, poll_seconds: float, progress: bool) -> None:
    """Return once every shard is in `data` (the other processes of the build write theirs)."""
    waiting = False
    while missing := [i for i in range(num_shards) if not (data / shard_name(i, num_shards)).exists()]:
        if not waiting and progress:
            print(f"build-pool: waiting for {len(missing)} shards from the other processes", file=sys.stderr)
        waiting = True
        time.sleep(poll_seconds)


def finalize_pool(out_dir: str | Path, repo_id: str = POOL_REPO_ID, license: str | None = None) -> Path:
    """Fill `uncertainty_score` / `diversity_score` (ranks over the whole pool) and write the card.

    Idempotent: the scores depend only on the criteria columns, so a finalize cut
    short can simply run again.
    """
    out = Path(out_dir)
    manifest = read_build_manifest(out)
    paths = build_shard_paths(out)
    criteria = [_read_shard(p, CRITERIA) for p in paths]
    uncertainty, diversity = pool_scores(
        {c: np.concatenate([t.column(c).to_numpy() for t in criteria]) for c in CRITERIA},
        seed=int(manifest["config"]["seed"]),
    )
    start = 0
    tables = []
    for path, part in zip(paths, criteria):
        stop = start + part.num_rows
        table = _read_shard(path)
        scores = {"uncertainty_score": uncertainty[start:stop], "diversity_score": diversity[start:stop]}
        if not all(np.array_equal(table.column(c).to_numpy(), v) for c, v in scores.items()):
            for c, v in scores.items():
                table = table.set_column(table.schema.get_field_index(c), c, pa.array(v, pa.float32()))
            with atomic_write(path) as tmp:
                pq.write_table(table, tmp)
        tables.append(table)
        start = stop
    # The card's statistics from the tables just written (no second read through load_dataset).
    pool = validate_pool(datasets.Dataset(pa.concat_tables(tables)).cast(POOL_FEATURES))
    write_pool_card(out, repo_id=repo_id, license=license, pool=pool)
    return out


def _read_shard(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=list(columns) if columns else None)
    except Exception as err:
        raise ValueError(
            f"pool: shard {path} is corrupt ({err}); delete that file and re-run the same "
            "`heal-hf build-pool` command to rebuild it"
        ) from None


def process_layout() -> tuple[int, int, str]:
    """(process index, process count, device) of this process under `accelerate launch` (0, 1, ... alone).

    On machines without CUDA each process runs on the CPU (accelerate's multi-CPU mode).
    """
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    device = str(state.device) if state.device.type != "cpu" else "cpu"
    return state.process_index, state.num_processes, device


def load_prompt_dataset(source: str | Path, split: str = "train", config_name: str | None = None) -> datasets.Dataset:
    """A dataset of prompts: a local .json/.jsonl/.csv/.parquet file, a local folder, or a Hub id.

    Every failure (missing, empty or malformed file, unknown Hub id) is a one-line ValueError.
    """
    return load_rows(source, split=split, what="dataset", config_name=config_name)
