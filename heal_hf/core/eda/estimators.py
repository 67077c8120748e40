"""The EDA estimators by name: `ESTIMATOR_CLASSES[settings.estimator]` scores with that one."""

from __future__ import annotations

from .base import Estimator
from .calibrated import CalibratedEstimator
from .gaussian import GaussianEstimator

ESTIMATOR_CLASSES: dict[str, type[Estimator]] = {cls.name: cls for cls in (CalibratedEstimator, GaussianEstimator)}
"""Every estimator's statistics are fitted into each `EDAReference`; the keys are `settings.ESTIMATORS`."""
