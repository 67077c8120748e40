"""What every EDA estimator shares: the `Estimator` interface, `EDAScores`, and moment blending.

An estimator fits its own statistics of the reference R from general-domain profiles
(`fit`), blends two of them (`blend`, the EMA update), reads them back from a dict
(`load`), and scores target profiles against them (`score`). `EDAReference` holds every
registered estimator's statistics, so one reference serves all of them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, TypeVar

import torch

from ..profiles import EntropyProfile
from .settings import EDASettings

REWARD_FLOOR = torch.finfo(torch.float32).tiny
"""The smallest reward: r_EDA stays in (0, 1] even where a kernel underflows."""

Moment = TypeVar("Moment", float, torch.Tensor)


@dataclass(frozen=True)
class EDAScores:
    """EDA scores of B target trajectories (float32, (B,) each).

    `distance` D, the weighted combination of the parts (see each estimator's module).
    `magnitude_gap` is the squared z-score of the magnitude, `magnitude_z` its signed
    root (negative: less entropy than the reference); `variation_gap` the mean squared
    z of total variation, volatility and forking share (calibrated; 0 for gaussian);
    `dynamics_gap` the phase shape's (calibrated) or mean_k z(dc_k)^2 (gaussian).
    """

    reward: torch.Tensor
    distance: torch.Tensor
    magnitude_gap: torch.Tensor
    magnitude_z: torch.Tensor
    variation_gap: torch.Tensor
    dynamics_gap: torch.Tensor
    profile: EntropyProfile = field(repr=False)

    @classmethod
    def of(cls, profile: EntropyProfile, reward: torch.Tensor, distance: torch.Tensor, magnitude_gap: torch.Tensor,
           magnitude_z: torch.Tensor, variation_gap: torch.Tensor, dynamics_gap: torch.Tensor) -> "EDAScores":
        """Scores from an estimator's float64 (B,) parts: float32, the reward clamped to [REWARD_FLOOR, 1]."""
        return cls(
            reward=reward.clamp(min=REWARD_FLOOR, max=1.0).float(),
            distance=distance.float(),
            magnitude_gap=magnitude_gap.float(),
            magnitude_z=magnitude_z.float(),
            variation_gap=variation_gap.float(),
            dynamics_gap=dynamics_gap.float(),
            profile=profile,
        )


class Estimator(ABC):
    """One way to score target trajectories against the general-domain reference R.

    Subclasses set `name` (as in `settings.ESTIMATORS`) and `stats` (the frozen
    dataclass of the reference statistics they fit and read; `EDAReference` includes
    its fields), and implement the class methods `fit`, `blend` and `load` and the
    method `score`.
    """

    name: ClassVar[str]
    stats: ClassVar[type]

    def __init__(self, reference: Any, settings: EDASettings) -> None:
        """`reference`: an instance of `stats` (an `EDAReference` is one); `settings`: the EDA settings to score with."""
        self.reference, self.settings = reference, settings

    @classmethod
    @abstractmethod
    def fit(cls, profile: EntropyProfile) -> Any:
        """This estimator's statistics (a `stats` instance) of N >= 1 non-empty reference profiles."""

    @classmethod
    @abstractmethod
    def blend(cls, old: Any, new: Any, momentum: float) -> Any:
        """The EMA blend `momentum * old + (1 - momentum) * new` of two references' statistics."""

    @classmethod
    @abstractmethod
    def load(cls, data: Mapping[str, Any], bins: int) -> Any:
        """The statistics from `EDAReference.to_dict()` output, shapes and values checked."""

    @abstractmethod
    def score(self, profile: EntropyProfile) -> EDAScores:
        """Scores of B target profiles (profiled with the reference's bins and forking threshold)."""

    @property
    def d0(self) -> float | None:
        """The kernel's scale D0 (a trajectory at distance D0 scores 0.5); None for a kernel without one."""
        return None


def blend_moments(
    mean_a: Moment, std_a: Moment, mean_b: Moment, std_b: Moment, momentum: float
) -> tuple[Moment, Moment]:
    """Mean and std of the mixture `momentum * A + (1 - momentum) * B` (first and second moments blended)."""
    a, b = momentum, 1.0 - momentum
    mean = a * mean_a + b * mean_b
    var = a * (std_a**2 + mean_a**2) + b * (std_b**2 + mean_b**2) - mean**2
    if isinstance(var, torch.Tensor):
        return mean, var.clamp(min=0).sqrt()
    return mean, math.sqrt(max(var, 0.0))


def fields_of(stats: Any) -> dict[str, Any]:
    """A stats dataclass's fields as keyword arguments (no copies, unlike dataclasses.asdict)."""
    return {name: getattr(stats, name) for name in stats.__dataclass_fields__}


def check_loaded(
    values: Any, shapes: Mapping[str, tuple[int, ...]], spreads: tuple[str, ...], means: tuple[str, ...], bins: int
) -> None:
    """Raise ValueError("data: ...") unless the named tensors have `shapes`, `spreads` are finite and >= 0, `means` finite."""
    for name, shape in shapes.items():
        if tuple(getattr(values, name).shape) != shape:
            raise ValueError(f"data: {name} has shape {tuple(getattr(values, name).shape)} but bins = {bins} needs {shape}")
    for name in spreads:
        value = torch.as_tensor(getattr(values, name), dtype=torch.float64)
        if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
            raise ValueError(f"data: {name} must be finite and >= 0 (a spread or a level); got {getattr(values, name)!r}")
    for name in means:
        if not bool(torch.isfinite(torch.as_tensor(getattr(values, name), dtype=torch.float64)).all()):
            raise ValueError(f"data: {name} must be finite; got {getattr(values, name)!r}")
