"""The gaussian EDA estimator (v1, the first reading of HEAL; docs/method.md, "v1: gaussian").

    D_i = w_mag * ((m_i - mean_R(m)) / std_R(m))^2
        + w_dyn * mean_k ((dc_ik - mean_R(dc_k)) / std_R(dc_k))^2
    r_EDA,i = exp(-D_i / 2)

with every std floored at `eps` (nats) and the reward at the smallest positive float32.
It saturates (D in the hundreds gives the 1e-38 floor), is blind to flat curves,
favours long answers and depends on the entropy scale; kept by name for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ..profiles import EntropyProfile
from .base import EDAScores, Estimator, blend_moments, check_loaded


@dataclass(frozen=True)
class GaussianStats:
    """What v1 reads from R: mean and std of the magnitude m (nats) and of each differenced bin dc_k ((K-1,))."""

    magnitude_mean: float
    magnitude_std: float
    diff_mean: torch.Tensor
    diff_std: torch.Tensor


class GaussianEstimator(Estimator):
    """r = exp(-D / 2) over the magnitude and the differenced K-bin curve (module doc)."""

    name = "gaussian"
    stats = GaussianStats

    @classmethod
    def fit(cls, profile: EntropyProfile) -> GaussianStats:
        """Population means and stds over the reference trajectories."""
        diff, mag = profile.diff.double(), profile.magnitude.double()
        return GaussianStats(
            magnitude_mean=float(mag.mean()),
            magnitude_std=float(mag.std(unbiased=False)),
            diff_mean=diff.mean(0).float(),
            diff_std=diff.std(0, unbiased=False).float(),
        )

    @classmethod
    def blend(cls, old: GaussianStats, new: GaussianStats, momentum: float) -> GaussianStats:
        m_mean, m_std = blend_moments(old.magnitude_mean, old.magnitude_std, new.magnitude_mean, new.magnitude_std,
                                      momentum)
        d_mean, d_std = blend_moments(old.diff_mean, old.diff_std, new.diff_mean, new.diff_std, momentum)
        return GaussianStats(magnitude_mean=float(m_mean), magnitude_std=float(m_std), diff_mean=d_mean, diff_std=d_std)

    @classmethod
    def load(cls, data: Mapping[str, Any], bins: int) -> GaussianStats:
        stats = GaussianStats(
            magnitude_mean=float(data["magnitude_mean"]),
            magnitude_std=float(data["magnitude_std"]),
            diff_mean=torch.tensor(data["diff_mean"], dtype=torch.float32),
            diff_std=torch.tensor(data["diff_std"], dtype=torch.float32),
        )
        check_loaded(stats, {"diff_mean": (bins - 1,), "diff_std": (bins - 1,)}, ("magnitude_std", "diff_std"),
                     ("magnitude_mean", "diff_mean"), bins)
        return stats

    def score(self, profile: EntropyProfile) -> EDAScores:
        ref, s = self.reference, self.settings
        m_z = (profile.magnitude.double() - ref.magnitude_mean) / max(ref.magnitude_std, s.eps)
        d_z = (profile.diff.double() - ref.diff_mean.double()) / ref.diff_std.double().clamp(min=s.eps)
        magnitude_gap, dynamics_gap = m_z**2, (d_z**2).mean(1)
        distance = s.w_mag * magnitude_gap + s.w_dyn * dynamics_gap
        return EDAScores.of(profile, torch.exp(-distance / 2), distance, magnitude_gap, m_z,
                            torch.zeros_like(magnitude_gap), dynamics_gap)
