"""HEALConfig: GRPOConfig plus HEAL's settings, each field with its help text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from ..core.eda import DEFAULT_EDA_WEIGHT, REFERENCE_MODES, EDASettings, SettingError
from ..core.profiles import DEFAULT_BINS
from ..core.rollout_metrics import check_rollout_metrics
from .reward import EDARewardFunction


def _eda_setting(name: str) -> Any:
    """A HEALConfig field for `EDASettings.<name>`: the same default, help text and choices."""
    source = EDASettings.__dataclass_fields__[name]
    metadata = {"help": source.metadata["help"]}
    if "choices" in source.metadata:
        metadata["choices"] = list(source.metadata["choices"])
    return field(default=source.default, metadata=metadata)


@dataclass
class HEALConfig(GRPOConfig):
    r"""GRPOConfig plus HEAL's settings (docs/method.md); the defaults are the method's.

    The optimizer recipe is GRPOConfig's own (learning_rate, warmup_steps, lr_scheduler_type). The
    one measured here, on the toy replication: learning_rate 5e-5, warmup over 10% of max_steps,
    linear decay (`heal-hf replicate`'s default). 2e-4 without warmup dropped even GRPO on 1,000
    problems 0.15-0.29 below the base model in its first 25 steps, and warmup alone did not stop
    the fall once the rate peaked (benchmarks/results/replicate-v3-cpu/recipe). Lower the rate
    before reading anything into an early accuracy drop.

    HEAL's own settings were then tuned on the toy's validation split, one at a time from these
    defaults (lambda 0.03 / 0.3, target fraction 0.5, the Gaussian estimator, direction "below", the
    pool as reference): none beat the defaults by more than 0.01 sampled accuracy, so the defaults
    stand (benchmarks/results/replicate-v3-cpu/tuning).

    Parameters:
        eda_weight (`float`, defaults to `0.1`): lambda in r = r_verify + lambda * r_EDA.
        eda_reference (`str`, defaults to `"batch"`): where R comes from: "batch", "pool" or "ema".
        eda_bins (`int`, defaults to `32`): K, curve bins of the entropy profiles.
        eda_estimator, eda_w_mag, eda_w_var, eda_w_dyn, eda_direction, eda_eps, eda_rel_floor, eda_momentum:
            the fields of `heal_hf.EDASettings` (same defaults and help), flat for the command line and YAML;
            `eda_settings` is the one `EDASettings` they make.
        eda_min_reference_rows (`int`, defaults to `2`): fewest general rows for a batch reference.
        eda_only_correct (`bool`, defaults to `False`): EDA only for rollouts the verifier accepts.
        verifier (`str`, defaults to `"numeric"`): the verifier `eda_only_correct` uses.
        answer_column, domain_column (`str`): dataset columns of answers and domains.
        rollout_metrics (`list[str]`, defaults to `[]`): registered rollout metrics
            (`heal_hf.core.rollout_metrics`: a number per completion text, e.g. "length", or the toy's
            "try_check") whose means per domain are logged as `heal/<name>/<domain>` every batch.
        target_fraction (`float`, *optional*): share of target prompts in every generation
            batch; None keeps the dataset's share.
        scale_rewards (`str`, *optional*): TRL's advantage scaling. None (default) resolves to "batch"
            when EDA is on (`eda_weight` > 0) and to TRL's "group" otherwise. Under "group", a prompt whose
            rollouts are all right (or all wrong) has only the EDA term left to vary, and dividing by that
            group's std blows lambda * r_EDA up to unit-scale advantages: on the toy's validation split
            HEAL-32 fell to 0.07 sampled accuracy with "group" (at lambda 0.1 and 0.02 alike) and reached
            0.36 with "batch". Set "group" or "none" to choose yourself.
    """

    eda_weight: float = field(default=DEFAULT_EDA_WEIGHT, metadata={"help": "lambda in r = r_verify + lambda * r_EDA."})
    eda_reference: str = field(
        default=REFERENCE_MODES[0],
        metadata={"help": "Where the EDA reference comes from.", "choices": list(REFERENCE_MODES)},
    )
    eda_bins: int = field(default=DEFAULT_BINS, metadata={"help": "K, the curve bins of the entropy profiles."})
    eda_estimator: str = _eda_setting("estimator")
    eda_w_mag: float = _eda_setting("w_mag")
    eda_w_var: float = _eda_setting("w_var")
    eda_w_dyn: float = _eda_setting("w_dyn")
    eda_direction: str = _eda_setting("direction")
    eda_eps: float = _eda_setting("eps")
    eda_rel_floor: float = _eda_setting("rel_floor")
    eda_momentum: float = _eda_setting("momentum")
    eda_min_reference_rows: int = field(
        default=2, metadata={"help": "Fewest general-domain rows that make a batch reference."}
    )
    eda_only_correct: bool = field(
        default=False, metadata={"help": "Give EDA only to rollouts the verifier accepts (others get 0)."}
    )
    verifier: str = field(
        default="numeric", metadata={"help": "Verifier for eda_only_correct: exact, one_of, numeric or math."}
    )
    answer_column: str = field(default="answer", metadata={"help": "Dataset column holding reference answers."})
    domain_column: str = field(default="domain", metadata={"help": "Dataset column holding 'target' / 'general'."})
    target_fraction: float | None = field(
        default=None,
        metadata={"help": "Share of target prompts in every generation batch; None keeps the dataset's share."},
    )
    rollout_metrics: list[str] = field(
        default_factory=list,
        metadata={"help": "Registered rollout metrics (heal_hf.core.rollout_metrics) logged per domain as "
                          "heal/<name>/<domain>, e.g. length, or try_check after `import heal_hf.toy`."},
    )
    scale_rewards: str | None = field(
        default=None,
        metadata={"help": "Advantage scaling: group, batch or none. Default: batch with EDA on (group-std scaling "
                          "would blow the small EDA term up where a group's correctness is constant), else group."},
    )

    def __post_init__(self) -> None:
        check_rollout_metrics(self.rollout_metrics)
        if self.scale_rewards is None:
            self.scale_rewards = "batch" if self.eda_weight > 0 else "group"
        super().__post_init__()
        if self.target_fraction is not None and not 0.0 < self.target_fraction < 1.0:
            raise ValueError(f"target_fraction: expected a share in (0, 1) or None, got {self.target_fraction!r}")
        try:
            self.eda_reward()  # bad EDA settings fail now, before any run folder exists
        except SettingError as err:  # named as this config's field
            raise SettingError(err.field if err.field == "temperature" else f"eda_{err.field}", err.problem) from None

    @property
    def eda_settings(self) -> EDASettings:
        """The `EDASettings` of the flat eda_* fields."""
        return EDASettings(**{name: getattr(self, f"eda_{name}") for name in EDASettings.__dataclass_fields__})

    def eda_reward(self) -> EDARewardFunction:
        """The EDA reward function these settings describe (no model: the trainer supplies entropies)."""
        return EDARewardFunction(
            reference=self.eda_reference, weight=self.eda_weight, bins=self.eda_bins, settings=self.eda_settings,
            min_reference_rows=self.eda_min_reference_rows, temperature=self.temperature,
            only_correct=self.eda_only_correct, verifier=self.verifier, answer_column=self.answer_column,
            domain_column=self.domain_column,
        )
