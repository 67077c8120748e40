"""EDAReference: the general-domain reference R that every EDA estimator scores against (docs/method.md, "Reference").

It holds what all estimators share (`bins`, `count`, the mean curve and its spread
for plots and bands) and each estimator's own statistics, field for field
(`GaussianStats`, `CalibratedStats`): each estimator fits, blends and loads its part,
so one reference, built once, serves any estimator and any settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sized
from dataclasses import dataclass
from typing import Any, Sequence, Union

import numpy as np
import torch

from ..profiles import DEFAULT_BINS, EntropiesLike, EntropyProfile
from .base import blend_moments, check_loaded, fields_of
from .calibrated import CalibratedStats
from .estimators import ESTIMATOR_CLASSES
from .gaussian import GaussianStats
from .settings import check_momentum


@dataclass(frozen=True)
class EDAReference(CalibratedStats, GaussianStats):
    """Statistics of general-domain entropy profiles (the reference R), for every estimator.

    Shared: `bins` K, `count` (trajectories behind it; an effective count after EMA),
    `curve_mean` / `curve_std` (K,) (population mean and std of the K-bin curves, for
    plots and bands). The gaussian estimator's fields are those of `GaussianStats`,
    the calibrated one's those of `CalibratedStats` (see their docs).
    """

    bins: int
    count: float
    curve_mean: torch.Tensor
    curve_std: torch.Tensor

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
        curve = profile.curve.double()
        parts = {name: value for estimator in ESTIMATOR_CLASSES.values()
                 for name, value in fields_of(estimator.fit(profile)).items()}
        return cls(bins=profile.bins, count=float(len(profile)), curve_mean=curve.mean(0).float(),
                   curve_std=curve.std(0, unbiased=False).float(), **parts)

    @classmethod
    def from_entropies(
        cls, entropies: EntropiesLike, mask: Any = None, bins: int = DEFAULT_BINS
    ) -> "EDAReference":
        """Reference from general-domain per-token entropies ((B, T) or a ragged list).

        The forking threshold is the 80th percentile of these tokens' entropies (any count).
        """
        return cls.from_profiles(EntropyProfile.from_entropies(entropies, mask, bins=bins))

    def blend(self, other: "EDAReference", momentum: float) -> "EDAReference":
        """EMA blend `momentum * self + (1 - momentum) * other`: first and second moments, each estimator its own part."""
        check_momentum(momentum)
        if other.bins != self.bins:
            raise ValueError(f"other: reference bins differ ({self.bins} vs {other.bins}); build both with one K")
        curve_mean, curve_std = blend_moments(self.curve_mean, self.curve_std, other.curve_mean, other.curve_std,
                                              momentum)
        parts = {name: value for estimator in ESTIMATOR_CLASSES.values()
                 for name, value in fields_of(estimator.blend(self, other, momentum)).items()}
        return EDAReference(bins=self.bins, count=momentum * self.count + (1.0 - momentum) * other.count,
                            curve_mean=curve_mean, curve_std=curve_std, **parts)

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
                f"data: missing reference fields {sorted(missing)}; rebuild the reference with "
                "EDAReference.from_entropies (or heal_hf.data.pool.pool_reference) and save its to_dict()"
            )
        bins = int(data["bins"])
        if bins < 2:
            raise ValueError(f"data: bins = {bins}; expected K >= 2")
        shared = dict(bins=bins, count=float(data["count"]),
                      curve_mean=torch.tensor(data["curve_mean"], dtype=torch.float32),
                      curve_std=torch.tensor(data["curve_std"], dtype=torch.float32))
        parts = {name: value for estimator in ESTIMATOR_CLASSES.values()
                 for name, value in fields_of(estimator.load(data, bins)).items()}
        ref = cls(**shared, **parts)
        check_loaded(ref, {"curve_mean": (bins,), "curve_std": (bins,)}, ("curve_std",), ("curve_mean", "count"), bins)
        return ref


ReferenceLike = Union[EDAReference, EntropyProfile, torch.Tensor, np.ndarray, list, Iterable[Sequence[float]]]


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
