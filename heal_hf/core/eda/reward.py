"""EDAReward: the EDA reward of target trajectories against a general-domain reference, updatable online."""

from __future__ import annotations

from typing import Any

import torch

from ..profiles import DEFAULT_BINS, EntropiesLike, EntropyProfile
from .base import EDAScores, Estimator
from .estimators import ESTIMATOR_CLASSES
from .reference import EDAReference, ReferenceLike, as_reference
from .settings import EDASettings


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
        settings: the `EDASettings` to score with (default `EDASettings()`: the
            calibrated estimator).
        **changes: EDASettings fields that override `settings`, e.g. `estimator="gaussian"`.

    Call `reward(entropies, mask)` for r_EDA (B,) or `score(...)` for all the gaps.
    """

    def __init__(
        self,
        reference: ReferenceLike,
        bins: int | None = None,
        settings: EDASettings | None = None,
        **changes: Any,
    ) -> None:
        self.settings = (EDASettings() if settings is None else settings).replace(**changes)
        if isinstance(reference, (EDAReference, EntropyProfile)) and bins is not None and bins != reference.bins:
            raise ValueError(
                f"bins: {bins} disagrees with the reference's {reference.bins} bins; drop bins= or rebuild the "
                "reference with that K"
            )
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
        self._estimator: Estimator | None = None  # made on first use, for this reference and these settings

    @property
    def estimator(self) -> Estimator:
        """The estimator `settings.estimator` names, scoring against the current reference."""
        if self._estimator is None:
            self._estimator = ESTIMATOR_CLASSES[self.settings.estimator](self.reference, self.settings)
        return self._estimator

    @property
    def d0(self) -> float | None:
        """The kernel's D0 (calibrated: the median D of the reference's own trajectories); None for gaussian."""
        return self.estimator.d0

    def update(self, general: ReferenceLike, momentum: float | None = None) -> EDAReference:
        """Blend fresh general-domain statistics into the reference (EMA, `settings.momentum` by default) and return it."""
        fresh = as_reference(general, self.bins)
        self.reference = self.reference.blend(fresh, self.settings.momentum if momentum is None else momentum)
        return self.reference

    def score(self, entropies: EntropiesLike | EntropyProfile, mask: Any = None) -> EDAScores:
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
        return self.estimator.score(profile)

    def reward(self, entropies: EntropiesLike | EntropyProfile, mask: Any = None) -> torch.Tensor:
        """r_EDA in (0, 1] per trajectory, shape (B,)."""
        return self.score(entropies, mask).reward

    __call__ = reward
