"""EDASettings: how the EDA reward scores a trajectory against the reference (docs/method.md, "EDA reward").

One frozen object carries the settings everywhere (EDAReward, the TRL reward function,
HEALConfig, the evaluate metric, `heal-hf train`), and checks them once, when it is made.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

ESTIMATORS = ("calibrated", "gaussian")
"""The estimators by name; `heal_hf.core.eda.ESTIMATOR_CLASSES` maps each name to its class."""
DEFAULT_ESTIMATOR = ESTIMATORS[0]
DIRECTIONS = ("both", "below")
REFERENCE_MODES = ("batch", "pool", "ema")
"""Where the reference R comes from in training: the batch's general rows, the general-entropy pool, or their EMA blend."""
DEFAULT_EDA_WEIGHT = 0.1
"""lambda in r = r_verify + lambda * r_EDA (docs/method.md, "Combined reward")."""


class SettingError(ValueError):
    """A bad setting: `field` names it; the message reads "field: what is wrong and the fix"."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field, self.problem = field_name, problem


def check_momentum(momentum: float) -> None:
    """Raise SettingError unless `momentum` (the EMA weight kept from the old reference) is in [0, 1]."""
    if not (isinstance(momentum, numbers.Real) and 0.0 <= momentum <= 1.0):
        raise SettingError("momentum", f"expected the EMA weight kept per update, a number in [0, 1], got {momentum!r}")


@dataclass(frozen=True)
class EDASettings:
    """The EDA reward's settings. Each field carries its help text; bad values raise `SettingError` on creation.

    `EDASettings().replace(w_mag=0.5)` is a copy with one setting changed (checked too).
    """

    estimator: str = field(
        default=DEFAULT_ESTIMATOR,
        metadata={"help": "EDA estimator: calibrated (v2: 1 / (1 + D / D0), 0.5 = a typical general trajectory) "
                          "or gaussian (v1: exp(-D / 2))", "choices": ESTIMATORS},
    )
    w_mag: float = field(default=1.0, metadata={"help": "weight of D's magnitude part"})
    w_var: float = field(default=1.0, metadata={"help": "weight of D's variation part (calibrated only)"})
    w_dyn: float = field(default=1.0, metadata={"help": "weight of D's dynamics part"})
    direction: str = field(
        default="both",
        metadata={"help": "both: align with the reference; below: penalize only less magnitude, variation or "
                          "forking than the reference (calibrated only)", "choices": DIRECTIONS},
    )
    eps: float = field(default=1e-3, metadata={"help": "floor of the reference stds, in nats (gaussian only)"})
    rel_floor: float = field(
        default=0.05, metadata={"help": "floor of the spreads relative to each feature's level (calibrated only)"}
    )
    momentum: float = field(
        default=0.9, metadata={"help": "EMA weight an update keeps from the old reference (0 replaces it)"}
    )

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise SettingError("estimator", f"expected one of {ESTIMATORS}, got {self.estimator!r}")
        if self.direction not in DIRECTIONS:
            raise SettingError("direction", f"expected one of {DIRECTIONS}, got {self.direction!r}")
        if self.estimator == "gaussian" and self.direction != "both":
            raise SettingError("direction", '"below" needs the calibrated estimator; use "both" with the gaussian one')
        for name in ("w_mag", "w_var", "w_dyn"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
                raise SettingError(name, f"expected a finite weight >= 0, got {value!r}")
        if self.w_mag + self.w_var + self.w_dyn <= 0:
            raise SettingError("w_mag", "w_mag, w_var and w_dyn are all 0; give at least one weight a value > 0")
        for name, example in (("eps", "1e-3"), ("rel_floor", "0.05")):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
                raise SettingError(name, f"expected a small positive floor (e.g. {example}), got {value!r}")
        check_momentum(self.momentum)

    def replace(self, **changes: Any) -> "EDASettings":
        """A copy with `changes` (EDASettings field names) applied and checked."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise SettingError(unknown[0], f"not an EDA setting; the settings are {names}")
        return dataclasses.replace(self, **changes) if changes else self
