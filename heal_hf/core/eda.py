"""Entropy Dynamics Alignment (HEAL.md, "Reference R" and "EDA reward").

Two estimators score a target trajectory against a general-domain reference R.

"calibrated" (v2, the default): features of a trajectory, each a per-token mean or a
share, so that its sampling noise at length T is known:

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

"gaussian" (v1, HEAL.md's first reading), kept by name:

    D_i = w_mag * ((m_i - mean_R(m)) / std_R(m))^2
        + w_dyn * mean_k ((dc_ik - mean_R(dc_k)) / std_R(dc_k))^2
    r_EDA,i = exp(-D_i / 2)

with every std floored at `eps` (nats) and the reward at the smallest positive float32.
It saturates (D in the hundreds gives the 1e-38 floor), is blind to flat curves,
favours long answers and depends on the entropy scale; see HEAL.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from typing import Any, Sequence, Union

import numpy as np
import torch

from .profiles import DEFAULT_BINS, EntropiesLike, EntropyProfile

ESTIMATORS = ("calibrated", "gaussian")
DEFAULT_ESTIMATOR = "calibrated"
DIRECTIONS = ("both", "below")
DEFAULT_EPS = 1e-3
DEFAULT_REL_FLOOR = 0.05
PHASES = 4
LOG_OFFSET = 0.01
"""delta: log features read log(x / L + delta), so a collapsed trajectory (x = 0) is finite."""
CALIBRATION_SAMPLE = 512
"""Reference trajectories kept (raw features and lengths) to compute D0 for any settings."""
D0_FLOOR = 1e-2
_LEVEL_FLOOR = 1e-30  # a reference of exact zeros still gives finite features
_RAW_MAX = 1e300  # raw features are clamped here, so float32 overflow (inf) stays finite
_REWARD_FLOOR = torch.finfo(torch.float32).tiny
_LOG_FEATURES = 3  # magnitude, total variation, volatility: log-read; then forking share and phases
_ONE_SIDED = 4  # features that direction="below" reads one-sided (all but the phase shape)
FEATURE_NAMES = ("magnitude", "total_variation", "volatility", "forking_share")


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


@dataclass(frozen=True)
class EDAReference:
    """Statistics of general-domain entropy profiles (the reference R), for both estimators.

    Gaussian (v1): `magnitude_*`, `diff_*` (K-1,), `curve_*` (K,) (the curve's for plots
    and bands); population statistics over the reference trajectories.
    Calibrated (v2), over the F = 4 + min(PHASES, K) features of `feature_names(bins)`:
    `level` L (mean magnitude, nats), `feature_mean` / `feature_var` (F,) (mean and
    between-trajectory-plus-noise variance of the transformed features), `token_var`
    (F,) (one token's variance, in the same units), `inv_length_mean` (mean 1/T), and a
    calibration sample of at most CALIBRATION_SAMPLE trajectories (`sample_features`
    (N, F) raw, `sample_lengths` (N,)) from which D0 is computed for any weights.
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
    level: float
    feature_mean: torch.Tensor
    feature_var: torch.Tensor
    token_var: torch.Tensor
    inv_length_mean: float
    sample_features: torch.Tensor
    sample_lengths: torch.Tensor

    @classmethod
    def from_profiles(cls, profile: EntropyProfile) -> "EDAReference":
        """Statistics of a batch of reference profiles; empty (0-token) trajectories are left out.

        The profiles must carry `token_var` (profiles made by `EntropyProfile.from_entropies` do).
        """
        if len(profile) == 0:
            raise ValueError("profile: the reference set is empty; expected at least one general-domain trajectory")
        if profile.token_var is None:
            raise ValueError(
                "profile: these profiles have no per-token variances (rebuilt from stored columns?); "
                "build the reference from the token entropies with EDAReference.from_entropies"
            )
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
        raw = raw_features(profile)
        level = float(raw[:, 0].mean())
        x = _transform(raw, level)
        lengths = profile.lengths.double()
        sample = _spread_indices(len(raw), CALIBRATION_SAMPLE)
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
            level=level,
            feature_mean=x.mean(0),
            feature_var=x.var(0, unbiased=False),
            token_var=_per_token_variance(profile, raw, level),
            inv_length_mean=float((1.0 / lengths).mean()),
            sample_features=raw[sample].float(),
            sample_lengths=profile.lengths[sample].long(),
        )

    @classmethod
    def from_entropies(
        cls, entropies: EntropiesLike, mask: Any = None, bins: int = DEFAULT_BINS
    ) -> "EDAReference":
        """Reference from general-domain per-token entropies ((B, T) or a ragged list).

        The forking threshold is the 80th percentile of these tokens' entropies (any count).
        """
        return cls.from_profiles(EntropyProfile.from_entropies(entropies, mask, bins=bins))

    @property
    def between_var(self) -> torch.Tensor:
        """(F,) between-trajectory variance of the calibrated features (total minus token noise)."""
        return (self.feature_var - self.token_var * self.inv_length_mean).clamp(min=0.0)

    def blend(self, other: "EDAReference", momentum: float) -> "EDAReference":
        """EMA blend `momentum * self + (1 - momentum) * other` of first and second moments.

        The calibrated statistics of `other` are first moved to the blended level (its
        log features shift by log(L_other / L)); the calibration sample keeps a
        `momentum` share of this reference's trajectories and the rest of `other`'s.
        """
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
        level = a * self.level + b * other.level
        f_mean, f_std = mix(
            self._shifted_mean(level), self.feature_var.sqrt(), other._shifted_mean(level), other.feature_var.sqrt()
        )
        n = max(len(self.sample_lengths), len(other.sample_lengths))
        keep = min(round(a * n), len(self.sample_lengths))
        take = min(n - keep, len(other.sample_lengths))
        mine, theirs = _spread_indices(len(self.sample_lengths), keep), _spread_indices(len(other.sample_lengths), take)
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
            level=level,
            feature_mean=f_mean,
            feature_var=f_std**2,
            token_var=a * self.token_var + b * other.token_var,
            inv_length_mean=a * self.inv_length_mean + b * other.inv_length_mean,
            sample_features=torch.cat([self.sample_features[mine], other.sample_features[theirs]]),
            sample_lengths=torch.cat([self.sample_lengths[mine], other.sample_lengths[theirs]]),
        )

    def _shifted_mean(self, level: float) -> torch.Tensor:
        shift = torch.zeros_like(self.feature_mean)
        shift[:_LOG_FEATURES] = math.log(max(self.level, _LEVEL_FLOOR) / max(level, _LEVEL_FLOOR))
        return self.feature_mean + shift

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (lists of floats)."""
        return {
            name: (value.tolist() if isinstance(value, torch.Tensor) else value)
            for name, value in ((f, getattr(self, f)) for f in self.__dataclass_fields__)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EDAReference":
        """Inverse of `to_dict`; checks the shapes agree with `bins` and the spreads are finite and >= 0."""
        missing = {f for f in cls.__dataclass_fields__} - set(data)
        if missing:
            raise ValueError(
                f"data: missing reference fields {sorted(missing)}; a reference saved by heal-hf < 0.2 lacks the "
                "calibrated statistics: rebuild it with EDAReference.from_entropies (or pool_reference)"
            )
        bins = int(data["bins"])
        if bins < 2:
            raise ValueError(f"data: bins = {bins}; expected K >= 2")
        tensor = lambda name, dtype=torch.float64: torch.tensor(data[name], dtype=dtype)  # noqa: E731
        ref = cls(
            bins=bins,
            magnitude_mean=float(data["magnitude_mean"]),
            magnitude_std=float(data["magnitude_std"]),
            diff_mean=tensor("diff_mean", torch.float32),
            diff_std=tensor("diff_std", torch.float32),
            curve_mean=tensor("curve_mean", torch.float32),
            curve_std=tensor("curve_std", torch.float32),
            forking_threshold=float(data["forking_threshold"]),
            count=float(data["count"]),
            level=float(data["level"]),
            feature_mean=tensor("feature_mean"),
            feature_var=tensor("feature_var"),
            token_var=tensor("token_var"),
            inv_length_mean=float(data["inv_length_mean"]),
            sample_features=tensor("sample_features", torch.float32).reshape(-1, len(feature_names(bins))),
            sample_lengths=tensor("sample_lengths", torch.long),
        )
        n_features = len(feature_names(bins))
        shapes = {
            "diff_mean": (bins - 1,), "diff_std": (bins - 1,), "curve_mean": (bins,), "curve_std": (bins,),
            "feature_mean": (n_features,), "feature_var": (n_features,), "token_var": (n_features,),
            "sample_lengths": (len(ref.sample_features),),
        }
        for name, shape in shapes.items():
            if tuple(getattr(ref, name).shape) != shape:
                raise ValueError(
                    f"data: {name} has shape {tuple(getattr(ref, name).shape)} but bins = {bins} needs {shape}"
                )
        for name in ("magnitude_std", "diff_std", "curve_std", "feature_var", "token_var", "level", "inv_length_mean"):
            value = torch.as_tensor(getattr(ref, name), dtype=torch.float64)
            if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
                raise ValueError(f"data: {name} must be finite and >= 0 (a spread or a level); got {getattr(ref, name)!r}")
        for name in ("magnitude_mean", "diff_mean", "curve_mean", "feature_mean", "forking_threshold", "count"):
            if not bool(torch.isfinite(torch.as_tensor(getattr(ref, name), dtype=torch.float64)).all()):
                raise ValueError(f"data: {name} must be finite; got {getattr(ref, name)!r}")
        if len(ref.sample_lengths) == 0:
            raise ValueError("data: the calibration sample is empty; rebuild the reference from entropies")
        return ref


def _spread_indices(n: int, k: int) -> torch.Tensor:
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
class EDAScores:
    """EDA scores of B target trajectories (float32, (B,) each).

    `distance` D, the weighted combination of the parts (see the module doc of each
    estimator). `magnitude_gap` is the squared z-score of the magnitude, `magnitude_z`
    its signed root (negative: less entropy than the reference); `variation_gap` the
    mean squared z of total variation, volatility and forking share (calibrated; 0 for
    gaussian); `dynamics_gap` the phase shape's (calibrated) or mean_k z(dc_k)^2 (gaussian).
    """

    reward: torch.Tensor
    distance: torch.Tensor
    magnitude_gap: torch.Tensor
    magnitude_z: torch.Tensor
    variation_gap: torch.Tensor
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
        bins: K, used when `reference` is raw entropies; None: the reference's K when
            it is an `EDAReference`, else 32. A K that disagrees with a given
            reference is an error.
        estimator: "calibrated" (v2, default) or "gaussian" (v1); see the module doc.
        w_mag, w_var, w_dyn: weights of the magnitude, variation and dynamics parts of
            D (gaussian uses w_mag and w_dyn).
        direction: "both" (align) or "below" (calibrated only: penalize only less
            magnitude, variation or forking than the reference).
        eps: floor of the reference stds (nats), gaussian only.
        rel_floor: relative floor of the spreads, calibrated only.
        momentum: EMA weight kept by `update` (0 replaces the reference outright).

    Call `reward(entropies, mask)` for r_EDA (B,) or `score(...)` for all the gaps.
    """

    def __init__(
        self,
        reference: ReferenceLike,
        bins: int | None = None,
        estimator: str = DEFAULT_ESTIMATOR,
        w_mag: float = 1.0,
        w_var: float = 1.0,
        w_dyn: float = 1.0,
        direction: str = "both",
        eps: float = DEFAULT_EPS,
        rel_floor: float = DEFAULT_REL_FLOOR,
        momentum: float = 0.9,
    ) -> None:
        check_settings(estimator=estimator, w_mag=w_mag, w_var=w_var, w_dyn=w_dyn, direction=direction, eps=eps,
                       rel_floor=rel_floor)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1], got {momentum!r}")
        if isinstance(reference, (EDAReference, EntropyProfile)) and bins is not None and bins != reference.bins:
            raise ValueError(
                f"bins: {bins} disagrees with the reference's {reference.bins} bins; drop bins= or rebuild the "
                "reference with that K"
            )
        self.estimator, self.direction = estimator, direction
        self.w_mag, self.w_var, self.w_dyn, self.eps, self.rel_floor = w_mag, w_var, w_dyn, eps, rel_floor
        self.momentum = momentum
        self.reference = as_reference(reference, DEFAULT_BINS if bins is None else bins)

    @property
    def bins(self) -> int:
        return self.reference.bins

    @property
    def reference(self) -> EDAReference:
        return self._reference

    @reference.setter
    def reference(self, value: EDAReference) -> None:
        self._reference = value
        self._d0: float | None = None  # computed on first use, for these settings

    @property
    def d0(self) -> float:
        """D0 of the calibrated kernel: the median D of the reference's own trajectories (>= D0_FLOOR)."""
        if self._d0 is None:
            ref = self.reference
            distance = self._calibrated(ref.sample_features.double(), ref.sample_lengths)[0]
            self._d0 = max(float(distance.median()), D0_FLOOR)
        return self._d0

    def update(self, general: ReferenceLike, momentum: float | None = None) -> EDAReference:
        """Blend fresh general-domain statistics into the reference (EMA) and return it."""
        fresh = as_reference(general, self.bins)
        self.reference = self.reference.blend(fresh, self.momentum if momentum is None else momentum)
        return self.reference

    def _calibrated(self, raw: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """D and its parts (float64) for raw features (B, F) of trajectories of `lengths` tokens."""
        ref = self.reference
        x = _transform(raw, ref.level)
        scale = torch.ones_like(ref.feature_mean)
        scale[_LOG_FEATURES:] = ref.feature_mean[_LOG_FEATURES:].abs().clamp(min=1e-2)  # shares: relative floors
        floor = (self.rel_floor * scale) ** 2
        tokens = lengths.double().clamp(min=1)[:, None]
        spread = (ref.between_var[None, :] + ref.token_var[None, :] / tokens).clamp(min=floor).sqrt()
        z = (x - ref.feature_mean[None, :]) / spread
        if self.direction == "below":
            z = torch.cat([z[:, :_ONE_SIDED].clamp(max=0.0), z[:, _ONE_SIDED:]], 1)
        sq = (z**2).clamp(max=_RAW_MAX)
        mag, var, dyn = sq[:, 0], sq[:, 1:_ONE_SIDED].mean(1), sq[:, _ONE_SIDED:].mean(1)
        weights = (self.w_mag, self.w_var, self.w_dyn)
        distance = sum(w * part for w, part in zip(weights, (mag, var, dyn)) if w > 0) / sum(weights)
        return distance, mag, z[:, 0], var, dyn

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
            if self.estimator == "calibrated" and profile.forking_threshold != ref.forking_threshold:
                raise ValueError(
                    "entropies: these profiles count forking tokens above another threshold than the reference's; "
                    "profile them with forking_threshold=reference.forking_threshold"
                )
        else:
            profile = EntropyProfile.from_entropies(
                entropies, mask, bins=ref.bins, forking_threshold=ref.forking_threshold
            )
        if self.estimator == "gaussian":
            m_z = (profile.magnitude.double() - ref.magnitude_mean) / max(ref.magnitude_std, self.eps)
            d_z = (profile.diff.double() - ref.diff_mean.double()) / ref.diff_std.double().clamp(min=self.eps)
            mag_gap = m_z**2
            var_gap = torch.zeros_like(mag_gap)
            dyn_gap = (d_z**2).mean(1)
            distance = self.w_mag * mag_gap + self.w_dyn * dyn_gap
            reward = torch.exp(-distance / 2)
        else:
            distance, mag_gap, m_z, var_gap, dyn_gap = self._calibrated(raw_features(profile), profile.lengths)
            reward = 1.0 / (1.0 + distance / self.d0)
        return EDAScores(
            reward=reward.clamp(min=_REWARD_FLOOR, max=1.0).float(),
            distance=distance.float(),
            magnitude_gap=mag_gap.float(),
            magnitude_z=m_z.float(),
            variation_gap=var_gap.float(),
            dynamics_gap=dyn_gap.float(),
            profile=profile,
        )

    def reward(self, entropies: EntropiesLike | EntropyProfile, mask: Any = None) -> torch.Tensor:
        """r_EDA in (0, 1] per trajectory, shape (B,)."""
        return self.score(entropies, mask).reward

    __call__ = reward


def check_settings(
    estimator: str = DEFAULT_ESTIMATOR,
    w_mag: float = 1.0,
    w_var: float = 1.0,
    w_dyn: float = 1.0,
    direction: str = "both",
    eps: float = DEFAULT_EPS,
    rel_floor: float = DEFAULT_REL_FLOOR,
) -> None:
    """Clear errors for bad EDA settings (the integrations call this before any work)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {DIRECTIONS}, got {direction!r}")
    if estimator == "gaussian" and direction != "both":
        raise ValueError('direction: "below" is a calibrated-estimator option; use estimator="calibrated"')
    for name, value in (("w_mag", w_mag), ("w_var", w_var), ("w_dyn", w_dyn)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: expected a finite weight >= 0, got {value!r}")
    if w_mag + w_var + w_dyn <= 0:
        raise ValueError("w_mag, w_var, w_dyn: at least one weight must be > 0")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: expected a small positive std floor, got {eps!r}")
    if not (math.isfinite(rel_floor) and rel_floor > 0):
        raise ValueError(f"rel_floor: expected a small positive relative floor (e.g. 0.05), got {rel_floor!r}")


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
