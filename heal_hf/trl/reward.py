"""The EDA reward as a TRL reward function: lambda * r_EDA for target rows, None for general rows.

A plain `f(prompts, completions, completion_ids, **columns) -> list[float | None]`, as
TRL's own rewards are. `eda_reward_function` builds the drop-in for an existing
GRPOTrainer script; `HEALGRPOTrainer` builds the same object from its `HEALConfig`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable

import datasets
import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from transformers import PreTrainedTokenizerBase, TrainerCallback

from ..core.eda import (
    DEFAULT_EDA_WEIGHT,
    REFERENCE_MODES,
    EDAReference,
    EDAReward,
    EDASettings,
    SettingError,
)
from ..core.profiles import DEFAULT_BINS, EntropyProfile
from ..core.verifiers import get_verifier
from ..data.model_identity import model_identity
from ..data.pool import (
    DOMAIN_GENERAL,
    DOMAIN_TARGET,
    load_pool,
    pool_reference,
    tokenizer_fingerprint,
)
from .entropy import policy_token_entropies

logger = logging.getLogger(__name__)

DOMAINS = (DOMAIN_TARGET, DOMAIN_GENERAL)
ENTROPIES_KWARG = "completion_entropies"
"""Reward-function keyword through which `HEALGRPOTrainer` passes the captured entropies."""


def as_pool_reference(
    pool: Any, bins: int = DEFAULT_BINS, tokenizer: PreTrainedTokenizerBase | None = None, model: Any = None
) -> EDAReference | None:
    """The EDA reference of a pool: None, an `EDAReference`, a pool `Dataset`, or a folder / Hub id / "bundled".

    A Hub id names one model's config as "REPO:CONFIG" (see `heal_hf.data.pool.load_pool`). Pools are validated against `bins` and, when given, the tokenizer's fingerprint; a pool sampled by another model
    than `model` (when given) is said once, naming both (`heal_hf.data.pool.load_pool`).
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
    if model is not None:
        check["model"] = model_identity(model)
    return pool_reference(load_pool(pool, **check))


class EDARewardFunction(TrainerCallback):
    """TRL reward function: lambda * r_EDA for target rows, None for general rows.

    Build it with `eda_reward_function` (drop-in) or let `HEALGRPOTrainer` build it.
    Called by GRPOTrainer as `f(prompts, completions, completion_ids, **columns)`; the
    `domain_column` column says which rows are target / general (all target when it
    is absent). Entropies come from the `completion_entropies` keyword when present
    (HEALGRPOTrainer), else from a no-grad forward of `model`.

    Args:
        metric: the EDA `evaluate` module; None scores with `heal_hf.core.eda.EDAReward`
            directly (the metric wraps the same code).
        model, tokenizer: the policy being trained (the object passed to
            GRPOTrainer; with `peft_config` it carries the adapter in place) and its
            tokenizer. Needed only without `completion_entropies`.
        pool: the general-entropy reference for `reference="pool"`/`"ema"` and the
            fallback of `"batch"` (see `as_pool_reference`).
        reference: "batch" (the batch's general rows; else the pool; else the last
            batch that had enough), "pool", or "ema" (the pool, or the first batch,
            EMA-blended with each batch by `settings.momentum`).
        weight: lambda, the scale of r_EDA in the returned reward.
        bins: K, the curve bins of the batch references (a pool must have the same).
        settings: the `EDASettings` (estimator, weights, direction, floors, momentum);
            default `EDASettings()`. `**changes` (EDASettings field names) override it.
        min_reference_rows: fewest general rows that make a batch reference.
        temperature: the sampling temperature (GRPOConfig.temperature).
        only_correct: give EDA only to correct rollouts (others get 0.0), judged by
            `verifier` against the `answer_column` column.
        forward_batch_size: rows per no-grad forward (memory bound of the drop-in).
    """

    __name__ = "eda"
    # A TrainerCallback too: in `callbacks=[...]` it takes the trainer's temperature, model and tokenizer at the start.

    def __init__(
        self,
        metric: Any = None,
        model: torch.nn.Module | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        pool: Any = None,
        reference: str = REFERENCE_MODES[0],
        weight: float = DEFAULT_EDA_WEIGHT,
        bins: int = DEFAULT_BINS,
        settings: EDASettings | None = None,
        min_reference_rows: int = 2,
        temperature: float | None = 1.0,
        only_correct: bool = False,
        verifier: str | Callable[..., float] = "numeric",
        answer_column: str = "answer",
        domain_column: str = "domain",
        forward_batch_size: int = 8,
        **changes: Any,
    ) -> None:
        if reference not in REFERENCE_MODES:
            raise SettingError("reference", f"expected one of {REFERENCE_MODES}, got {reference!r}")
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise SettingError("weight", f"expected lambda >= 0 (0 turns EDA off), got {weight!r}")
        if not (isinstance(bins, int) and bins >= 2):
            raise SettingError("bins", f"expected an integer K >= 2, got {bins!r}")
        if not (isinstance(min_reference_rows, int) and min_reference_rows >= 1):
            raise SettingError("min_reference_rows", f"expected an integer >= 1, got {min_reference_rows!r}")
        if temperature is not None and not (isinstance(temperature, (int, float)) and temperature > 0):
            raise SettingError("temperature", f"expected > 0 (GRPOConfig.temperature), got {temperature!r}")
        if (model is None) != (tokenizer is None):
            raise ValueError("model, tokenizer: pass both (the policy and its tokenizer) or neither")
        self.settings = (EDASettings() if settings is None else settings).replace(**changes)
        self.metric, self.model, self.tokenizer = metric, model, tokenizer
        self.reference_mode, self.weight, self.bins = reference, float(weight), bins
        self.min_reference_rows, self.temperature = min_reference_rows, temperature
        self.verifier = get_verifier(verifier) if only_correct else None
        self.answer_column, self.domain_column = answer_column, domain_column
        self.forward_batch_size = forward_batch_size
        self.pool_reference = as_pool_reference(pool, bins, tokenizer, model)
        self.ema_reference: EDAReference | None = None
        self.last_batch_reference: EDAReference | None = None
        self.initial: dict[str, dict[str, Any]] = {}  # domain -> entropy and mean curve of the first batch
        self.latest: dict[str, dict[str, Any]] = {}
        self.track = True  # batches update the running state; HEALGRPOTrainer turns it off while evaluating
        self._said_abstain = False

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                       **kwargs: Any) -> None:
        """As a callback: adopt the trainer's sampling temperature (refusing another one), model and tokenizer."""
        wanted = getattr(args, "temperature", None)
        if wanted is not None:
            if self.temperature is not None and not math.isclose(self.temperature, wanted):
                raise SettingError("temperature", f"the EDA reward was built for {self.temperature} but the trainer "
                                   f"samples at {wanted}; entropies are of softmax(logits / T): pass "
                                   "temperature=config.temperature, or leave it out and the trainer's is used")
            self.temperature = float(wanted)
        if self.model is None and model is not None:
            self.model = model  # GRPOTrainer loaded it from an id (and added any adapter in place)
            self.tokenizer = processing_class

    def set_pool(self, pool: Any, tokenizer: PreTrainedTokenizerBase | None = None, model: Any = None) -> None:
        """Attach the pool reference after construction (validated like the constructor's)."""
        self.pool_reference = as_pool_reference(pool, self.bins, tokenizer, model)

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
            if self.model is None or self.temperature is None:
                missing = "model" if self.model is None else "temperature"
                raise ValueError(
                    f"{missing}: the EDA reward needs the policy model, its tokenizer and the sampling temperature to "
                    "compute entropies; pass it to GRPOTrainer as a callback too (reward_funcs=[..., eda], "
                    "callbacks=[eda]) and it takes them from the trainer, or build it with "
                    "eda_reward_function(metric, model, tokenizer, temperature=config.temperature)"
                )
            if completion_ids is None:
                raise ValueError("completion_ids: expected the completions' token ids (GRPOTrainer passes them)")
            entropies = policy_token_entropies(
                self.model, self.tokenizer, prompts, completion_ids, self.temperature, self.forward_batch_size
            )
        # The whole generation batch, every process's rows in rank order (gathered as TRL gathers its own).
        gathered = gather_object([(domains, [list(map(float, e)) for e in entropies])])
        offset = sum(len(d) for d, _ in gathered[: PartialState().process_index])
        all_domains = [d for ds, _ in gathered for d in ds]
        all_entropies = [e for _, es in gathered for e in es]
        target = [i for i, d in enumerate(all_domains) if d == DOMAIN_TARGET]
        general = [i for i, d in enumerate(all_domains) if d == DOMAIN_GENERAL]

        reference = self._reference([all_entropies[i] for i in general])
        if reference is None:  # nothing to align with yet: abstain rather than guess
            if not self._said_abstain:
                logger.warning(
                    "EDA reward: no reference yet (this batch has %d general-domain rows, fewer than "
                    "min_reference_rows=%d, and no pool was given); EDA abstains (None) until a batch brings enough "
                    "general rows. Pass pool='bundled' (or your model's pool) to score every batch.",
                    len(general), self.min_reference_rows)
                self._said_abstain = True
            return [None] * n
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

    def _reference(self, general: list[list[float]]) -> EDAReference | None:
        """This batch's reference: None when there is none yet (no pool, no batch with enough general rows)."""
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
            return self.last_batch_reference
        start = self.ema_reference or self.pool_reference
        if start is None and fresh is None:
            return None
        blended = fresh if start is None else (start if fresh is None else start.blend(fresh, self.settings.momentum))
        if self.track:
            self.ema_reference = blended
        return blended

    def _score(self, target: list[list[float]], reference: EDAReference) -> tuple[list[float], dict[str, float]]:
        """r_EDA per target trajectory and the mean parts of D: through the evaluate metric when given, else the core."""
        if self.metric is not None:
            out = self.metric.compute(predictions=target, pool=reference.to_dict(), settings=self.settings)
        else:
            eda = EDAReward(reference, settings=self.settings)
            scores = eda.score(target)
            out = {"eda_reward": scores.reward.tolist(), "distance": scores.distance.tolist(),
                   **{f"mean_{part}": float(getattr(scores, part).mean())
                      for part in ("magnitude_gap", "variation_gap", "dynamics_gap")}}
            if eda.d0 is not None:
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
    model: torch.nn.Module | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    pool: Any = None,
    reference: str = REFERENCE_MODES[0],
    weight: float = DEFAULT_EDA_WEIGHT,
    temperature: float | None = None,
    **options: Any,
) -> EDARewardFunction:
    """The drop-in EDA reward for `GRPOTrainer(reward_funcs=[verifier, eda_reward_function(...)])`.

    Args:
        metric: `evaluate.load("heal/eda")` (or `evaluate.load(heal_hf.metrics.EDA_METRIC_PATH)` offline).
        model: the policy object you pass to GRPOTrainer (with `peft_config`, TRL adds
            the adapter to this object in place, so the entropies include it). None: pass
            the reward in `callbacks=[...]` too, and it takes the trainer's model (what
            GRPOTrainer loaded from a model id) and tokenizer when training starts.
        tokenizer: the policy's tokenizer (GRPOTrainer's `processing_class`).
        pool: general-entropy pool (Dataset, folder, Hub id, "bundled" or EDAReference):
            the reference when a batch has no general rows, or for "pool" / "ema". Without
            one, EDA abstains (None, said once in the log) until a batch has general rows.
        reference: "batch" | "pool" | "ema" (see EDARewardFunction).
        weight: lambda in r = r_verify + lambda * r_EDA (default DEFAULT_EDA_WEIGHT, 0.1).
        temperature: GRPOConfig.temperature (the entropy is of softmax(logits / T)). None:
            taken from the trainer when the reward is also in `callbacks`; a value that
            differs from the trainer's is refused when training starts.
        options: any other EDARewardFunction argument (bins, settings=EDASettings(...) or
            its fields by name such as estimator or momentum, min_reference_rows,
            only_correct, verifier, answer_column, domain_column, forward_batch_size).

    Typical use: `eda = eda_reward_function(evaluate.load("heal/eda"), pool="bundled")`, then
    `GRPOTrainer(model, reward_funcs=[accuracy, eda], callbacks=[eda], args=config, ...)`.
    The dataset's `domain` column ("target" | "general") says which rows are which, as
    `heal_hf.data.processors.HybridSelection` writes it. Cost: one extra no-grad forward
    per generation batch; `HEALGRPOTrainer` avoids it.
    """
    if metric is None or not hasattr(metric, "compute"):
        raise ValueError(
            'metric: expected the EDA evaluate module, e.g. evaluate.load("heal/eda") or, offline, '
            "evaluate.load(heal_hf.metrics.EDA_METRIC_PATH)"
        )
    if reference == "pool" and pool is None:
        raise ValueError('pool: reference="pool" needs a general-entropy pool; pass pool=... or use reference="batch"')
    return EDARewardFunction(
        metric=metric, model=model, tokenizer=tokenizer, pool=pool, reference=reference,
        weight=weight, temperature=temperature, **options,
    )
