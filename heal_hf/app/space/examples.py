"""The Entropy Explorer's clickable examples: toy task problems whose answers the app verifies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ...toy import tasks as toy_tasks


@dataclass(frozen=True)
class TaskExample:
    """A prompt of a known task family, its gold answer and its verifier `check(completion, answer)`."""

    family: str
    domain: str
    prompt: str
    answer: str
    check: Callable[[Any, Any], float]


def task_examples(per_family: int = 1) -> list[TaskExample]:
    """Clickable examples: `per_family` test problems of every toy task family."""
    return [
        TaskExample(family.name, family.domain, row["prompt"], row["answer"], family.verify)
        for family in toy_tasks.FAMILIES.values()
        for row in family.generate(per_family, split="test", seed=0)
    ]


def general_prompts(per_family: int = 2) -> list[str]:
    """General-domain prompts for a reference sampled from the model itself."""
    return [
        row["prompt"] for name in toy_tasks.GENERAL_FAMILIES for row in toy_tasks.generate(name, per_family, seed=1)
    ]
