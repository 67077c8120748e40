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

import contextlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import datasets
import torch
import torch.distributed as dist
from accelerate.utils import gather_object, is_peft_model
from torch.utils.data import Sampler
from transformers import PreTrainedTokenizerBase
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOConfig, GRPOTrainer

from .eda import DEFAULT_EPS, DEFAULT_ESTIMATOR, DEFAULT_REL_FLOOR, DIRECTIONS, ESTIMATORS, EDAReference, EDAReward, check_settings
from .entropy import DEFAULT_CHUNK_BYTES, token_entropy
from .metrics import EDA_METRIC_PATH  # re-exported: a user's script needs only `from heal_hf.trl import ...`
from .files import write_json_atomic
from .pool import DOMAIN_GENERAL, DOMAIN_TARGET, load_pool, pool_reference, tokenizer_fingerprint
from .profiles import DEFAULT_BINS, EntropyProfile
from .rollout import completion_entropies
from .run_folder import STATE_FILE
from .verifiers import get_verifier

logger = logging.getLogger(__name__)

REFERENCE_MODES = ("batch", "pool", "ema")
ENTROPY_SOURCES = ("scoring", "generation", "forward")
DOMAINS = (DOMAIN_TARGET, DOMAIN_GENERAL)
ENTROPIES_KWARG = "completion_entropies"
"""Reward-function keyword through which `HEALGRPOTrainer` passes the captured entropies."""


# --- Entropies of completions under the current policy -----------------------------


def _prompt_token_ids(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Any]) -> list[list[int]]:
    """Prompt token ids exactly as GRPOTrainer makes them (chat template for conversational prompts)."""
    if prompts and isinstance(prompts[0], list):
        out = tokenizer.apply_chat_template(
            list(prompts), add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return [list(ids) for ids in out["input_ids"]]
    return [list(ids) for ids in tokenizer(text=list(prompts))["input_ids"]]


@torch.no_grad()
def policy_token_entropies(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Any],
    completion_ids: Sequence[Sequence[int]],
    temperature: float = 1.0,
    batch_size: int = 8,
) -> list[list[float]]:
    """Per-token entropies (nats) of each completion under `model`, teacher-forced.

    `heal_hf.rollout.completion_entropies` over the prompts tokenized exactly as
    GRPOTrainer does (chat template for conversational prompts), so the numbers equal
    the ones seen while sampling. Returns one list per completion, of its length.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return completion_entropies(model, _prompt_token_ids(tokenizer, prompts), completion_ids, temperature,
                                batch_size=batch_size, pad_id=pad_id)


class GenerationEntropyRecorder:
    """Records the next-token entropy of every forward call made while `generate` runs.

    A forward hook on the causal LM sees its raw logits (before any logits processor,
    temperature or top-k/top-p), so each step's entropy is that of
    softmax(logits / temperature) over the full vocabulary, as HEAL defines it.
    Steps whose last-position logits are small are kept (copied) until they fill
    `chunk_bytes` and reduced in one `token_entropy` call: with small vocabularies the
    per-call overhead, not the arithmetic, is what a step costs. Larger ones are
    reduced at once, so memory stays bounded by `chunk_bytes`.
    """

    def __init__(self, temperature: float = 1.0, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.temperature = temperature
        self.chunk_bytes = chunk_bytes
        self.steps: list[torch.Tensor] = []
        self._pending: list[torch.Tensor] = []  # last-position logits not yet reduced, all of one shape

    def _hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        logits = output.logits if hasattr(output, "logits") else output[0]
        last = logits[:, -1].detach()
        size = last.numel() * last.element_size()
        # Pending steps all have this step's shape and dtype (else they are flushed first).
        if self._pending and (
            self._pending[0].shape != last.shape
            or self._pending[0].dtype != last.dtype
            or (len(self._pending) + 1) * size > self.chunk_bytes
        ):
            self._flush()
        if size > self.chunk_bytes:
            self.steps.append(token_entropy(last, temperature=self.temperature))
        else:
            self._pending.append(last.clone())

    def _flush(self) -> None:
        if self._pending:
            self.steps.extend(token_entropy(torch.stack(self._pending), temperature=self.temperature).unbind(0))
            self._pending = []

    @contextlib.contextmanager
    def attached(self, model: torch.nn.Module) -> Iterator["GenerationEntropyRecorder"]:
        """Record while inside the block; the hook is removed on exit, even on error."""
        self.steps, self._pending = [], []
        handle = model.register_forward_hook(self._hook)
        try:
            yield self
            self._flush()
        finally:
            handle.remove()
            self._pending = []

    def per_completion(self, completion_ids: Sequence[Sequence[int]]) -> list[list[float]]:
        """Entropies (nats) aligned with each completion's tokens.

        Generation stops when the longest completion ends, so the last `max(len)`
        recorded steps are the decoding steps (chunked prefill may add calls before).
        """
        width = max((len(c) for c in completion_ids), default=0)
        if width == 0:
            return [[] for _ in completion_ids]
        if len(self.steps) < width:
            raise RuntimeError(
                f"recorded {len(self.steps)} generation steps for completions of up to {width} tokens; "
                "the model's forward hook did not see every decoding step"
            )
        ent = torch.stack(self.steps[-width:], 1).cpu()
        if ent.shape[0] != len(completion_ids):
            raise RuntimeError(f"recorded entropies for {ent.shape[0]} rows, but {len(completion_ids)} completions came back")
        return [ent[i, : len(c)].tolist() for i, c in enumerate(completion_ids)]


# --- The EDA reward function ------------------------------------------------------


def _all_gather(obj: Any) -> list[Any]:
    """`obj` from every process (rank order); [obj] when not distributed."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def as_pool_reference(
    pool: Any, bins: int = DEFAULT_BINS, tokenizer: PreTrainedTokenizerBase | None = None
) -> EDAReference | None:
    """The EDA reference of a pool: None, an `EDAReference`, a pool `Dataset`, or a folder / Hub id / "bundled".

    A Hub id names one model's config as "REPO:CONFIG" (see `heal_hf.pool.load_pool`). Pools are validated against `bins` and, when given, the tokenizer's fingerprint.
    """
    if pool is None or isinstance(pool, EDAReference):
        if pool is not None and pool.bins != bins:
            raise ValueError(f"pool: the reference has {pool.bins} bins but bins={bins}; use one K for both")
        return pool
    if not isinstance(pool, (datasets.Dataset, str, Path)):
        raise ValueError(
            f"pool: expected an EDAReference, a general-entropy pool Dataset, a folder or a Hub id, got {type(pool).__name__}"
        )
    check = {"bins": bins}
    if tokenizer is not None:
        check["tokenizer_hash"] = tokenizer_fingerprint(tokenizer)
    return pool_reference(load_pool(pool, **check))


class EDARewardFunction:
    """TRL reward function: lambda * r_EDA for target rows, None for general rows.

    Build it with `eda_reward_function` (drop-in) or let `HEALGRPOTrainer` build it.
    Called by GRPOTrainer as `f(prompts, completions, completion_ids, **columns)`; the
    `domain_column` column says which rows are target / general (all target when it
    is absent). Entropies come from the `completion_entropies` keyword when present
    (HEALGRPOTrainer), else from a no-grad forward of `model`.

    Args:
        metric: the EDA `evaluate` module; None scores with `heal_hf.eda.EDAReward`
            directly (the metric wraps the same code).
        model, tokenizer: the policy being trained (the object passed to
            GRPOTrainer; with `peft_config` it carries the adapter in place) and its
            tokenizer. Needed only without `completion_entropies`.
        pool: the general-entropy reference for `reference="pool"`/`"ema"` and the
            fallback of `"batch"` (see `as_pool_reference`).
        reference: "batch" (the batch's general rows; else the pool; else the last
            batch that had enough), "pool", or "ema" (the pool, or the first batch,
            EMA-blended with each batch).
        weight: lambda, the scale of r_EDA in the returned reward.
        estimator: "calibrated" (v2, default) or "gaussian" (v1); see `heal_hf.eda`.
        bins, w_mag, w_var, w_dyn, direction, eps, rel_floor: EDA settings (HEAL.md, `heal_hf.eda.EDAReward`).
        momentum: EMA weight kept from the running reference per batch.
        min_reference_rows: fewest general rows that make a batch reference.
        temperature: the sampling temperature (GRPOConfig.temperature).
        only_correct: give EDA only to correct rollouts (others get 0.0), judged by
            `verifier` against the `answer_column` column.
        forward_batch_size: rows per no-grad forward (memory bound of the drop-in).
    """

    __name__ = "eda"

    def __init__(
        self,
        metric: Any = None,
        model: torch.nn.Module | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        pool: Any = None,
        reference: str = "batch",
        weight: float = 0.1,
        estimator: str = DEFAULT_ESTIMATOR,
        bins: int = DEFAULT_BINS,
        w_mag: float = 1.0,
        w_var: float = 1.0,
        w_dyn: float = 1.0,
        direction: str = "both",
        eps: float = DEFAULT_EPS,
        rel_floor: float = DEFAULT_REL_FLOOR,
        momentum: float = 0.9,
        min_reference_rows: int = 2,
        temperature: float = 1.0,
        only_correct: bool = False,
        verifier: str | Callable[..., float] = "numeric",
        answer_column: str = "answer",
        domain_column: str = "domain",
        forward_batch_size: int = 8,
    ) -> None:
        if reference not in REFERENCE_MODES:
            raise ValueError(f"reference: expected one of {REFERENCE_MODES}, got {reference!r}")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight: expected lambda >= 0, got {weight!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1], got {momentum!r}")
        if min_reference_rows < 1:
            raise ValueError(f"min_reference_rows: expected at least 1, got {min_reference_rows}")
        if not temperature > 0:
            raise ValueError(f"temperature: expected > 0 (GRPOConfig.temperature), got {temperature!r}")
        if (model is None) != (tokenizer is None):
            raise ValueError("model, tokenizer: pass both (the policy and its tokenizer) or neither")
        check_settings(estimator=estimator, w_mag=w_mag, w_var=w_var, w_dyn=w_dyn, direction=direction, eps=eps,
                       rel_floor=rel_floor)
        if not (isinstance(bins, int) and bins >= 2):
            raise ValueError(f"bins: expected an integer K >= 2, got {bins!r}")
        self.metric, self.model, self.tokenizer = metric, model, tokenizer
        self.reference_mode, self.weight, self.bins = reference, float(weight), bins
        self.settings = {"estimator": estimator, "w_mag": w_mag, "w_var": w_var, "w_dyn": w_dyn,
                         "direction": direction, "eps": eps, "rel_floor": rel_floor}
        self.momentum = momentum
        self.min_reference_rows, self.temperature = min_reference_rows, temperature
        self.verifier = get_verifier(verifier) if only_correct else None
        self.answer_column, self.domain_column = answer_column, domain_column
        self.forward_batch_size = forward_batch_size
        self.pool_reference = as_pool_reference(pool, bins, tokenizer)
        self.ema_reference: EDAReference | None = None
        self.last_batch_reference: EDAReference | None = None
        self.initial: dict[str, dict[str, Any]] = {}  # domain -> entropy and mean curve of the first batch
        self.latest: dict[str, dict[str, Any]] = {}
        self.track = True  # batches update the running state; HEALGRPOTrainer turns it off while evaluating

    def set_pool(self, pool: Any, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        """Attach the pool reference after construction (validated like the constructor's)."""
        self.pool_reference = as_pool_reference(pool, self.bins, tokenizer)

    def __call__(
        self, prompts: list, completions: list, completion_ids: list | None = None, **kwargs: Any
    ) -> list[float | None]:
        n = len(completions)
        domains = list(kwargs.get(self.domain_column) or [DOMAIN_TARGET] * n)
        unknown = sorted(set(domains) - set(DOMAINS))
        if unknown:
            raise ValueError(f"{self.domain_column}: unknown domains {unknown}; expected {list(DOMAINS)} per row")
        entropies = kwargs.get(ENTROPIES_KWARG)
        if entropies is None:
            if self.model is None:
                raise ValueError(
                    "model: the EDA reward needs the policy model and tokenizer to compute entropies; "
                    "build it with eda_reward_function(metric, model, tokenizer) or train with HEALGRPOTrainer"
                )
            if completion_ids is None:
                raise ValueError("completion_ids: expected the completions' token ids (GRPOTrainer passes them)")
            entropies = policy_token_entropies(
                self.model, self.tokenizer, prompts, completion_ids, self.temperature, self.forward_batch_size
            )
        # The whole generation batch, every process's rows in rank order.
        gathered = _all_gather((domains, [list(map(float, e)) for e in entropies]))
        rank = dist.get_rank() if len(gathered) > 1 else 0
        offset = sum(len(d) for d, _ in gathered[:rank])
        all_domains = [d for ds, _ in gathered for d in ds]
        all_entropies = [e for _, es in gathered for e in es]
        target = [i for i, d in enumerate(all_domains) if d == DOMAIN_TARGET]
        general = [i for i, d in enumerate(all_domains) if d == DOMAIN_GENERAL]

        reference = self._reference([all_entropies[i] for i in general])
        eda, gaps = self._score([all_entropies[i] for i in target], reference) if target else ([], {})
        eda_of = dict(zip(target, eda))
        answers = kwargs.get(self.answer_column)
        if self.verifier is not None and answers is None:
            raise ValueError(f"{self.answer_column!r}: only_correct needs the answer column; set answer_column")
        rewards: list[float | None] = []
        for j in range(n):
            r = eda_of.get(offset + j)
            if r is not None and self.verifier is not None and self.verifier(completions[j], answers[j]) != 1.0:
                r = 0.0  # EDA only for correct rollouts
            rewards.append(None if r is None else self.weight * r)
        self._log(all_entropies, all_domains, eda, gaps, reference, kwargs.get("log_metric"))
        return rewards

    def _reference(self, general: list[list[float]]) -> EDAReference:
        fresh = EDAReference.from_entropies(general, bins=self.bins) if len(general) >= self.min_reference_rows else None
        if self.reference_mode == "pool":
            if self.pool_reference is None:
                raise ValueError('pool: reference="pool" needs a general-entropy pool; pass pool=... or use reference="batch"')
            return self.pool_reference
        if self.reference_mode == "batch":
            if fresh is not None:
                if self.track:
                    self.last_batch_reference = fresh
                return fresh
            if self.pool_reference is not None:
                return self.pool_reference
            if self.last_batch_reference is not None:
                return self.last_batch_reference
            raise ValueError(
                f"reference: the batch has {len(general)} general-domain rows (< min_reference_rows="
                f"{self.min_reference_rows}), no earlier batch had enough and no pool was given; pass pool=... "
                "or mix general rows into every batch (HEALGRPOTrainer does)"
            )
        start = self.ema_reference or self.pool_reference
        if start is None and fresh is None:
            raise ValueError(
                f'reference: "ema" starts from the pool or a batch with >= {self.min_reference_rows} general '
                "rows; pass pool=... or mix general rows into every batch"
            )
        blended = fresh if start is None else (start if fresh is None else start.blend(fresh, self.momentum))
        if self.track:
            self.ema_reference = blended
        return blended

    def _score(self, target: list[list[float]], reference: EDAReference) -> tuple[list[float], dict[str, float]]:
        """r_EDA per target trajectory and the mean parts of D: through the evaluate metric when given, else the core."""
        if self.metric is not None:
            out = self.metric.compute(predictions=target, pool=reference.to_dict(), **self.settings)
        else:
            eda = EDAReward(reference, **self.settings)
            scores = eda.score(target)
            out = {"eda_reward": scores.reward.tolist(), "distance": scores.distance.tolist(),
                   **{f"mean_{part}": float(getattr(scores, part).mean())
                      for part in ("magnitude_gap", "variation_gap", "dynamics_gap")}}
            if eda.estimator == "calibrated":
                out["d0"] = eda.d0
        gaps = {part: out[f"mean_{part}_gap"] for part in ("magnitude", "variation", "dynamics")}
        gaps["distance"] = sum(out["distance"]) / len(out["distance"])
        if "d0" in out:
            gaps["d0"] = out["d0"]
        return [float(r) for r in out["eda_reward"]], gaps

    def _log(
        self,
        entropies: list[list[float]],
        domains: list[str],
        eda: list[float],
        gaps: dict[str, float],
        reference: EDAReference,
        log_metric: Callable[[str, float], None] | None,
    ) -> None:
        profile = EntropyProfile.from_entropies(entropies, bins=self.bins, forking_threshold=0.0)
        metrics = {"heal/reference_count": reference.count}
        if eda:
            metrics["heal/eda_reward"] = sum(eda) / len(eda)
            metrics.update({f"heal/eda_{name}": value for name, value in gaps.items()})
        for domain in DOMAINS:
            rows = [i for i, d in enumerate(domains) if d == domain]
            if not rows:
                continue
            now = {
                "entropy": float(profile.magnitude[rows].double().mean()),
                "curve": profile.curve[rows].double().mean(0).tolist(),
            }
            if self.track:
                self.initial.setdefault(domain, now)
                self.latest[domain] = now
            metrics[f"heal/entropy/{domain}"] = now["entropy"]
            start = self.initial.get(domain, now)["entropy"]
            metrics[f"heal/entropy_retention/{domain}"] = now["entropy"] / start if start > 0 else float("nan")
        if log_metric is not None:
            for name, value in metrics.items():
                log_metric(name, value)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable state: step-0 and latest per-domain entropies and curves, the running references."""
        return {
            "initial": self.initial,
            "latest": self.latest,
            **{name: None if ref is None else ref.to_dict()
               for name, ref in (("ema_reference", self.ema_reference), ("last_batch_reference", self.last_batch_reference))},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (e.g. when resuming from a checkpoint)."""
        self.initial = dict(state.get("initial", {}))
        self.latest = dict(state.get("latest", {}))
        for name in ("ema_reference", "last_batch_reference"):
            ref = state.get(name)
            setattr(self, name, None if ref is None else EDAReference.from_dict(ref))


def eda_reward_function(
    metric: Any,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pool: Any = None,
    reference: str = "batch",
    weight: float = 0.1,
    temperature: float = 1.0,
    **settings: Any,
) -> EDARewardFunction:
    """The drop-in EDA reward for `GRPOTrainer(reward_funcs=[verifier, eda_reward_function(...)])`.

    Args:
        metric: `evaluate.load("heal/eda")` (or `evaluate.load(heal_hf.metrics.EDA_METRIC_PATH)` offline).
        model: the policy object you pass to GRPOTrainer (with `peft_config`, TRL adds
            the adapter to this object in place, so the entropies include it).
        tokenizer: the policy's tokenizer (GRPOTrainer's `processing_class`).
        pool: general-entropy pool (Dataset, folder, Hub id, "bundled" or EDAReference):
            the reference when a batch has no general rows, or for "pool" / "ema".
        reference: "batch" | "pool" | "ema" (see EDARewardFunction).
        weight: lambda in r = r_verify + lambda * r_EDA (HEAL default 0.1).
        temperature: must equal GRPOConfig.temperature (the entropy is of softmax(logits / T)).
        settings: any other EDARewardFunction argument (bins, w_mag, w_dyn, eps, momentum,
            min_reference_rows, only_correct, verifier, answer_column, domain_column,
            forward_batch_size).

    The dataset needs a `domain` column ("target" | "general"), as
    `heal_hf.processors.HybridSelection` writes it. Cost: one extra no-grad forward
    per generation batch; `HEALGRPOTrainer` avoids it.
    """
    if metric is None or not hasattr(metric, "compute"):
        raise ValueError(
            'metric: expected the EDA evaluate module, e.g. evaluate.load("heal/eda") or, offline, '
            "evaluate.load(heal_hf.metrics.EDA_METRIC_PATH)"
        )
    if model is None or tokenizer is None:
        raise ValueError("model, tokenizer: the drop-in reward needs the policy model object and its tokenizer")
    if reference == "pool" and pool is None:
        raise ValueError('pool: reference="pool" needs a general-entropy pool; pass pool=... or use reference="batch"')
    return EDARewardFunction(
        metric=metric, model=model, tokenizer=tokenizer, pool=pool, reference=reference,
        weight=weight, temperature=temperature, **settings,
    )


# --- HEALConfig, the domain-mixing sampler and HEALGRPOTrainer --------------------


@dataclass
class HEALConfig(GRPOConfig):
    r"""GRPOConfig plus HEAL's settings (HEAL.md). Defaults are the paper's reading in HEAL.md.

    Parameters:
        eda_weight (`float`, defaults to `0.1`): lambda in r = r_verify + lambda * r_EDA.
        eda_reference (`str`, defaults to `"batch"`): where R comes from: "batch", "pool" or "ema".
        eda_momentum (`float`, defaults to `0.9`): EMA weight kept per batch ("ema").
        eda_bins (`int`, defaults to `32`): K, curve bins of the entropy profiles.
        eda_estimator (`str`, defaults to `"calibrated"`): "calibrated" (v2) or "gaussian" (v1), see `heal_hf.eda`.
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


def batch_target_count(n_prompts: int, n_target: int, n_general: int, target_fraction: float | None) -> int:
    """Target prompts per generation batch of `n_prompts` unique prompts.

    With `target_fraction` None, the dataset's share (a domain with no rows gets none);
    otherwise that share, at least one prompt of each domain.
    """
    if target_fraction is None:
        if n_general == 0 or n_target == 0:
            return n_prompts if n_general == 0 else 0
        target_fraction = n_target / (n_target + n_general)
    return min(max(round(target_fraction * n_prompts), 1), n_prompts - 1)


class DomainMixSampler(Sampler[int]):
    """TRL's RepeatSampler ordering, with every chunk mixing target and general rows.

    Each chunk of `batch_size` unique prompts (one generation batch) holds
    `batch_target_count(...)` target rows spread evenly among general rows, each
    drawn from its domain's own shuffled stream (reshuffled when used up); each
    index is repeated `mini_repeat_count` times and each chunk `repeat_count` times,
    exactly as RepeatSampler does. An epoch has len(domains) // batch_size chunks.
    """

    def __init__(
        self,
        domains: Sequence[str],
        mini_repeat_count: int,
        batch_size: int,
        repeat_count: int = 1,
        target_fraction: float | None = None,
        seed: int = 0,
    ) -> None:
        self.target_rows = [i for i, d in enumerate(domains) if d == DOMAIN_TARGET]
        self.general_rows = [i for i, d in enumerate(domains) if d == DOMAIN_GENERAL]
        self.num_samples = len(domains)
        self.mini_repeat_count, self.batch_size, self.repeat_count = mini_repeat_count, batch_size, repeat_count
        self.n_target = batch_target_count(batch_size, len(self.target_rows), len(self.general_rows), target_fraction)
        for name, need, have in (
            ("target", self.n_target, len(self.target_rows)),
            ("general", batch_size - self.n_target, len(self.general_rows)),
        ):
            if need > have:
                raise ValueError(
                    f"train_dataset: a generation batch takes {need} {name}-domain prompts but the dataset has "
                    f"{have}; add {name} rows, lower target_fraction, or use a smaller generation batch "
                    "(per_device_train_batch_size x steps_per_generation / num_generations)"
                )
        self.generator = torch.Generator().manual_seed(seed)
        self._streams: dict[str, list[int]] = {DOMAIN_TARGET: [], DOMAIN_GENERAL: []}

    def _draw(self, domain: str, k: int) -> list[int]:
        rows = self.target_rows if domain == DOMAIN_TARGET else self.general_rows
        picked: list[int] = []
        while len(picked) < k:
            if not self._streams[domain]:
                self._streams[domain] = [rows[i] for i in torch.randperm(len(rows), generator=self.generator).tolist()]
            take = [i for i in self._streams[domain] if i not in picked][: k - len(picked)]
            self._streams[domain] = [i for i in self._streams[domain] if i not in take]
            picked += take
        return picked

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.num_samples // self.batch_size):
            targets = self._draw(DOMAIN_TARGET, self.n_target)
            generals = self._draw(DOMAIN_GENERAL, self.batch_size - self.n_target)
            slots = {(j * self.batch_size) // max(self.n_target, 1) for j in range(self.n_target)}
            chunk = [targets.pop(0) if k in slots else generals.pop(0) for k in range(self.batch_size)]
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.mini_repeat_count

    def __len__(self) -> int:
        return (self.num_samples // self.batch_size) * self.batch_size * self.mini_repeat_count * self.repeat_count


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
                "mix one with heal_hf.processors.HybridSelection"
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

