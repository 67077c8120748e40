"""One exploration: checked sampling settings, k sampled responses to a prompt, and their EDA scores against R."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...core.eda import EDAReference, EDAReward, EDAScores
from ...data.rollout import Rollouts, sample_with_entropies
from .examples import TaskExample
from .models import ExplorerModel, sampling

MAX_SAMPLES = 16
MAX_NEW_TOKENS = 256
MAX_PROMPT_CHARS = 1000
TEMPERATURE_RANGE = (0.1, 2.0)
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class ExploreRequest:
    """Checked sampling settings (see `checked`)."""

    prompt: str
    num_samples: int
    temperature: float
    max_new_tokens: int
    seed: int

    @classmethod
    def checked(
        cls, prompt: Any, num_samples: Any, temperature: Any, max_new_tokens: Any, seed: Any
    ) -> "ExploreRequest":
        """Validate raw UI/API values; ValueError with a sentence a person can act on."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("The prompt is empty: type a prompt or click one of the examples.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"The prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}.")
        return cls(
            prompt=prompt,
            num_samples=_integer("Number of samples", num_samples, 1, MAX_SAMPLES),
            temperature=_number("Temperature", temperature, *TEMPERATURE_RANGE),
            max_new_tokens=_integer("Max new tokens", max_new_tokens, 1, MAX_NEW_TOKENS),
            seed=_integer("Seed", seed, 0, MAX_SEED),
        )


def _number(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}.") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} must be from {low:g} to {high:g}, got {value!r}.")
    return number


def _integer(name: str, value: Any, low: int, high: int) -> int:
    number = _number(name, value, low, high)
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    return int(number)


@dataclass
class Exploration:
    """k responses to one prompt, their EDA scores against R, and the known task if any."""

    rollouts: Rollouts
    scores: EDAScores
    reference: EDAReference
    pieces: list[list[str]]  # each sample's tokens as display text
    task: TaskExample | None

    @property
    def entropies(self) -> list[list[float]]:
        return self.rollouts.entropies[0]

    @property
    def texts(self) -> list[str]:
        return self.rollouts.texts[0]


def explore(loaded: ExplorerModel, request: ExploreRequest, task: TaskExample | None = None) -> Exploration:
    """Sample, profile and score `request.num_samples` responses to `request.prompt`."""
    tokenizer = loaded.tokenizer
    if loaded.max_positions is not None:
        prompt_tokens = len(tokenizer(request.prompt).input_ids)
        if prompt_tokens + request.max_new_tokens > loaded.max_positions:
            raise ValueError(
                f"The prompt ({prompt_tokens} tokens) plus {request.max_new_tokens} new tokens exceed this model's "
                f"context of {loaded.max_positions} tokens: shorten the prompt or lower max new tokens."
            )
    with sampling(loaded.model):
        rollouts = sample_with_entropies(
            loaded.model, tokenizer, [request.prompt], num_samples=request.num_samples,
            max_new_tokens=request.max_new_tokens, temperature=request.temperature, seed=request.seed,
        )
    scores = EDAReward(loaded.reference).score(rollouts.entropies[0])  # the calibrated estimator (v2)
    pieces = [[tokenizer.decode([i]) for i in ids] for ids in rollouts.token_ids[0]]
    return Exploration(rollouts, scores, loaded.reference, pieces, task)
