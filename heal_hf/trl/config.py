"""HEALConfig: GRPOConfig plus HEAL's settings, each field with its help text."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import GRPOConfig

from ..core.eda import (
    DEFAULT_EPS,
    DEFAULT_ESTIMATOR,
    DEFAULT_REL_FLOOR,
    DIRECTIONS,
    ESTIMATORS,
)
from ..core.profiles import DEFAULT_BINS
from .reward import REFERENCE_MODES, EDARewardFunction


@dataclass
class HEALConfig(GRPOConfig):
    r"""GRPOConfig plus HEAL's settings (HEAL.md). Defaults are the paper's reading in HEAL.md.

    Parameters:
        eda_weight (`float`, defaults to `0.1`): lambda in r = r_verify + lambda * r_EDA.
        eda_reference (`str`, defaults to `"batch"`): where R comes from: "batch", "pool" or "ema".
        eda_momentum (`float`, defaults to `0.9`): EMA weight kept per batch ("ema").
        eda_bins (`int`, defaults to `32`): K, curve bins of the entropy profiles.
        eda_estimator (`str`, defaults to `"calibrated"`): "calibrated" (v2) or "gaussian" (v1), see `heal_hf.core.eda`.
        eda_w_mag, eda_w_var, eda_w_dyn (`float`, default `1.0`): weights of EDA's magnitude, variation
            (calibrated only) and dynamics parts.
        eda_direction (`str`, defaults to `"both"`): "below" penalizes only less entropy or variation than
            the reference (calibrated only).
        eda_eps (`float`, defaults to `1e-3`): floor of the reference stds in nats (gaussian only).
        eda_rel_floor (`float`, defaults to `0.05`): relative floor of the spreads (calibrated only).
        eda_min_reference_rows (`int`, defaults to `2`): fewest general rows for a batch reference.
        eda_only_correct (`bool`, defaults to `False`): EDA only for rollouts the verifier accepts.
        verifier (`str`, defaults to `"numeric"`): the verifier `eda_only_correct` uses.
        answer_column, domain_column (`str`): dataset columns of answers and domains.
        target_fraction (`float`, *optional*): share of target prompts in every generation
            batch; None keeps the dataset's share.
        scale_rewards (`str`, *optional*): TRL's advantage scaling. None (default) resolves to "batch"
            when EDA is on (`eda_weight` > 0) and to TRL's "group" otherwise. Under "group", a prompt whose
            rollouts are all right (or all wrong) has only the EDA term left to vary, and dividing by that
            group's std blows lambda * r_EDA up to unit-scale advantages: on the toy's validation split
            HEAL-32 fell to 0.07 sampled accuracy with "group" (at lambda 0.1 and 0.02 alike) and reached
            0.36 with "batch". Set "group" or "none" to choose yourself.
    """

    eda_weight: float = field(default=0.1, metadata={"help": "lambda in r = r_verify + lambda * r_EDA."})
    eda_reference: str = field(
        default="batch",
        metadata={"help": "Where the EDA reference comes from.", "choices": list(REFERENCE_MODES)},
    )
    eda_momentum: float = field(default=0.9, metadata={"help": "EMA weight kept per batch (eda_reference='ema')."})
    eda_bins: int = field(default=DEFAULT_BINS, metadata={"help": "K, the curve bins of the entropy profiles."})
    eda_estimator: str = field(
        default=DEFAULT_ESTIMATOR,
        metadata={"help": "EDA estimator: calibrated (v2) or gaussian (v1).", "choices": list(ESTIMATORS)},
    )
    eda_w_mag: float = field(default=1.0, metadata={"help": "Weight of EDA's magnitude part."})
    eda_w_var: float = field(default=1.0, metadata={"help": "Weight of EDA's variation part (calibrated)."})
    eda_w_dyn: float = field(default=1.0, metadata={"help": "Weight of EDA's dynamics part."})
    eda_direction: str = field(
        default="both",
        metadata={"help": "both: align with the reference; below: penalize only less entropy (calibrated).",
                  "choices": list(DIRECTIONS)},
    )
    eda_eps: float = field(default=DEFAULT_EPS, metadata={"help": "Floor of the reference stds in nats (gaussian)."})
    eda_rel_floor: float = field(
        default=DEFAULT_REL_FLOOR, metadata={"help": "Relative floor of the spreads (calibrated)."}
    )
    eda_min_reference_rows: int = field(
        default=2, metadata={"help": "Fewest general-domain rows that make a batch reference."}
    )
    eda_only_correct: bool = field(
        default=False, metadata={"help": "Give EDA only to rollouts the verifier accepts (others get 0)."}
    )
    verifier: str = field(
        default="numeric", metadata={"help": "Verifier for eda_only_correct: exact, numeric or math."}
    )
    answer_column: str = field(default="answer", metadata={"help": "Dataset column holding reference answers."})
    domain_column: str = field(default="domain", metadata={"help": "Dataset column holding 'target' / 'general'."})
    target_fraction: float | None = field(
        default=None,
        metadata={"help": "Share of target prompts in every generation batch; None keeps the dataset's share."},
    )
    scale_rewards: str | None = field(
        default=None,
        metadata={"help": "Advantage scaling: group, batch or none. Default: batch with EDA on (group-std scaling "
                          "would blow the small EDA term up where a group's correctness is constant), else group."},
    )

    def __post_init__(self) -> None:
        if self.scale_rewards is None:
            self.scale_rewards = "batch" if self.eda_weight > 0 else "group"
        super().__post_init__()
        if self.eda_reference not in REFERENCE_MODES:
            raise ValueError(f"eda_reference: expected one of {REFERENCE_MODES}, got {self.eda_reference!r}")
        if self.target_fraction is not None and not 0.0 < self.target_fraction < 1.0:
            raise ValueError(f"target_fraction: expected a share in (0, 1) or None, got {self.target_fraction!r}")
        if not (math.isfinite(self.eda_weight) and self.eda_weight >= 0):
            raise ValueError(f"eda_weight: expected lambda >= 0 (0 turns EDA off), got {self.eda_weight!r}")
        self.eda_reward()  # bad EDA settings fail now, before any run folder exists

    def eda_reward(self) -> EDARewardFunction:
        """The EDA reward function these settings describe (no model: the trainer supplies entropies)."""
        return EDARewardFunction(
            reference=self.eda_reference, weight=self.eda_weight, estimator=self.eda_estimator, bins=self.eda_bins,
            w_mag=self.eda_w_mag, w_var=self.eda_w_var, w_dyn=self.eda_w_dyn, direction=self.eda_direction,
            eps=self.eda_eps, rel_floor=self.eda_rel_floor, momentum=self.eda_momentum,
            min_reference_rows=self.eda_min_reference_rows, temperature=self.temperature,
            only_correct=self.eda_only_correct, verifier=self.verifier, answer_column=self.answer_column,
            domain_column=self.domain_column,
        )
