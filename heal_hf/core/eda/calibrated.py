"""The calibrated EDA estimator (v2, the default; docs/method.md, "v2: calibrated").

Features of a trajectory, each a per-token mean or a share, so that its sampling
noise at length T is known:

    magnitude        log(m / L + delta)            m = mean_t H_t, L = R's mean magnitude
    total variation  log(tv / L + delta)           tv = mean_t |H_{t+1} - H_t|
    volatility       log(vol / L + delta)          vol = std_t(H_{t+1} - H_t)
    forking share    share of tokens above R's 80th percentile
    phase shape      curve mass in PHASES equal time segments / the curve's mean

(delta = LOG_OFFSET keeps a collapsed trajectory, m = 0, finite.) Each feature j is
standardized by R's mean and a length-aware spread,
    z_j = (x_j - mean_R(x_j)) / sigma_j(T),
    sigma_j(T)^2 = max(between_j + per_token_j / T, floor_j^2),
where between_j is R's between-trajectory variance and per_token_j the variance of one
token's contribution, estimated from the variation inside R's trajectories (the log
features by the delta method); floors are relative (rel_floor in log units, i.e. a
share of the level, and rel_floor x the share for shares), never a number of nats.
Parts: magnitude z_mag^2, variation mean(z_tv^2, z_vol^2, z_fork^2), dynamics
mean_s z_phase_s^2; D = their weighted mean (w_mag, w_var, w_dyn), and

    r_EDA = 1 / (1 + D / D0),  D0 = the median D of R's own trajectories,

so a typical general-domain trajectory scores about 0.5, the reward never underflows,
and it falls strictly as D grows. Every entropy is read relative to R's level, so the
reward does not depend on the entropy scale (model, vocabulary, temperature).
direction="below" penalizes only less magnitude, variation or forking than R (the
phase shape stays two-sided).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

import torch

from ..profiles import EntropyProfile
from .base import EDAScores, Estimator, blend_moments, check_loaded

PHASES = 4
LOG_OFFSET = 0.01
"""delta: log features read log(x / L + delta), so a collapsed trajectory (x = 0) is finite."""
CALIBRATION_SAMPLE = 512
"""Reference trajectories kept (raw features and lengths) to compute D0 for any settings."""
D0_FLOOR = 1e-2
FEATURE_NAMES = ("magnitude", "total_variation", "volatility", "forking_share")
_LEVEL_FLOOR = 1e-30  # a reference of exact zeros still gives finite features
_RAW_MAX = 1e300  # raw features are clamped here, so float32 overflow (inf) stays finite
_LOG_FEATURES = 3  # magnitude, total variation, volatility: log-read; then forking share and phases
_ONE_SIDED = 4  # features that direction="below" reads one-sided (all but the phase shape)


def feature_names(bins: int) -> tuple[str, ...]:
    """Names of the calibrated features for curves of `bins` bins."""
    return FEATURE_NAMES + tuple(f"phase_{s + 1}" for s in range(min(PHASES, bins)))


def raw_features(profile: EntropyProfile) -> torch.Tensor:
    """(B, 4 + S) untransformed calibrated features (float64): m, tv, vol (nats), forking share, phases.

    Phase s is the mean of the curve's bins in time segment s divided by the curve's
    mean (1 everywhere for an all-zero curve), so the phases average 1.
    """
    curve = profile.curve.double()
    bins = curve.shape[1]
    phases = min(PHASES, bins)
    segment = (torch.arange(bins) * phases) // bins
    sums = torch.zeros(len(curve), phases, dtype=torch.float64).index_add_(1, segment, curve)
    means = sums / torch.bincount(segment, minlength=phases).double()
    level = curve.mean(1, keepdim=True)
    shape = torch.where(level > 0, means / level.clamp(min=_LEVEL_FLOOR), torch.ones_like(means))
    scalar = torch.stack(
        [profile.magnitude.double(), profile.total_variation.double(), profile.volatility.double(),
         profile.forking_share.double()], 1,
    )
    return torch.cat([scalar, shape], 1).nan_to_num(nan=0.0, posinf=_RAW_MAX).clamp(0.0, _RAW_MAX)


def _transform(raw: torch.Tensor, level: float) -> torch.Tensor:
    """Read the scale-bearing features relative to the reference level, on a log scale."""
    out = raw.clone()
    out[:, :_LOG_FEATURES] = torch.log(raw[:, :_LOG_FEATURES] / max(level, _LEVEL_FLOOR) + LOG_OFFSET)
    return out


def spread_indices(n: int, k: int) -> torch.Tensor:
    """k indices spread evenly over range(n) (all of them when k >= n): a deterministic subsample."""
    if k >= n:
        return torch.arange(n)
    return torch.linspace(0, n - 1, k).round().long()


def _per_token_variance(profile: EntropyProfile, raw: torch.Tensor, level: float) -> torch.Tensor:
    """(F,) the variance one token adds to each transformed feature, pooled over the reference.

    Log features by the delta method: var(log(x / L + delta)) ~ var(x) / (x + delta L)^2
    with x the feature's mean; the forking share's is p(1 - p); a phase segment holds
    T / S tokens, so its per-token variance is S var(H) / m^2.
    """
    weights = profile.lengths.double() / profile.lengths.double().sum()
    pooled = (profile.token_var.double() * weights[:, None]).sum(0)  # var H, var |dH|, var |dH - mean|
    offset = LOG_OFFSET * max(level, _LEVEL_FLOOR)
    means = raw[:, :_LOG_FEATURES].mean(0)
    logs = pooled / (means + offset) ** 2
    fork = raw[:, 3]
    fork_var = (fork * (1 - fork) * weights).sum()[None]
    phases = raw.shape[1] - 4
    phase_var = (phases * pooled[0] / (means[0] + offset) ** 2).repeat(phases)
    return torch.cat([logs, fork_var, phase_var]).nan_to_num(nan=0.0, posinf=_RAW_MAX)


@dataclass(frozen=True)
class CalibratedStats:
    """What v2 reads from R, over the F = 4 + min(PHASES, K) features of `feature_names(bins)`.

    `level` L (mean magnitude, nats); `forking_threshold` (nats, the 80th percentile of
    R's tokens: a token above it is forking); `feature_mean` / `feature_var` (F,) (mean
    and between-trajectory-plus-noise variance of the transformed features);
    `token_var` (F,) (one token's variance, in the same units); `inv_length_mean`
    (mean 1/T); and a calibration sample of at most CALIBRATION_SAMPLE trajectories
    (`sample_features` (N, F) raw, `sample_lengths` (N,)) from which D0 is computed
    for any settings.
    """

    level: float
    forking_threshold: float
    feature_mean: torch.Tensor
    feature_var: torch.Tensor
    token_var: torch.Tensor
    inv_length_mean: float
    sample_features: torch.Tensor
    sample_lengths: torch.Tensor

    @property
    def between_var(self) -> torch.Tensor:
        """(F,) between-trajectory variance of the calibrated features (total minus token noise)."""
        return (self.feature_var - self.token_var * self.inv_length_mean).clamp(min=0.0)

    def shifted_mean(self, level: float) -> torch.Tensor:
        """(F,) `feature_mean` read relative to another level (the log features shift by log(L / level))."""
        shift = torch.zeros_like(self.feature_mean)
        shift[:_LOG_FEATURES] = math.log(max(self.level, _LEVEL_FLOOR) / max(level, _LEVEL_FLOOR))
        return self.feature_mean + shift


class CalibratedEstimator(Estimator):
    """r = 1 / (1 + D / D0) over length-aware, scale-free features (module doc)."""

    name = "calibrated"
    stats = CalibratedStats

    @classmethod
    def fit(cls, profile: EntropyProfile) -> CalibratedStats:
        """The profiles must carry `token_var` (profiles made by `EntropyProfile.from_entropies` do)."""
        raw = raw_features(profile)
        level = float(raw[:, 0].mean())
        x = _transform(raw, level)
        sample = spread_indices(len(raw), CALIBRATION_SAMPLE)
        return CalibratedStats(
            level=level,
            forking_threshold=profile.forking_threshold,
            feature_mean=x.mean(0),
            feature_var=x.var(0, unbiased=False),
            token_var=_per_token_variance(profile, raw, level),
            inv_length_mean=float((1.0 / profile.lengths.double()).mean()),
            sample_features=raw[sample].float(),
            sample_lengths=profile.lengths[sample].long(),
        )

    @classmethod
    def blend(cls, old: CalibratedStats, new: CalibratedStats, momentum: float) -> CalibratedStats:
        """`new`'s statistics are first moved to the blended level; the calibration sample keeps a
        `momentum` share of `old`'s trajectories and the rest of `new`'s."""
        a, b = momentum, 1.0 - momentum
        level = a * old.level + b * new.level
        f_mean, f_std = blend_moments(old.shifted_mean(level), old.feature_var.sqrt(), new.shifted_mean(level),
                                      new.feature_var.sqrt(), momentum)
        n = max(len(old.sample_lengths), len(new.sample_lengths))
        keep = min(round(a * n), len(old.sample_lengths))
        take = min(n - keep, len(new.sample_lengths))
        mine, theirs = spread_indices(len(old.sample_lengths), keep), spread_indices(len(new.sample_lengths), take)
        return CalibratedStats(
            level=level,
            forking_threshold=a * old.forking_threshold + b * new.forking_threshold,
            feature_mean=f_mean,
            feature_var=f_std**2,
            token_var=a * old.token_var + b * new.token_var,
            inv_length_mean=a * old.inv_length_mean + b * new.inv_length_mean,
            sample_features=torch.cat([old.sample_features[mine], new.sample_features[theirs]]),
            sample_lengths=torch.cat([old.sample_lengths[mine], new.sample_lengths[theirs]]),
        )

    @classmethod
    def load(cls, data: Mapping[str, Any], bins: int) -> CalibratedStats:
        n_features = len(feature_names(bins))
        stats = CalibratedStats(
            level=float(data["level"]),
            forking_threshold=float(data["forking_threshold"]),
            feature_mean=torch.tensor(data["feature_mean"], dtype=torch.float64),
            feature_var=torch.tensor(data["feature_var"], dtype=torch.float64),
            token_var=torch.tensor(data["token_var"], dtype=torch.float64),
            inv_length_mean=float(data["inv_length_mean"]),
            sample_features=torch.tensor(data["sample_features"], dtype=torch.float32).reshape(-1, n_features),
            sample_lengths=torch.tensor(data["sample_lengths"], dtype=torch.long),
        )
        shapes = {"feature_mean": (n_features,), "feature_var": (n_features,), "token_var": (n_features,),
                  "sample_lengths": (len(stats.sample_features),)}
        check_loaded(stats, shapes, ("feature_var", "token_var", "level", "inv_length_mean"),
                     ("feature_mean", "forking_threshold"), bins)
        if len(stats.sample_lengths) == 0:
            raise ValueError("data: the calibration sample is empty; rebuild the reference from entropies")
        return stats

    @cached_property
    def d0(self) -> float:
        """D0 of the kernel: the median D of the reference's own trajectories (>= D0_FLOOR), for these settings."""
        ref = self.reference
        return max(float(self._distance(ref.sample_features.double(), ref.sample_lengths)[0].median()), D0_FLOOR)

    def _distance(self, raw: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """D and its parts (float64) for raw features (B, F) of trajectories of `lengths` tokens."""
        ref, s = self.reference, self.settings
        x = _transform(raw, ref.level)
        scale = torch.ones_like(ref.feature_mean)
        scale[_LOG_FEATURES:] = ref.feature_mean[_LOG_FEATURES:].abs().clamp(min=1e-2)  # shares: relative floors
        floor = (s.rel_floor * scale) ** 2
        tokens = lengths.double().clamp(min=1)[:, None]
        spread = (ref.between_var[None, :] + ref.token_var[None, :] / tokens).clamp(min=floor).sqrt()
        z = (x - ref.feature_mean[None, :]) / spread
        if s.direction == "below":
            z = torch.cat([z[:, :_ONE_SIDED].clamp(max=0.0), z[:, _ONE_SIDED:]], 1)
        sq = (z**2).clamp(max=_RAW_MAX)
        mag, var, dyn = sq[:, 0], sq[:, 1:_ONE_SIDED].mean(1), sq[:, _ONE_SIDED:].mean(1)
        weights = (s.w_mag, s.w_var, s.w_dyn)
        distance = sum(w * part for w, part in zip(weights, (mag, var, dyn)) if w > 0) / sum(weights)
        return distance, mag, z[:, 0], var, dyn

    def score(self, profile: EntropyProfile) -> EDAScores:
        if profile.forking_threshold != self.reference.forking_threshold:
            raise ValueError(
                "entropies: these profiles count forking tokens above another threshold than the reference's; "
                "profile them with forking_threshold=reference.forking_threshold"
            )
        distance, magnitude_gap, magnitude_z, variation_gap, dynamics_gap = self._distance(
            raw_features(profile), profile.lengths
        )
        return EDAScores.of(profile, 1.0 / (1.0 + distance / self.d0), distance, magnitude_gap, magnitude_z,
                            variation_gap, dynamics_gap)
