"""The general-entropy pool: schema, rows from rollouts, loading, and the EDA reference.

One row per general-domain prompt, holding what selection and EDA need so neither
has to run a model: the k sampled responses' per-token entropies, their profiles,
the verifier's outcomes, the selection criteria and how it was all sampled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np
import torch

from .eda import EDAReference
from .profiles import FORKING_QUANTILE, EntropyProfile
from .selection import CRITERIA, HybridSelector, response_criteria

SCHEMA_VERSION = "1"
POOL_REPO_ID = "heal/general-entropy-pool"

_f32 = datasets.Value("float32")
POOL_FEATURES = datasets.Features(
    {
        "prompt": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "source": datasets.Value("string"),
        "responses": datasets.Sequence(datasets.Value("string")),
        "token_entropies": datasets.Sequence(datasets.Sequence(_f32)),
        "entropy_curves": datasets.Sequence(datasets.Sequence(_f32)),
        "magnitude": datasets.Sequence(_f32),
        "total_variation": datasets.Sequence(_f32),
        "volatility": datasets.Sequence(_f32),
        "lengths": datasets.Sequence(datasets.Value("int32")),
        "passed": datasets.Sequence(_f32),
        "pass_rate": _f32,
        "mean_entropy": _f32,
        "outcome_uncertainty": _f32,
        "curve_diversity": _f32,
        "lexical_diversity": _f32,
        "uncertainty_score": _f32,
        "diversity_score": _f32,
        "features": datasets.Sequence(_f32),
        "model_id": datasets.Value("string"),
        "tokenizer_hash": datasets.Value("string"),
        "bins": datasets.Value("int32"),
        "sampling": {
            "num_samples": datasets.Value("int32"),
            "max_new_tokens": datasets.Value("int32"),
            "temperature": _f32,
            "top_p": _f32,
            "top_k": datasets.Value("int32"),
            "seed": datasets.Value("int64"),
        },
        "schema_version": datasets.Value("string"),
    }
)
"""Pool row schema, version SCHEMA_VERSION. Entropies in nats; curves have `bins` entries."""


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short stable hash of a tokenizer's vocabulary and special tokens.

    Pools record it so that a pool sampled with one tokenizer is not mistaken for
    another model's reference.
    """
    vocab = sorted(tokenizer.get_vocab().items())
    special = sorted((k, str(v)) for k, v in tokenizer.special_tokens_map.items())
    payload = json.dumps({"vocab": vocab, "special": special}, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def pool_rows(
    prompts: Sequence[str],
    answers: Sequence[str],
    sources: Sequence[str],
    responses: Sequence[Sequence[str]],
    entropies: Sequence[Sequence[Sequence[float]]],
    passed: Sequence[Sequence[float]],
    model_id: str,
    tokenizer_hash: str,
    sampling: dict[str, Any],
    bins: int = 32,
) -> list[dict[str, Any]]:
    """Pool rows (dicts matching POOL_FEATURES) for P prompts and their k responses.

    `uncertainty_score` and `diversity_score` are left NaN: they are ranks within
    the whole pool, filled by `with_pool_scores` once all rows exist.
    """
    if not (len(prompts) == len(answers) == len(sources) == len(responses) == len(entropies) == len(passed)):
        raise ValueError(
            "prompts, answers, sources, responses, entropies, passed: expected one entry per prompt, got lengths "
            f"{[len(x) for x in (prompts, answers, sources, responses, entropies, passed)]}"
        )
    keys = ("num_samples", "max_new_tokens", "temperature", "top_p", "top_k", "seed")
    missing = [k for k in keys if k not in sampling]
    if missing:
        raise ValueError(f"sampling: missing settings {missing}")
    rows = []
    for prompt, answer, source, texts, ents, ok in zip(prompts, answers, sources, responses, entropies, passed):
        profile = EntropyProfile.from_entropies([list(e) for e in ents], bins=bins, forking_threshold=0.0)
        crit = response_criteria([list(e) for e in ents], texts, ok, bins=bins)
        rows.append(
            {
                "prompt": prompt,
                "answer": str(answer),
                "source": source,
                "responses": list(texts),
                "token_entropies": [list(map(float, e)) for e in ents],
                "entropy_curves": profile.curve.tolist(),
                "magnitude": profile.magnitude.tolist(),
                "total_variation": profile.total_variation.tolist(),
                "volatility": profile.volatility.tolist(),
                "lengths": profile.lengths.tolist(),
                "passed": [float(x) for x in ok],
                "pass_rate": crit["pass_rate"],
                **{c: crit[c] for c in CRITERIA},
                "uncertainty_score": float("nan"),
                "diversity_score": float("nan"),
                "features": crit["features"],
                "model_id": model_id,
                "tokenizer_hash": tokenizer_hash,
                "bins": bins,
                "sampling": {k: sampling[k] for k in keys},
                "schema_version": SCHEMA_VERSION,
            }
        )
    return rows


def with_pool_scores(pool: datasets.Dataset, seed: int = 0) -> datasets.Dataset:
    """Fill `uncertainty_score` / `diversity_score`: the criteria's ranks within this pool."""
    _, uncertainty, diversity = HybridSelector(1, seed=seed).score({c: np.asarray(pool[c]) for c in CRITERIA})
    pool = pool.remove_columns(["uncertainty_score", "diversity_score"])
    pool = pool.add_column("uncertainty_score", uncertainty.astype(np.float32).tolist())
    pool = pool.add_column("diversity_score", diversity.astype(np.float32).tolist())
    return pool.cast(POOL_FEATURES)


def validate_pool(
    pool: datasets.Dataset, bins: int | None = None, tokenizer_hash: str | None = None
) -> datasets.Dataset:
    """Check a loaded pool's schema version, columns, bins and (optionally) tokenizer.

    Raises ValueError naming what differs and what to do about it.
    """
    missing = [c for c in POOL_FEATURES if c not in pool.column_names]
    if missing:
        raise ValueError(
            f"pool: missing columns {missing}; expected a heal-hf general-entropy pool (schema v{SCHEMA_VERSION}). "
            "Build one with `heal-hf build-pool`"
        )
    if len(pool) == 0:
        raise ValueError("pool: it has no rows; build it with `heal-hf build-pool`")
    versions = set(pool.unique("schema_version"))
    if versions != {SCHEMA_VERSION}:
        raise ValueError(
            f"pool: schema version {sorted(versions)} but this heal-hf reads v{SCHEMA_VERSION}; "
            "rebuild the pool with this version's `heal-hf build-pool` or install the matching heal-hf"
        )
    pool_bins = set(pool.unique("bins"))
    if len(pool_bins) != 1:
        raise ValueError(f"pool: rows were profiled with different bins {sorted(pool_bins)}; rebuild it with one K")
    if bins is not None and pool_bins != {bins}:
        raise ValueError(
            f"pool: profiled with bins={pool_bins.pop()} but bins={bins} was asked for; "
            "use the pool's bins or rebuild the pool with --bins"
        )
    if tokenizer_hash is not None:
        hashes = set(pool.unique("tokenizer_hash"))
        if hashes != {tokenizer_hash}:
            raise ValueError(
                f"pool: sampled with tokenizer {sorted(hashes)} but the model's tokenizer is {tokenizer_hash}; "
                "its entropies are not comparable: build a pool with this model (`heal-hf build-pool --model ...`)"
            )
    return pool


def bundled_pool_path() -> Path:
    """Folder of the general-entropy pool shipped with heal-hf (built from the toy reasoner)."""
    return Path(__file__).parent / "toy" / "assets" / "general-entropy-pool"


def load_pool(source: str | Path | datasets.Dataset | None = None, **validate: Any) -> datasets.Dataset:
    """Load a general-entropy pool and validate it.

    Args:
        source: None or "bundled" for the pool shipped with heal-hf; a local folder
            (a pool directory with data/*.parquet, or anything `load_dataset` reads);
            a Hub dataset id such as "heal/general-entropy-pool"; or a Dataset.
        validate: `bins` / `tokenizer_hash` to check against (see `validate_pool`).
    """
    if isinstance(source, datasets.Dataset):
        return validate_pool(source, **validate)
    if source is None or str(source) == "bundled":
        source = bundled_pool_path()
        if not (source / "data").is_dir():
            raise ValueError(
                f"pool: the bundled pool is missing at {source}; reinstall heal-hf or pass a pool folder / Hub id"
            )
    path = Path(source)
    if path.is_dir() and (path / "data").is_dir():
        files = sorted(str(p) for p in (path / "data").glob("*.parquet"))
        if not files:
            raise ValueError(f"pool: no parquet shards in {path / 'data'}; build the pool with `heal-hf build-pool`")
        ds = datasets.load_dataset("parquet", data_files=files, split="train", features=POOL_FEATURES)
    else:
        ds = datasets.load_dataset(str(source), split="train")
    return validate_pool(ds, **validate)


def pool_reference(pool: datasets.Dataset, max_tokens_for_threshold: int = 1_000_000, seed: int = 0) -> EDAReference:
    """The EDA reference R over every response in the pool.

    Uses the stored profiles (no re-profiling) and, as the forking threshold, the
    80th percentile of the stored token entropies (a seeded sample of at most
    `max_tokens_for_threshold` tokens on large pools). Equals
    `EDAReference.from_entropies` on the same responses.
    """
    validate_pool(pool)
    columns = ["entropy_curves", "magnitude", "total_variation", "volatility", "lengths", "token_entropies"]
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for batch in pool.select_columns(columns).iter(batch_size=1024):
        for c in columns[:-1]:
            parts[c].extend(np.asarray(row, dtype=np.float64) for row in batch[c])
        parts["token_entropies"].extend(np.asarray(x, dtype=np.float64) for row in batch["token_entropies"] for x in row)
    tokens = np.concatenate(parts["token_entropies"]) if parts["token_entropies"] else np.zeros(0)
    if len(tokens) > max_tokens_for_threshold:
        tokens = np.random.default_rng(seed).choice(tokens, max_tokens_for_threshold, replace=False)
    stacked = {c: torch.as_tensor(np.concatenate(parts[c])) for c in columns[1:-1]}
    profile = EntropyProfile(
        curve=torch.as_tensor(np.concatenate(parts["entropy_curves"])).float(),
        magnitude=stacked["magnitude"].float(),
        total_variation=stacked["total_variation"].float(),
        volatility=stacked["volatility"].float(),
        forking_share=torch.zeros(len(stacked["magnitude"])),  # not stored: EDA's distance does not use it
        lengths=stacked["lengths"].long(),
        forking_threshold=float(np.quantile(tokens, FORKING_QUANTILE)) if len(tokens) else 0.0,
    )
    return EDAReference.from_profiles(profile)
