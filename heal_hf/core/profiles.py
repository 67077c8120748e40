"""Entropy dynamics profiles of trajectories (docs/method.md, "Entropy dynamics profile").

For one trajectory with token entropies H_1..H_T (nats):
- curve c in R^K: H resampled to K equal bins of normalized time; bin means when
  T >= K (bin k holds the tokens t with floor(t K / T) = k), linear interpolation at
  the bin centres when T < K. Both agree at T = K.
- magnitude m = mean_t H_t;
- differenced curve dc_k = c_{k+1} - c_k, k = 1..K-1;
- total variation mean_t |H_{t+1} - H_t|, volatility std_t(H_{t+1} - H_t)
  (population std over the T - 1 differences), and the forking share, the fraction
  of tokens with H_t above a threshold (the reference's 80th percentile);
- per-token variances (the sampling noise of those per-token means): var_t(H_t),
  var_t|H_{t+1} - H_t| and var_t|dH_t - mean(dH)|, which EDA's calibrated estimator
  turns into length-aware spreads.

Entropies are >= 0: a value below -1e-6 (log-probabilities passed by mistake) is an
error; rounding noise in [-1e-6, 0) is read as 0.

Documented edge values: T = 0 gives an all-zero profile; T = 1 gives a flat curve at
H_1 with zero variation; T = 2 gives volatility 0 (one difference). Nothing is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch

DEFAULT_BINS = 32
FORKING_QUANTILE = 0.8
NEGATIVE_TOLERANCE = 1e-6
"""Entropies in [-NEGATIVE_TOLERANCE, 0) are rounding noise and read as 0; lower ones are an error."""

EntropiesLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]


def pad_entropies(
    entropies: EntropiesLike, mask: torch.Tensor | np.ndarray | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalize entropies to a float32 (B, T) tensor and a bool (B, T) mask.

    Accepts a 2-D tensor/array (with an optional mask of the same shape) or a list of
    1-D sequences of different lengths (padded on the right). Raises ValueError on an
    empty batch, a wrong shape or non-finite values at unmasked positions.
    """
    if isinstance(entropies, (torch.Tensor, np.ndarray)):
        values = torch.as_tensor(entropies).detach().to("cpu", torch.float32)
        if values.dim() == 1:
            raise ValueError(
                f"entropies: expected a (B, T) batch, got a 1-D tensor of shape {tuple(values.shape)}; "
                "wrap a single trajectory as [entropies] or entropies[None]"
            )
        if values.dim() != 2:
            raise ValueError(f"entropies: expected shape (B, T), got {tuple(values.shape)}")
        if mask is None:
            valid = torch.ones(values.shape, dtype=torch.bool)
        else:
            valid = torch.as_tensor(mask).detach().to("cpu")
            if tuple(valid.shape) != tuple(values.shape):
                raise ValueError(
                    f"mask: expected the shape of entropies {tuple(values.shape)}, got {tuple(valid.shape)}"
                )
            valid = valid.to(torch.bool)
    else:
        if mask is not None:
            raise ValueError("mask: only allowed with a (B, T) tensor; a list of sequences carries its own lengths")
        try:
            rows = [torch.as_tensor(np.asarray(seq, dtype=np.float32)).reshape(-1) for seq in entropies]
        except (TypeError, ValueError) as err:
            raise ValueError(f"entropies: expected a list of 1-D number sequences ({err})") from None
        width = max((len(r) for r in rows), default=0)
        values = torch.zeros(len(rows), width)
        valid = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, r in enumerate(rows):
            values[i, : len(r)] = r
            valid[i, : len(r)] = True
    if values.shape[0] == 0:
        raise ValueError("entropies: the batch is empty; expected at least one trajectory")
    present = values[valid]
    if not bool(torch.isfinite(present).all()):
        raise ValueError("entropies: found NaN or inf at unmasked positions; entropies must be finite (nats)")
    if present.numel() and float(present.min()) < -NEGATIVE_TOLERANCE:
        raise ValueError(
            f"entropies: found a negative value ({float(present.min()):.4g}); token entropies are >= 0 nats. "
            "Log-probabilities passed by mistake? Compute entropies with heal_hf.token_entropy(logits)"
        )
    return values.masked_fill(~valid, 0.0).clamp(min=0.0), valid


def forking_quantile(tokens: torch.Tensor | np.ndarray) -> float:
    """The forking threshold of a reference: the 80th percentile of its token entropies (nats).

    Linear interpolation, like torch.quantile, but with no limit on the number of tokens.
    """
    values = np.asarray(tokens.detach().cpu().double() if isinstance(tokens, torch.Tensor) else tokens, dtype=np.float64)
    return float(np.quantile(values, FORKING_QUANTILE)) if values.size else 0.0


def _pack_left(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Move each row's valid entries to its front, keeping their order."""
    batch, width = values.shape
    pos = valid.long().cumsum(1) - 1
    target = torch.where(valid, pos, torch.full_like(pos, width))  # invalid -> spill column
    packed = torch.zeros(batch, width + 1, dtype=values.dtype)
    packed.scatter_(1, target, values)
    return packed[:, :width]


def _resample(packed: torch.Tensor, lengths: torch.Tensor, bins: int) -> torch.Tensor:
    """(B, T) left-packed values with row lengths -> (B, K) curves (see module doc)."""
    batch, width = packed.shape
    curve = torch.zeros(batch, bins, dtype=packed.dtype)
    if width == 0:
        return curve
    safe_len = lengths.clamp(min=1)
    # Bin means (rows with T >= K): bin of token t is floor(t K / T).
    t = torch.arange(width).expand(batch, width)
    in_row = t < lengths[:, None]
    bin_of = torch.where(in_row, (t * bins) // safe_len[:, None], torch.full_like(t, bins))
    sums = torch.zeros(batch, bins + 1, dtype=packed.dtype).scatter_add_(1, bin_of, packed)
    counts = torch.zeros(batch, bins + 1, dtype=packed.dtype).scatter_add_(1, bin_of, in_row.to(packed.dtype))
    means = sums[:, :bins] / counts[:, :bins].clamp(min=1)
    # Linear interpolation at bin centres (rows with T < K).
    centres = (torch.arange(bins, dtype=torch.float64) + 0.5)[None, :] * safe_len[:, None] / bins - 0.5
    centres = torch.minimum(centres.clamp(min=0.0), (safe_len[:, None] - 1).to(torch.float64))
    lo = centres.floor().long()
    hi = torch.minimum(lo + 1, safe_len[:, None] - 1)
    w = (centres - lo).to(packed.dtype)
    interp = (1 - w) * packed.gather(1, lo) + w * packed.gather(1, hi)
    curve = torch.where((lengths >= bins)[:, None], means, interp)
    return torch.where((lengths > 0)[:, None], curve, torch.zeros_like(curve))


@dataclass(frozen=True)
class EntropyProfile:
    """Entropy dynamics profiles of a batch of B trajectories (all float32, nats).

    Fields: `curve` (B, K); `magnitude`, `total_variation`, `volatility`,
    `forking_share` (B,); `lengths` (B,) int64 token counts; `forking_threshold`,
    the entropy (nats) above which a token counts as forking; `token_var` (B, 3), the
    per-token variances var_t(H_t), var_t|dH_t|, var_t|dH_t - mean dH| (nats^2; None on
    profiles rebuilt from stored columns, which the calibrated EDA reference cannot use).
    """

    curve: torch.Tensor
    magnitude: torch.Tensor
    total_variation: torch.Tensor
    volatility: torch.Tensor
    forking_share: torch.Tensor
    lengths: torch.Tensor
    forking_threshold: float
    token_var: torch.Tensor | None = None

    @classmethod
    def from_entropies(
        cls,
        entropies: EntropiesLike,
        mask: torch.Tensor | np.ndarray | None = None,
        bins: int = DEFAULT_BINS,
        forking_threshold: float | None = None,
    ) -> "EntropyProfile":
        """Profiles from per-token entropies.

        Args:
            entropies: (B, T) tensor/array, or a list of B 1-D sequences (ragged).
            mask: optional (B, T) validity mask (any layout: left or right padding).
            bins: K, the number of curve bins (>= 2).
            forking_threshold: nats; None uses the 80th percentile of these tokens
                (what a reference set does for itself).
        """
        if not isinstance(bins, int) or bins < 2:
            raise ValueError(f"bins: expected an integer K >= 2, got {bins!r}")
        values, valid = pad_entropies(entropies, mask)
        lengths = valid.sum(1)
        if forking_threshold is None:
            forking_threshold = forking_quantile(values[valid])
        elif not np.isfinite(forking_threshold):
            raise ValueError(f"forking_threshold: expected a finite number of nats, got {forking_threshold!r}")
        packed = _pack_left(values, valid).double()
        n = lengths.double()
        width = packed.shape[1]
        t = torch.arange(width)
        in_row = t[None, :] < lengths[:, None]
        magnitude = packed.sum(1) / n.clamp(min=1)
        diffs = packed[:, 1:] - packed[:, :-1]
        in_diff = in_row[:, 1:]  # diff t is valid when token t+1 is
        n_diff = (lengths - 1).clamp(min=0).double()
        diffs = diffs * in_diff
        total_variation = diffs.abs().sum(1) / n_diff.clamp(min=1)
        diff_mean = diffs.sum(1) / n_diff.clamp(min=1)
        diff_var = ((diffs - diff_mean[:, None]) ** 2 * in_diff).sum(1) / n_diff.clamp(min=1)
        forking = ((packed > forking_threshold) & in_row).sum(1).double() / n.clamp(min=1)
        curve = _resample(packed, lengths, bins)
        # Per-token variances: how noisy magnitude, total variation and volatility are at length T.
        entropy_var = ((packed - magnitude[:, None]) ** 2 * in_row).sum(1) / n.clamp(min=1)
        abs_diff = diffs.abs()
        abs_diff_var = ((abs_diff - total_variation[:, None]) ** 2 * in_diff).sum(1) / n_diff.clamp(min=1)
        abs_dev = (diffs - diff_mean[:, None]).abs() * in_diff
        abs_dev_mean = abs_dev.sum(1) / n_diff.clamp(min=1)
        abs_dev_var = ((abs_dev - abs_dev_mean[:, None]) ** 2 * in_diff).sum(1) / n_diff.clamp(min=1)
        return cls(
            curve=curve.float(),
            magnitude=magnitude.float(),
            total_variation=total_variation.float(),
            volatility=diff_var.clamp(min=0).sqrt().float(),
            forking_share=forking.float(),
            lengths=lengths.long(),
            forking_threshold=float(forking_threshold),
            token_var=torch.stack([entropy_var, abs_diff_var, abs_dev_var], 1).float(),
        )

    @property
    def bins(self) -> int:
        return int(self.curve.shape[1])

    @property
    def diff(self) -> torch.Tensor:
        """(B, K-1) differenced curve dc_k = c_{k+1} - c_k."""
        return self.curve[:, 1:] - self.curve[:, :-1]

    def __len__(self) -> int:
        return int(self.curve.shape[0])

    def __getitem__(self, index: int | slice | torch.Tensor | Sequence[int]) -> "EntropyProfile":
        if isinstance(index, int):
            index = [index]
        pick = (lambda x: x[index]) if isinstance(index, slice) else (lambda x: x[torch.as_tensor(index)])
        return EntropyProfile(
            curve=pick(self.curve),
            magnitude=pick(self.magnitude),
            total_variation=pick(self.total_variation),
            volatility=pick(self.volatility),
            forking_share=pick(self.forking_share),
            lengths=pick(self.lengths),
            forking_threshold=self.forking_threshold,
            token_var=None if self.token_var is None else pick(self.token_var),
        )

    @staticmethod
    def concat(profiles: Sequence["EntropyProfile"]) -> "EntropyProfile":
        """Join batches profiled with the same bins and forking threshold."""
        if not profiles:
            raise ValueError("profiles: expected at least one EntropyProfile to concatenate")
        first = profiles[0]
        for p in profiles[1:]:
            if p.bins != first.bins:
                raise ValueError(f"profiles: bins differ ({first.bins} vs {p.bins}); re-profile with one K")
            if p.forking_threshold != first.forking_threshold:
                raise ValueError("profiles: forking thresholds differ; profile them against one reference")
        with_var = all(p.token_var is not None for p in profiles)
        return EntropyProfile(
            **{
                name: torch.cat([getattr(p, name) for p in profiles])
                for name in ("curve", "magnitude", "total_variation", "volatility", "forking_share", "lengths")
            },
            forking_threshold=first.forking_threshold,
            token_var=torch.cat([p.token_var for p in profiles]) if with_var else None,
        )

    def features(self) -> torch.Tensor:
        """(B, K + 4) profile features: curve, magnitude, total variation, volatility, forking share."""
        return torch.cat(
            [
                self.curve,
                torch.stack([self.magnitude, self.total_variation, self.volatility, self.forking_share], 1),
            ],
            1,
        )

    def to_dict(self) -> dict[str, list]:
        """Plain lists per field (one entry per trajectory), e.g. for `datasets` columns."""
        return {
            "curve": self.curve.tolist(),
            "magnitude": self.magnitude.tolist(),
            "total_variation": self.total_variation.tolist(),
            "volatility": self.volatility.tolist(),
            "forking_share": self.forking_share.tolist(),
            "length": self.lengths.tolist(),
        }
