"""HEAL for TRL, split as TRL splits GRPO: `HEALConfig` (config), the EDA reward (reward), the
domain-mixing sampler (sampler) and `HEALGRPOTrainer` (trainer).

    from heal_hf.trl import HEALGRPOTrainer, HEALConfig, eda_reward_function
"""

from ..metrics import (
    EDA_METRIC_PATH,  # a user's script needs only `from heal_hf.trl import ...`
)
from .config import HEALConfig
from .entropy import GenerationEntropyRecorder, policy_token_entropies
from .monitor import EntropyMonitor
from .reward import (
    DOMAINS,
    ENTROPIES_KWARG,
    REFERENCE_MODES,
    EDARewardFunction,
    as_pool_reference,
    eda_reward_function,
)
from .sampler import DomainMixSampler, batch_target_count
from .trainer import ENTROPY_SOURCES, HEALGRPOTrainer

__all__ = [
    "DOMAINS",
    "EDA_METRIC_PATH",
    "ENTROPIES_KWARG",
    "ENTROPY_SOURCES",
    "REFERENCE_MODES",
    "DomainMixSampler",
    "EDARewardFunction",
    "EntropyMonitor",
    "GenerationEntropyRecorder",
    "HEALConfig",
    "HEALGRPOTrainer",
    "as_pool_reference",
    "batch_target_count",
    "eda_reward_function",
    "policy_token_entropies",
]
