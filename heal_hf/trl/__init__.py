"""HEAL for TRL, split as TRL splits GRPO: `HEALConfig` (config), the EDA reward (reward), the
domain-mixing sampler (sampler), where the trainer's entropies come from (entropy) and
`HEALGRPOTrainer` (trainer).

    from heal_hf.trl import HEALGRPOTrainer, HEALConfig, eda_reward_function
"""

from ..metrics import (
    EDA_METRIC_PATH,  # a user's script needs only `from heal_hf.trl import ...`
)
from .config import HEALConfig
from .entropy import (
    ENTROPY_SOURCES,
    FAST_PATH_TRL,
    GenerationEntropyRecorder,
    TrainerEntropies,
    entropy_source,
    policy_token_entropies,
)
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
from .trainer import TRL_PRIVATE_OVERRIDES, EDAStateCallback, HEALGRPOTrainer

__all__ = [
    "DOMAINS",
    "EDA_METRIC_PATH",
    "ENTROPIES_KWARG",
    "ENTROPY_SOURCES",
    "FAST_PATH_TRL",
    "REFERENCE_MODES",
    "TRL_PRIVATE_OVERRIDES",
    "DomainMixSampler",
    "EDARewardFunction",
    "EDAStateCallback",
    "EntropyMonitor",
    "GenerationEntropyRecorder",
    "HEALConfig",
    "HEALGRPOTrainer",
    "TrainerEntropies",
    "as_pool_reference",
    "batch_target_count",
    "eda_reward_function",
    "entropy_source",
    "policy_token_entropies",
]
