"""HEAL for TRL's GRPOTrainer: the EDA reward, `HEALConfig` and `HEALGRPOTrainer`.

Two ways in, same rewards on the same batch:

- Drop-in, for an existing GRPO script: `eda_reward_function(evaluate.load("heal/eda"),
  model, tokenizer)` is a plain TRL reward function. Per batch it recomputes each
  completion's token entropies under the current policy with one no-grad forward.
- `HEALGRPOTrainer(model, reward_funcs, args=HEALConfig(...), train_dataset=mixed)`:
  the same reward, with the entropies taken from a pass TRL already runs, and every
  generation batch mixing target and general rows in a fixed ratio. Where the entropies
  come from (`HEALGRPOTrainer.entropy_source`), with any generator TRL offers:
  "scoring": TRL's no-grad forward for `old_per_token_logps` (it runs with vLLM's
  importance-sampling correction, TRL's default, and whenever `num_iterations > 1` or
  generation and optimizer steps are misaligned): its fused LM head computes the
  full-vocabulary entropies at the sampling temperature, and the trainer keeps them;
  "generation": a forward hook on transformers' `generate` (no scoring pass); "forward":
  neither is available (vLLM with the correction off, paged continuous batching at
  `num_iterations=1`), so one chunked no-grad forward per batch, said once in the logs.
  No extra model forward in the first two cases.

Both return lambda * r_EDA for target-domain rows and None ("not applicable") for
general-domain rows, so TRL's sum gives r = r_verify + lambda * r_EDA (HEAL.md). The
reference R comes from the batch's general rows (gathered across processes), the
general-entropy pool, or an EMA blend of both. Logged through TRL's `log_metric`:
`heal/entropy/<domain>` (mean token entropy, nats), `heal/entropy_retention/<domain>`
(entropy now / entropy at step 0), `heal/eda_reward` (mean r_EDA of target rows, before
lambda), `heal/eda_distance` and its parts `heal/eda_magnitude|variation|dynamics` (means
over target rows), `heal/eda_d0` (the calibrated kernel's D0 for this batch's reference)
and `heal/reference_count` (trajectories behind R).

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
from accelerate.utils import gather_object, is_peft_model
from torch.utils.data import Sampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from ..data.files import write_json_atomic
from ..data.run_folder import STATE_FILE
from .config import HEALConfig
from .entropy import GenerationEntropyRecorder, policy_token_entropies
from .reward import DOMAINS, ENTROPIES_KWARG
from .sampler import DomainMixSampler

logger = logging.getLogger(__name__)

ENTROPY_SOURCES = ("scoring", "generation", "forward")


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
            self.eda.set_pool(pool, self._tokenizer)
        self._train_sampler()  # raises now, not at the first step, when batches cannot be mixed
        self._completion_entropies: list[list[float]] | None = None  # from the generation hook
        self._scoring_entropies: torch.Tensor | None = None  # (B, C) from TRL's scoring forward
        self._capture_scoring = False
        self._said_forward = False

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

    @property
    def entropy_source(self) -> str:
        """Where this batch's completion entropies come from: "scoring", "generation" or "forward"."""
        generate_every = self.args.steps_per_generation * self.num_iterations
        if self.args.gradient_accumulation_steps % generate_every != 0 or (
            self.use_vllm and self.vllm_importance_sampling_correction
        ):  # TRL's own condition for computing old_per_token_logps
            return "scoring"
        if not (self.use_vllm or self.use_transformers_continuous_batching):
            return "generation"
        return "forward"

    def _generate_and_score_completions(self, inputs):
        self._scoring_entropies = None
        self._capture_scoring = self.entropy_source == "scoring"
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self._capture_scoring = False

    def _get_per_token_logps_and_entropies(self, model, *args, compute_entropy=False, **kwargs):
        # The first policy forward of a scoring phase is TRL's old_per_token_logps pass: keep its entropies.
        capture = self._capture_scoring and model is self.model
        logps, entropies, aux = super()._get_per_token_logps_and_entropies(
            model, *args, compute_entropy=compute_entropy or capture, **kwargs
        )
        if capture:
            self._capture_scoring = False
            self._scoring_entropies = entropies.detach().float().cpu()
            entropies = entropies if compute_entropy else None
        return logps, entropies, aux

    def _generate_single_turn(self, prompt_ids, *args, **kwargs):
        if self.entropy_source != "generation":
            return super()._generate_single_turn(prompt_ids, *args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        causal_lm = model.get_base_model() if is_peft_model(model) else model  # generate calls the inner LM
        recorder = GenerationEntropyRecorder(self.temperature)
        with recorder.attached(causal_lm):
            completion_ids, logprobs = super()._generate_single_turn(prompt_ids, *args, **kwargs)
        self._completion_entropies = recorder.per_completion(completion_ids)
        return completion_ids, logprobs

    def _batch_entropies(self, prompts: list, completion_ids_list: list) -> list[list[float]]:
        """This batch's completion entropies from the scoring pass, the generation hook, or one extra forward."""
        scored, self._scoring_entropies = self._scoring_entropies, None
        generated, self._completion_entropies = self._completion_entropies, None
        if scored is not None:
            return [scored[i, : len(c)].tolist() for i, c in enumerate(completion_ids_list)]
        if generated is not None:
            return generated
        if not self._said_forward:
            logger.warning(
                "HEALGRPOTrainer: TRL ran no scoring forward and generation is not transformers' generate, so the "
                "EDA entropies cost one extra no-grad forward per batch (num_iterations > 1, or vLLM with "
                "vllm_importance_sampling_correction=True, makes them free)"
            )
            self._said_forward = True
        model = self.accelerator.unwrap_model(self.model)
        return policy_token_entropies(model, self._tokenizer, prompts, completion_ids_list, self.temperature)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        entropies = self._batch_entropies(prompts, completion_ids_list)
        if len(entropies) != len(inputs):
            raise RuntimeError(
                f"HEALGRPOTrainer: {len(entropies)} completion entropies for {len(inputs)} rows in this batch"
            )
        inputs = [{**x, ENTROPIES_KWARG: e} for x, e in zip(inputs, entropies)]
        self.eda.track = self.model.training  # evaluation batches leave step-0 entropies and references alone
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # Per-domain total reward, over the whole (gathered) batch.
        mode = "train" if self.model.training else "eval"
        domains = gather_object([x[self.args.domain_column] for x in inputs])
        total = (rewards_per_func * self.reward_weights.to(rewards_per_func.device)).nansum(1)
        for domain in DOMAINS:
            rows = [i for i, d in enumerate(domains) if d == domain]
            if rows:
                self._metrics[mode][f"heal/reward/{domain}"].append(total[rows].mean().item())
        return rewards_per_func

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            write_json_atomic(folder / STATE_FILE, self.eda.state_dict())

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None and (Path(checkpoint) / STATE_FILE).exists():
            self.eda.load_state_dict(json.loads((Path(checkpoint) / STATE_FILE).read_text()))
