"""Entropy Dynamics Alignment: the EDA reward of HEAL (docs/method.md, "Reference" and "EDA reward").

Two estimators score a target trajectory against a general-domain reference R:
"calibrated" (v2, the default; `calibrated.py`) and "gaussian" (v1; `gaussian.py`),
each a class behind the `Estimator` interface (`base.py`), registered by name in
`ESTIMATOR_CLASSES`. `EDAReference` (`reference.py`) holds every estimator's statistics
of R; `EDASettings` (`settings.py`) says which estimator scores and how; `EDAReward`
(`reward.py`) ties them together:

    EDAReward(general_entropies, settings=EDASettings(estimator="gaussian")).reward(target_entropies)
"""

from .base import EDAScores, Estimator
from .calibrated import FEATURE_NAMES, CalibratedEstimator, CalibratedStats, feature_names, raw_features
from .estimators import ESTIMATOR_CLASSES
from .gaussian import GaussianEstimator, GaussianStats
from .reference import EDAReference, ReferenceLike, as_reference
from .reward import EDAReward
from .settings import (
    DEFAULT_EDA_WEIGHT,
    DEFAULT_ESTIMATOR,
    DIRECTIONS,
    ESTIMATORS,
    REFERENCE_MODES,
    EDASettings,
    SettingError,
)

__all__ = [
    "DEFAULT_EDA_WEIGHT",
    "DEFAULT_ESTIMATOR",
    "DIRECTIONS",
    "ESTIMATORS",
    "ESTIMATOR_CLASSES",
    "FEATURE_NAMES",
    "REFERENCE_MODES",
    "CalibratedEstimator",
    "CalibratedStats",
    "EDAReference",
    "EDAReward",
    "EDAScores",
    "EDASettings",
    "Estimator",
    "GaussianEstimator",
    "GaussianStats",
    "ReferenceLike",
    "SettingError",
    "as_reference",
    "feature_names",
    "raw_features",
]
