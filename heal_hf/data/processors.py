"""`datasets` processors for HEAL, with a small registry.

A processor is a callable used with `datasets`: either a batch function for
`Dataset.map(fn, batched=True)` or, for whole-set steps such as hybrid selection,
a callable taking and returning a `Dataset`. `get_processor(name, **kwargs)` builds
one by its registry name (see PROCESSORS).

    profiled = prompts.map(EntropyProfiler(model, tokenizer), batched=True, batch_size=32)
    pool = with_pool_scores(profiled)             # heal_hf.data.pool: ranks over the whole set
    mixed = HybridSelection(pool)(target)         # the few-shot set + general picks, `domain` column

`UncertaintyScoring` and `DiversityScoring` compute the selection criteria from
entropies a dataset already holds (e.g. logged rollouts), without a model.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Sequence

import datasets
import numpy as np

from ..core.profiles import DEFAULT_BINS
from ..core.selection import (
    CRITERIA,
    DIVERSITY_CRITERIA,
    UNCERTAINTY_CRITERIA,
    HybridSelector,
    response_criteria,
)
from .models import check_causal_lm
from .pool import DOMAIN_GENERAL, DOMAIN_TARGET, POOL_FEATURES, sample_pool_rows, validate_pool
from .pool_shards import PoolBuildConfig, shard_seed

MIXED_FEATURES = datasets.Features(
    {
        "prompt": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "domain": datasets.Value("string"),
        "source": datasets.Value("string"),
        "selection_score": datasets.Value("float32"),
    }
)
"""Columns of a hybrid training set; `selection_score` is NaN for target rows."""


class HybridSelection:
    """Select general-domain problems from a pool and mix them into a target set.

    `HybridSelection(pool, n_general=None)(target)` returns the mixed `Dataset`
    (MIXED_FEATURES): the target rows, then the picks in pick order, with a
    `domain` column ("target" | "general").

    Args:
        pool: a general-entropy pool `Dataset` (see `heal_hf.data.pool.load_pool`).
        n_general: how many general problems; default 3 x the target set's size,
            capped at the pool's size.
        prompt_column, answer_column: the target set's column names.
        target_source: the `source` written on target rows.
        redundancy, bandwidth, weights, seed: passed to `HybridSelector`.
    """

    def __init__(
        self,
        pool: datasets.Dataset,
        n_general: int | None = None,
        prompt_column: str = "prompt",
        answer_column: str = "answer",
        target_source: str = "target",
        redundancy: float = 0.5,
        bandwidth: float = 0.25,
        weights: dict[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        self.pool = validate_pool(pool)
        self.n_general = n_general
        self.prompt_column, self.answer_column = prompt_column, answer_column
        self.target_source = target_source
        self.selector_kwargs = dict(redundancy=redundancy, bandwidth=bandwidth, weights=weights, seed=seed)

    def __call__(self, target: datasets.Dataset) -> datasets.Dataset:
        for column in (self.prompt_column, self.answer_column):
            if column not in target.column_names:
                raise ValueError(
                    f"target: no {column!r} column (columns: {target.column_names}); "
                    "set prompt_column / answer_column to your dataset's names"
                )
        if len(target) == 0:
            raise ValueError("target: the target set is empty; expected at least one example")
        n = self.n_general if self.n_general is not None else min(3 * len(target), len(self.pool))
        target_rows = {
            "prompt": [str(p) for p in target[self.prompt_column]],
            "answer": [str(a) for a in target[self.answer_column]],
            "domain": [DOMAIN_TARGET] * len(target),
            "source": [self.target_source] * len(target),
            "selection_score": [float("nan")] * len(target),
        }
        if n == 0:
            return datasets.Dataset.from_dict(target_rows, features=MIXED_FEATURES)
        picks = self.select(n)
        general = self.pool.select(picks.indices.tolist())
        mixed = {
            "prompt": target_rows["prompt"] + list(general["prompt"]),
            "answer": target_rows["answer"] + list(general["answer"]),
            "domain": target_rows["domain"] + [DOMAIN_GENERAL] * n,
            "source": target_rows["source"] + list(general["source"]),
            "selection_score": target_rows["selection_score"] + picks.scores[picks.indices].tolist(),
        }
        return datasets.Dataset.from_dict(mixed, features=MIXED_FEATURES)

    def select(self, n: int):
        """The `heal_hf.core.selection.Selection` of n pool rows."""
        criteria = {c: np.asarray(list(self.pool[c]), dtype=np.float64) for c in CRITERIA}
        features = np.asarray(list(self.pool["features"]), dtype=np.float32)
        return HybridSelector(n, **self.selector_kwargs).select(criteria, features)


class EntropyProfiler:
    """Sample a model on each prompt and add the general-entropy pool's columns.

    A batch function for `Dataset.map(profiler, batched=True)`: per prompt it samples
    `samples_per_prompt` responses, records their token entropies, checks them with
    the verifier against the answer column and adds every POOL_FEATURES column
    (`prompt` / `answer` copied from the configured columns; `uncertainty_score` /
    `diversity_score` NaN until `heal_hf.data.pool.with_pool_scores` ranks the whole set).
    The other columns of the dataset are kept.

    A batch is sampled with a seed derived from `seed` and its prompts, so the same
    data, batch size and settings give the same rows.

    Args:
        model, tokenizer: a causal LM (transformers) and its tokenizer.
        model_id: recorded in the rows (default: `model.name_or_path`).
        settings: any `heal_hf.data.pool_shards.PoolBuildConfig` field: samples_per_prompt,
            bins, max_new_tokens, temperature, top_p, top_k, seed, verifier,
            prompt_column, answer_column, source_column, source (default "general"),
            verifier_column,
            batch_size (sequences per generate call), chat_template.
    """

    def __init__(self, model: Any, tokenizer: Any, model_id: str | None = None, **settings: Any) -> None:
        check_causal_lm(model)
        unknown = set(settings) - set(PoolBuildConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"settings: unknown {sorted(unknown)}; expected PoolBuildConfig fields "
                f"{sorted(PoolBuildConfig.__dataclass_fields__)}"
            )
        settings.setdefault("source", "general")
        self.config = PoolBuildConfig(**settings).validate()
        self.model, self.tokenizer = model, tokenizer
        self.model_id = model_id or getattr(model, "name_or_path", "") or type(model).__name__

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        c = self.config
        for role, column in (("prompt_column", c.prompt_column), ("answer_column", c.answer_column),
                             ("source_column", c.source_column), ("verifier_column", c.verifier_column)):
            if column is not None and column not in batch:
                raise ValueError(
                    f"batch: no {column!r} column (columns: {sorted(batch)}); set {role} to the column that holds it"
                )
        prompts = [str(p) for p in batch[c.prompt_column]]
        answers = [str(a) for a in batch[c.answer_column]]
        sources = [str(s) for s in batch[c.source_column]] if c.source_column else [c.source] * len(prompts)
        key = hashlib.sha256(json.dumps(prompts, ensure_ascii=False).encode()).hexdigest()
        verifiers = [str(v) for v in batch[c.verifier_column]] if c.verifier_column else None
        rows = sample_pool_rows(
            self.model, self.tokenizer, prompts, answers, sources, c, shard_seed(c.seed, key), self.model_id,
            verifiers=verifiers,
        )
        return {name: [row[name] for row in rows] for name in POOL_FEATURES}


def _criteria_columns(
    batch: dict[str, list],
    names: Sequence[str],
    entropies_column: str,
    responses_column: str | None,
    passed_column: str | None,
    bins: int,
) -> dict[str, list]:
    if entropies_column not in batch:
        raise ValueError(
            f"batch: no {entropies_column!r} column (columns: {sorted(batch)}); it must hold, per row, the "
            "k responses' per-token entropies (nats); set entropies_column"
        )
    out: dict[str, list] = {name: [] for name in names}
    for i, entropies in enumerate(batch[entropies_column]):
        texts = batch[responses_column][i] if responses_column in batch else None
        passed = batch[passed_column][i] if passed_column in batch else None
        crit = response_criteria([list(e) for e in entropies], texts, passed, bins=bins)
        for name in names:
            out[name].append(crit[name])
    return out


class UncertaintyScoring:
    """Reasoning-uncertainty criteria from stored entropies and outcomes (no model).

    Batch function for `Dataset.map(..., batched=True)`. Reads, per row, the k
    responses' token entropies (`entropies_column`) and, when present, the verifier's
    1.0/0.0 outcomes (`passed_column`); adds `mean_entropy` (nats), `pass_rate` and
    `outcome_uncertainty` = 4 p (1 - p) (NaN without outcomes), as in the pool.
    """

    def __init__(self, entropies_column: str = "token_entropies", passed_column: str = "passed") -> None:
        self.entropies_column, self.passed_column = entropies_column, passed_column

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        names = (*UNCERTAINTY_CRITERIA, "pass_rate")
        return _criteria_columns(batch, names, self.entropies_column, None, self.passed_column, DEFAULT_BINS)


class DiversityScoring:
    """Exploratory-diversity criteria from stored entropies and responses (no model).

    Batch function for `Dataset.map(..., batched=True)`. Reads, per row, the k
    responses' token entropies (`entropies_column`) and, when present, their texts
    (`responses_column`); adds `curve_diversity` (mean pairwise RMS distance of the
    K-bin curves, nats), `lexical_diversity` (distinct word bigrams share; NaN
    without texts) and `features` (mean profile features, for redundancy), as in the pool.
    """

    def __init__(
        self, bins: int = DEFAULT_BINS, entropies_column: str = "token_entropies", responses_column: str = "responses"
    ) -> None:
        if not isinstance(bins, int) or bins < 2:
            raise ValueError(f"bins: expected an integer K >= 2, got {bins!r}")
        self.bins, self.entropies_column, self.responses_column = bins, entropies_column, responses_column

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        names = (*DIVERSITY_CRITERIA, "features")
        return _criteria_columns(batch, names, self.entropies_column, self.responses_column, None, self.bins)


PROCESSORS: dict[str, Callable[..., Any]] = {
    "entropy_profiler": EntropyProfiler,
    "uncertainty_scoring": UncertaintyScoring,
    "diversity_scoring": DiversityScoring,
    "hybrid_selection": HybridSelection,
}
"""Registry: name -> processor class. Batch functions for `map`: entropy_profiler,
uncertainty_scoring, diversity_scoring; whole-set step (Dataset -> Dataset): hybrid_selection."""


def get_processor(name: str, **kwargs: Any) -> Any:
    """Build a registered processor by name (see PROCESSORS)."""
    try:
        factory = PROCESSORS[name]
    except KeyError:
        raise ValueError(f"processor: unknown name {name!r}; expected one of {sorted(PROCESSORS)}") from None
    return factory(**kwargs)
