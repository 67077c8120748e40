"""`datasets` processors for HEAL, with a small registry.

A processor is a callable used with `datasets`: either a batch function for
`Dataset.map(fn, batched=True)` or, for whole-set steps such as hybrid selection,
a callable taking and returning a `Dataset`. `get_processor(name, **kwargs)` builds
one by its registry name.
"""

from __future__ import annotations

from typing import Any, Callable

import datasets
import numpy as np

from .pool import validate_pool
from .selection import CRITERIA, HybridSelector

DOMAIN_TARGET = "target"
DOMAIN_GENERAL = "general"

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
        pool: a general-entropy pool `Dataset` (see `heal_hf.pool.load_pool`).
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
        """The `heal_hf.selection.Selection` of n pool rows."""
        criteria = {c: np.asarray(list(self.pool[c]), dtype=np.float64) for c in CRITERIA}
        features = np.asarray(list(self.pool["features"]), dtype=np.float32)
        return HybridSelector(n, **self.selector_kwargs).select(criteria, features)


PROCESSORS: dict[str, Callable[..., Any]] = {
    "hybrid_selection": HybridSelection,
}


def get_processor(name: str, **kwargs: Any) -> Any:
    """Build a registered processor by name (see PROCESSORS)."""
    try:
        factory = PROCESSORS[name]
    except KeyError:
        raise ValueError(f"processor: unknown name {name!r}; expected one of {sorted(PROCESSORS)}") from None
    return factory(**kwargs)
