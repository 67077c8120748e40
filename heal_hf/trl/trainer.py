"""HEAL for TRL's GRPOTrainer: the EDA reward, `HEALConfig` and `HEALGRPOTrainer`.

Two ways in, same rewards on the same batch:

- Drop-in, for an existing GRPO script: `eda_reward_function(evaluate.load("heal/eda"),
  model, tokenizer)` is a plain TRL reward function. Per batch it recomputes each
  completion's token entropies under the current policy with one no-grad forward.
- `HEALGRPOTrainer(model, reward_funcs, args=HEALConfig(...), train_dataset=mixed)`:
  the same reward, with the entropies taken from a pass TRL already runs (see
  `heal_hf.trl.entropy.TrainerEntropies`: TRL's scoring forward, or a hook on
  transformers' `generate`; else one no-grad forward, said once in the logs), and every
  generation batch mixing target and general rows in a fixed ratio. No extra model
  forward whenever TRL runs one of those passes, with any generator TRL offers.

Both return lambda * r_EDA for target-domain rows and None ("not applicable") for
general-domain rows, so TRL's sum gives r = r_verify + lambda * r_EDA (docs/method.md).
The reference R comes from the batch's general rows (gathered across processes), the
general-entropy pool, or an EMA blend of both. Logged through TRL's `log_metric`:
`heal/entropy/<domain>` (mean token entropy, nats), `heal/entropy_retention/<domain>`
(entropy now / entropy at step 0), `heal/reward/<domain>` (mean total reward),
`heal/eda_reward` (mean r_EDA of target rows, before lambda), `heal/eda_distance` and its
parts `heal/eda_magnitude|variation|dynamics` (means over target rows), `heal/eda_d0` (the
calibrated kernel's D0 for this batch's reference) and `heal/reference_count`
(trajectories behind R), and `heal/<name>/<domain>` for every name in HEALConfig's `rollout_metrics`
(`heal_hf.core.rollout_metrics`: a behaviour's mean over the domain's completions). The EDA state (step-0 entropies, running references) is saved
in every checkpoint and restored on resume by `EDAStateCallback`.

Several processes (tested with `heal-hf train` on 2 CPU processes): accelerate 1.15
starts only one process for `--cpu --num_processes 2`, so on CPUs launch with torchrun:

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \\
        --dynamo_backend no -m heal_hf.cli train --model M --target DATA --output-dir D
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate.utils import gather_object
from torch.utils.data import Sampler
from transformers import PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
from trl import GRPOTrainer

from .. import HEAL_BIBTEX
from ..core.rollout_metrics import rollout_metric_means
from ..core.verifiers import completion_text
from ..data.files import write_json_atomic
from ..data.run_folder import STATE_FILE
from .config import HEALConfig
from .entropy import TrainerEntropies, entropy_source
from .reward import DOMAINS, ENTROPIES_KWARG, EDARewardFunction
from .sampler import DomainMixSampler

logger = logging.getLogger(__name__)

TRL_PRIVATE_OVERRIDES = {
    "_get_train_sampler": "every generation batch mixes target and general rows (DomainMixSampler)",
    "_generate_and_score_completions": "the window in which TrainerEntropies reads TRL's own entropies",
    "_calculate_rewards": "every reward function gets the entropies (ENTROPIES_KWARG); heal/reward/<domain> is "
                          "logged through TRL's `_log_metric`, the `log_metric` reward functions get",
}
"""GRPOTrainer's private methods HEALGRPOTrainer overrides, and why; tested on TRL 1.16 (FAST_PATH_TRL names the
versions the entropy fast path relies on, in `heal_hf.trl.entropy`). Besides: TRL's card hooks `_tag_names`, `_name`
and `_paper` are set, and the public attributes `use_vllm`, `vllm_importance_sampling_correction`,
`use_transformers_continuous_batching`, `num_iterations`, `num_generations` and `reward_weights` are read."""


class EDAStateCallback(TrainerCallback):
    """Saves the EDA reward's state in every checkpoint (STATE_FILE) and restores it when training resumes.

    The state: each domain's step-0 and latest entropies and curves (entropy retention
    is relative to step 0) and the running references ("ema", the last batch's). Set
    `resume_from` to the checkpoint folder before `train` (HEALGRPOTrainer.train does).
    Checkpoints of a hyperparameter search (run-* subfolders) are not covered.
    """

    def __init__(self, reward: EDARewardFunction) -> None:
        self.reward = reward
        self.resume_from: str | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.resume_from is not None and (Path(self.resume_from) / STATE_FILE).is_file():
            self.reward.load_state_dict(json.loads((Path(self.resume_from) / STATE_FILE).read_text()))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if args.should_save and folder.is_dir():
            write_json_atomic(folder / STATE_FILE, self.reward.state_dict())


class HEALGRPOTrainer(GRPOTrainer):
    """GRPOTrainer with HEAL: the EDA reward on generation-time entropies, and domain-mixed batches.

    Takes GRPOTrainer's arguments with `args` a `HEALConfig`, plus `pool` (the
    general-entropy pool: Dataset, folder, Hub id, "bundled" or EDAReference; checked
    against the tokenizer and `eda_bins`). Appends `self.eda` (an EDARewardFunction)
    to `reward_funcs`; the train set needs the `domain_column` column. Any generator
    TRL offers works (transformers' generate, paged continuous batching, vLLM colocate
    or server); see the module doc for where the entropies come from. Tools, custom
    rollouts and environments are refused: the completions must be the policy's own tokens.
    """

    _tag_names = ["trl", "grpo", "heal"]
    _name = "HEAL"
    _paper = {
        "title": "HEALing Entropy Collapse: Enhancing Exploration in Few-Shot RLVR via Hybrid-Domain Entropy "
                 "Dynamics Alignment",
        "id": "2604.17928",
        "citation": HEAL_BIBTEX,
    }

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: HEALConfig | None = None,
        train_dataset: datasets.Dataset | None = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        pool: Any = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, HEALConfig):
            raise ValueError(f"args: expected a HEALConfig, got {type(args).__name__}; build one with HEALConfig(...)")
        for name in ("tools", "rollout_func", "environment_factory"):
            if kwargs.get(name) is not None:
                raise ValueError(f"{name}: not supported by HEALGRPOTrainer (completions must be the model's own tokens)")
        if args.remove_unused_columns:
            raise ValueError(f"args.remove_unused_columns: must be False so the {args.domain_column!r} column reaches the reward")
        if not isinstance(train_dataset, datasets.Dataset) or args.domain_column not in train_dataset.column_names:
            raise ValueError(
                f"train_dataset: expected a datasets.Dataset with a {args.domain_column!r} column ('target' | 'general'); "
                "mix one with heal_hf.data.processors.HybridSelection"
            )
        funcs = [] if reward_funcs is None else list(reward_funcs) if isinstance(reward_funcs, list) else [reward_funcs]
        self.eda = args.eda_reward()
        if args.eda_reference == "pool" and pool is None:
            raise ValueError('pool: eda_reference="pool" needs a general-entropy pool; pass pool=... to the trainer')
        if args.reward_weights is not None and len(args.reward_weights) == len(funcs):
            args.reward_weights = [*args.reward_weights, 1.0]  # lambda is applied inside the EDA reward
        super().__init__(
            model=model, reward_funcs=[*funcs, self.eda], args=args, train_dataset=train_dataset,
            eval_dataset=eval_dataset, processing_class=processing_class, **kwargs,
        )
        if pool is not None:
            self.eda.set_pool(pool, self.policy_tokenizer, model)
        self._train_sampler()  # raises now, not at the first step, when batches cannot be mixed
        self.entropies = TrainerEntropies(entropy_source(self), self.temperature)
        self.eda_state = EDAStateCallback(self.eda)
        self.add_callback(self.eda_state)

    @property
    def policy_tokenizer(self) -> PreTrainedTokenizerBase:
        """The policy's tokenizer: `processing_class`, or a processor's own tokenizer."""
        return getattr(self.processing_class, "tokenizer", self.processing_class)

    @property
    def entropy_source(self) -> str:
        """Where this trainer's completion entropies come from: "scoring", "generation" or "forward"."""
        return self.entropies.source

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """Trainer.train, with the EDA state restored from the same checkpoint."""
        checkpoint = get_last_checkpoint(self.args.output_dir) if resume_from_checkpoint is True else resume_from_checkpoint
        self.eda_state.resume_from = str(checkpoint) if checkpoint else None
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _train_sampler(self, dataset: datasets.Dataset | None = None) -> DomainMixSampler:
        dataset = self.train_dataset if dataset is None else dataset
        return DomainMixSampler(
            dataset[self.args.domain_column],
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            target_fraction=self.args.target_fraction,
            seed=self.args.seed,
        )

    def _get_train_sampler(self, dataset: datasets.Dataset | None = None) -> Sampler:
        return self._train_sampler(dataset)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        with self.entropies.capture(self.accelerator.unwrap_model(self.model), len(inputs)):
            return super()._generate_and_score_completions(inputs)

    def _calculate_rewards(
        self, inputs: list[dict[str, Any]], prompts: list, completions: list, completion_ids_list: list[list[int]]
    ) -> torch.Tensor:
        model = self.accelerator.unwrap_model(self.model)
        entropies = self.entropies.take(model, self.policy_tokenizer, prompts, completion_ids_list)
        inputs = [{**x, ENTROPIES_KWARG: e} for x, e in zip(inputs, entropies, strict=True)]
        self.eda.track = self.model.training  # evaluation batches leave step-0 entropies and references alone
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # Per-domain total reward over the whole (gathered) batch: the same value on every process.
        domains = gather_object([x[self.args.domain_column] for x in inputs])
        total = (rewards_per_func * self.reward_weights.to(rewards_per_func.device)).nansum(1)
        texts = gather_object([completion_text(c) for c in completions]) if self.args.rollout_metrics else []
        for domain in DOMAINS:
            rows = [i for i, d in enumerate(domains) if d == domain]
            if rows:
                self._log_metric(f"heal/reward/{domain}", total[rows].mean().item())
                if texts:
                    for name, value in rollout_metric_means(self.args.rollout_metrics, [texts[i] for i in rows]).items():
                        self._log_metric(f"heal/{name}/{domain}", value)
        return rewards_per_func
