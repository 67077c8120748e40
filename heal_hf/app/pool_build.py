"""Build a general-entropy pool: sharded, resumable, multi-process (what `heal-hf build-pool` runs).

Shard i of a build is a fixed chunk of `shard_size` prompts sampled with
`shard_seed(seed, i)`, so its rows do not depend on which process built it or when.
Every file is written through `heal_hf.data.files.atomic_write`: after a kill -9 a shard
either exists whole or not at all, and the next run builds exactly the missing ones.
The folder's layout and its reading live in `heal_hf.data.pool`; its card in `heal_hf.hub.cards`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..core.selection import CRITERIA
from ..core.verifiers import check_reference_answers
from ..data.files import atomic_write, load_rows, write_json_atomic
from ..data.pool import (
    DATA_DIR,
    MANIFEST_NAME,
    POOL_FEATURES,
    POOL_REPO_ID,
    SCHEMA_VERSION,
    PoolBuildConfig,
    build_shard_paths,
    pool_scores,
    read_build_manifest,
    sample_pool_rows,
    shard_name,
    shard_rows,
    shard_seed,
    tokenizer_fingerprint,
    validate_pool,
)
from ..data.rollout import check_causal_lm, check_vllm, load_vllm
from ..hub.cards import write_pool_card

_IDENTITY_EXEMPT = ("heal_hf_version", "command")  # manifest keys a resumed build may differ in


def _dataset_fingerprint(
    prompts: Sequence[str], answers: Sequence[str], sources: Sequence[str], verifiers: Sequence[str] | None
) -> str:
    digest = hashlib.sha256()
    for row in zip(prompts, answers, sources, verifiers or [None] * len(prompts)):
        digest.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()[:16]


def _claim_out_dir(out: Path, manifest: dict[str, Any]) -> None:
    """Start a build in `out` or check that it continues the one already there."""
    existing = out / MANIFEST_NAME
    if existing.exists():
        previous = read_build_manifest(out)
        previous.get("config", {}).setdefault("backend", "transformers")  # builds from before --backend
        differ = sorted(
            k for k in set(previous) | set(manifest) if k not in _IDENTITY_EXEMPT and previous.get(k) != manifest.get(k)
        )
        if differ:
            details = "; ".join(f"{k}: {previous.get(k)!r} there, {manifest.get(k)!r} now" for k in differ)
            raise ValueError(
                f"out: {out} holds a pool built with other settings ({details}); "
                "resume with the same settings or build into a new folder"
            )
        return
    ours = (f".{MANIFEST_NAME}.",)  # another process of this build may be writing the manifest right now
    if out.exists() and any(not p.name.startswith(ours) for p in out.iterdir()):
        raise ValueError(
            f"out: {out} is not empty and holds no {MANIFEST_NAME}; pass a new or empty folder "
            "(nothing in it was changed)"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(existing, manifest)


def _check_shard(path: Path, expected_rows: int) -> None:
    rows = shard_rows(path)
    if rows != expected_rows:
        raise ValueError(
            f"pool: shard {path} has {rows} rows but this build expects {expected_rows}; delete that file "
            "and re-run the same `heal-hf build-pool` command to rebuild it"
        )


def _read_shard(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=list(columns) if columns else None)
    except Exception as err:
        raise ValueError(
            f"pool: shard {path} is corrupt ({err}); delete that file and re-run the same "
            "`heal-hf build-pool` command to rebuild it"
        ) from None


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

    Samples `config.samples_per_prompt` responses per prompt of `dataset` with
    `model`, records their token entropies, verifies them against the answer column
    and writes pool rows (POOL_FEATURES) as parquet shards under `out_dir/data/`.
    `config.backend` chooses how (POOL_BACKENDS): entropies recorded during
    `generate`, or generation first (transformers or vLLM) and then one batched
    teacher-forced forward of `model` for the entropies.
    Shards already there are kept, so re-running after an interruption (even kill -9)
    builds only what is missing.

    With several processes (e.g. under `accelerate launch`), process `process_index`
    of `num_processes` builds shards i with i % num_processes == process_index; the
    rows equal those of a one-process build. Process 0 then waits for the other
    shards and, with `finalize`, fills the pool scores and writes the dataset card
    (`finalize_pool`).

    Args:
        model, tokenizer: a causal LM and its tokenizer.
        dataset: rows with `config.prompt_column` and `config.answer_column`.
        out_dir: a new or empty folder, or a previous build of the same pool.
        model_id: recorded in every row (default: `model.name_or_path`).
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
    for role, column in (("prompt_column", config.prompt_column), ("answer_column", config.answer_column),
                         ("source_column", config.source_column), ("verifier_column", config.verifier_column)):
        if column is not None and column not in dataset.column_names:
            raise ValueError(
                f"dataset: no {column!r} column (columns: {dataset.column_names}); "
                f"set {role} (--{role.replace('_', '-')}) to the column that holds it"
            )
    if len(dataset) == 0:
        raise ValueError("dataset: it has no rows; expected at least one prompt")
    dataset_id = dataset_id or dataset.info.dataset_name or "dataset"
    model_id = model_id or getattr(model, "name_or_path", "") or type(model).__name__
    prompts = [str(p) for p in dataset[config.prompt_column]]
    answers = [str(a) for a in dataset[config.answer_column]]
    if config.source_column:
        sources = [str(s) for s in dataset[config.source_column]]
    else:
        sources = [config.source or dataset_id] * len(prompts)
    verifiers = [str(v) for v in dataset[config.verifier_column]] if config.verifier_column else None
    names = verifiers or [config.verifier] * len(answers)
    for name in set(names):  # bad reference answers: an error before the folder is touched
        check_reference_answers(name, [a for a, n in zip(answers, names) if n == name], f"dataset {dataset_id}")
    num_shards = -(-len(prompts) // config.shard_size)
    tokenizer_hash = tokenizer_fingerprint(tokenizer)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "heal_hf_version": __version__,
        "model_id": model_id,
        "tokenizer_hash": tokenizer_hash,
        "dataset": {"id": dataset_id, "num_prompts": len(prompts),
                    "fingerprint": _dataset_fingerprint(prompts, answers, sources, verifiers)},
        "config": asdict(config),
        "num_shards": num_shards,
        "command": command,
    }
    out = Path(out_dir)
    _claim_out_dir(out, manifest)
    data = out / DATA_DIR
    data.mkdir(exist_ok=True)

    def rows_of(i: int) -> range:
        return range(i * config.shard_size, min(len(prompts), (i + 1) * config.shard_size))

    mine = [i for i in range(num_shards) if i % num_processes == process_index]
    todo = []
    for i in mine:
        path = data / shard_name(i, num_shards)
        for stale in data.glob(f".{path.name}.*.tmp"):  # left by a killed run of this shard
            stale.unlink()
        if path.exists():
            _check_shard(path, len(rows_of(i)))
        else:
            todo.append(i)
    if todo and config.backend == "vllm" and llm is None:
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")  # vLLM generates in the scorer's dtype
        llm = load_vllm(str(model.name_or_path), dtype=dtype, distributed=num_processes > 1)
    total = sum(len(rows_of(i)) for i in mine)
    bar = tqdm(total=total, initial=total - sum(len(rows_of(i)) for i in todo), unit="prompt",
               desc=f"build-pool [{process_index + 1}/{num_processes}]", position=process_index,
               disable=not progress, smoothing=0.1, dynamic_ncols=True)
    try:
        for i in todo:
            span = rows_of(i)
            rows = sample_pool_rows(
                model, tokenizer, prompts[span.start : span.stop], answers[span.start : span.stop],
                sources[span.start : span.stop], config, shard_seed(config.seed, i), model_id, tokenizer_hash,
                progress=bar.update, verifiers=verifiers[span.start : span.stop] if verifiers else None, llm=llm,
            )
            # pyarrow straight from the rows (datasets' from_list made the same table, 3x slower)
            table = pa.Table.from_pylist(rows, schema=POOL_FEATURES.arrow_schema)
            with atomic_write(data / shard_name(i, num_shards)) as tmp:
                pq.write_table(table, tmp)
    finally:
        bar.close()
    if process_index != 0 or not finalize:
        return out
    waiting = False
    while missing := [i for i in range(num_shards) if not (data / shard_name(i, num_shards)).exists()]:
        if not waiting and progress:
            print(f"build-pool: waiting for {len(missing)} shards from the other processes", file=sys.stderr)
        waiting = True
        time.sleep(poll_seconds)
    return finalize_pool(out, repo_id=repo_id, license=license)


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
