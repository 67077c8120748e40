"""Entropy Dynamics Alignment (HEAL.md, "Reference R" and "EDA reward").

The reference R summarizes general-domain profiles: mean and std of the magnitude m
and of each differenced-curve bin dc_k. A target trajectory i is scored by

    D_i = w_mag * ((m_i - mean_R(m)) / std_R(m))^2
        + w_dyn * mean_k ((dc_ik - mean_R(dc_k)) / std_R(dc_k))^2
    r_EDA,i = exp(-D_i / 2)            in (0, 1], 1 = aligned with R

with every std floored at `eps`. The reward is floored at the smallest positive
float32 (1.2e-38) so that it stays in (0, 1] for any finite input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from typing import Any, Sequence, Union

import numpy as np
import torch

from .profiles import DEFAULT_BINS, EntropiesLike, EntropyProfile

DEFAULT_EPS = 1e-3
_REWARD_FLOOR = torch.finfo(torch.float32).tiny


@dataclass(frozen=True)
class EDAReference:
    """Statistics of general-domain entropy profiles (the reference R).

    `*_mean` / `*_std` are population statistics over the reference trajectories;
    `diff_*` have shape (K-1,), `curve_*` (K,) (the latter for plots and bands).
    `count` is the number of trajectories behind it (an effective count after EMA).
    """

    bins: int
    magnitude_mean: float
    magnitude_std: float
    diff_mean: torch.Tensor
    diff_std: torch.Tensor
    curve_mean: torch.Tensor
    curve_std: torch.Tensor
    forking_threshold: float
    count: float

    @classmethod
    def from_profiles(cls, profile: EntropyProfile) -> "EDAReference":
        """Statistics of a batch of reference profiles; empty (0-token) trajectories are left out."""
        if len(profile) == 0:
            raise ValueError("profile: the reference set is empty; expected at least one general-domain trajectory")
        nonempty = profile.lengths > 0
        if not bool(nonempty.any()):
            raise ValueError(
                "profile: every reference trajectory has 0 tokens (a mask of all zeros?); expected "
                "general-domain trajectories with at least one token"
            )
        if not bool(nonempty.all()):
            profile = profile[nonempty.nonzero().squeeze(1).tolist()]  # no tokens, no dynamics to align with
        diff = profile.diff.double()
        curve = profile.curve.double()
        mag = profile.magnitude.double()
        return cls(
            bins=profile.bins,
            magnitude_mean=float(mag.mean()),
            magnitude_std=float(mag.std(unbiased=False)),
            diff_mean=diff.mean(0).float(),
            diff_std=diff.std(0, unbiased=False).float(),
            curve_mean=curve.mean(0).float(),
            curve_std=curve.std(0, unbiased=False).float(),
            forking_threshold=profile.forking_threshold,
            count=float(len(profile)),
        )

    @classmethod
    def from_entropies(
        cls, entropies: EntropiesLike, mask: Any = None, bins: int = DEFAULT_BINS
    ) -> "EDAReference":
        """Reference from general-domain per-token entropies ((B, T) or a ragged list).

        The forking threshold is the 80th percentile of these tokens' entropies.
        """
        return cls.from_profiles(EntropyProfile.from_entropies(entropies, mask, bins=bins))

    def blend(self, other: "EDAReference", momentum: float) -> "EDAReference":
        """EMA blend `momentum * self + (1 - momentum) * other` of first and second moments."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1], got {momentum!r}")
        if other.bins != self.bins:
            raise ValueError(f"other: reference bins differ ({self.bins} vs {other.bins}); build both with one K")
        a, b = momentum, 1.0 - momentum

        def mix(mean_a, std_a, mean_b, std_b):
            mean = a * mean_a + b * mean_b
            second = a * (std_a**2 + mean_a**2) + b * (std_b**2 + mean_b**2)
            var = second - mean**2
            var = var.clamp(min=0) if isinstance(var, torch.Tensor) else max(var, 0.0)
            return mean, (var.sqrt() if isinstance(var, torch.Tensor) else math.sqrt(var))

        m_mean, m_std = mix(self.magnitude_mean, self.magnitude_std, other.magnitude_mean, other.magnitude_std)
        d_mean, d_std = mix(self.diff_mean, self.diff_std, other.diff_mean, other.diff_std)
        c_mean, c_std = mix(self.curve_mean, self.curve_std, other.curve_mean, other.curve_std)
        return EDAReference(
            bins=self.bins,
            magnitude_mean=float(m_mean),
            magnitude_std=float(m_std),
            diff_mean=d_mean,
            diff_std=d_std,
            curve_mean=c_mean,
            curve_std=c_std,
            forking_threshold=a * self.forking_threshold + b * other.forking_threshold,
            count=a * self.count + b * other.count,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (lists of floats)."""
        return {
            "bins": self.bins,
            "magnitude_mean": self.magnitude_mean,
            "magnitude_std": self.magnitude_std,
            "diff_mean": self.diff_mean.tolist(),
            "diff_std": self.diff_std.tolist(),
            "curve_mean": self.curve_mean.tolist(),
            "curve_std": self.curve_std.tolist(),
            "forking_threshold": self.forking_threshold,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EDAReference":
        """Inverse of `to_dict`; checks the shapes agree with `bins`."""
        missing = {f for f in cls.__dataclass_fields__} - set(data)
        if missing:
            raise ValueError(f"data: missing reference fields {sorted(missing)}")
        bins = int(data["bins"])
        ref = cls(
            bins=bins,
            magnitude_mean=float(data["magnitude_mean"]),
            magnitude_std=float(data["magnitude_std"]),
            diff_mean=torch.tensor(data["diff_mean"], dtype=torch.float32),
            diff_std=torch.tensor(data["diff_std"], dtype=torch.float32),
            curve_mean=torch.tensor(data["curve_mean"], dtype=torch.float32),
            curve_std=torch.tensor(data["curve_std"], dtype=torch.float32),
            forking_threshold=float(data["forking_threshold"]),
            count=float(data["count"]),
        )
        if ref.diff_mean.shape != (bins - 1,) or ref.curve_mean.shape != (bins,):
            raise ValueError(
                f"data: curve statistics have {ref.curve_mean.numel()} bins and differences "
                f"{ref.diff_mean.numel()}, but bins = {bins}"
            )
        return ref


@dataclass(frozen=True)
class EDAScores:
    """EDA scores of B target trajectories (float32, (B,) each).

    `distance` D = w_mag * magnitude_gap + w_dyn * dynamics_gap; `magnitude_gap` is
    the squared z-score of the magnitude, `magnitude_z` its signed root (negative:
    less entropy than the reference); `dynamics_gap` is mean_k z(dc_k)^2.
    """

    reward: torch.Tensor
    distance: torch.Tensor
    magnitude_gap: torch.Tensor
    magnitude_z: torch.Tensor
    dynamics_gap: torch.Tensor
    profile: EntropyProfile = field(repr=False)


ReferenceLike = Union[EDAReference, EntropyProfile, torch.Tensor, np.ndarray, list, Iterable[Sequence[float]]]


class EDAReward:
    """The EDA reward against a general-domain reference, updatable online.

    Args:
        reference: an `EDAReference`, reference `EntropyProfile`s, or general-domain
            per-token entropies: a (N, T) tensor/array, or a list (or any sized
            iterable, e.g. a `datasets` column) of N sequences.
            (A (N, K) array of curves works too: a K-token sequence is its own curve.)
        bins: K, used when `reference` is raw entropies.
        w_mag, w_dyn: weights of the magnitude and dynamics terms of D.
        eps: floor for the reference stds (nats).
        momentum: EMA weight kept by `update` (0 replaces the reference outright).

    Call `reward(entropies, mask)` for r_EDA (B,) or `score(...)` for all the gaps.
    """

    def __init__(
        self,
        reference: ReferenceLike,
        bins: int = DEFAULT_BINS,
        w_mag: float = 1.0,
        w_dyn: float = 1.0,
        eps: float = DEFAULT_EPS,
        momentum: float = 0.9,
    ) -> None:
        for name, value in (("w_mag", w_mag), ("w_dyn", w_dyn)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite weight >= 0, got {value!r}")
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps: expected a small positive std floor, got {eps!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1], got {momentum!r}")
        self.reference = as_reference(reference, bins)
        self.w_mag, self.w_dyn, self.eps, self.momentum = w_mag, w_dyn, eps, momentum

    @property
    def bins(self) -> int:
        return self.reference.bins

    def update(self, general: ReferenceLike, momentum: float | None = None) -> EDAReference:
        """Blend fresh general-domain statistics into the reference (EMA) and return it."""
        fresh = as_reference(general, self.bins)
        self.reference = self.reference.blend(fresh, self.momentum if momentum is None else momentum)
        return self.reference

    def score(
        self,
        entropies: EntropiesLike | EntropyProfile,
        mask: Any = None,
    ) -> EDAScores:
        """Score target trajectories: (B, T) entropies (+ mask), a ragged list, or profiles."""
        ref = self.reference
        if isinstance(entropies, EntropyProfile):
            profile = entropies
            if profile.bins != ref.bins:
                raise ValueError(
                    f"entropies: profiles have {profile.bins} bins but the reference has {ref.bins}; "
                    "profile them with the reference's bins"
                )
        else:
            profile = EntropyProfile.from_entropies(
                entropies, mask, bins=ref.bins, forking_threshold=ref.forking_threshold
            )
        m_z = (profile.magnitude.double() - ref.magnitude_mean) / max(ref.magnitude_std, self.eps)
        d_z = (profile.diff.double() - ref.diff_mean.double()) / ref.diff_std.double().clamp(min=self.eps)
        mag_gap = m_z**2
        dyn_gap = (d_z**2).mean(1)
        distance = self.w_mag * mag_gap + self.w_dyn * dyn_gap
        reward = torch.exp(-distance / 2).clamp(min=_REWARD_FLOOR, max=1.0)
        return EDAScores(
            reward=reward.float(),
            distance=distance.float(),
            magnitude_gap=mag_gap.float(),
            magnitude_z=m_z.float(),
            dynamics_gap=dyn_gap.float(),
            profile=profile,
        )

    def reward(self, entropies: EntropiesLike | EntropyProfile, mask: Any = None) -> torch.Tensor:
        """r_EDA in (0, 1] per trajectory, shape (B,)."""
        return self.score(entropies, mask).reward

    __call__ = reward


def as_reference(reference: ReferenceLike, bins: int = DEFAULT_BINS) -> EDAReference:
    """Coerce the accepted reference forms (see `EDAReward`) to an `EDAReference`."""
    if isinstance(reference, EDAReference):
        return reference
    if isinstance(reference, EntropyProfile):
        return EDAReference.from_profiles(reference)
    if isinstance(reference, (torch.Tensor, np.ndarray, list, tuple)):
        return EDAReference.from_entropies(reference, bins=bins)
    if isinstance(reference, Sized) and isinstance(reference, Iterable) and not isinstance(reference, (str, bytes, dict)):
        # Any other sequence of entropy sequences, e.g. a `datasets` column: dataset["entropies"].
        return EDAReference.from_entropies(list(reference), bins=bins)
    raise ValueError(
        "reference: expected an EDAReference, an EntropyProfile, a (N, T) tensor/array or a sequence of "
        f"entropy sequences (a list, a datasets column), got {type(reference).__name__}"
    )
