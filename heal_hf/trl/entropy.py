"""Token entropies of completions under the policy being trained: a teacher-forced pass, or the pass TRL runs anyway.

All read raw logits (before any logits processor or warper), as docs/method.md defines
the entropy: softmax(logits / temperature) over the full vocabulary, in nats; the pool's
entropies (`heal_hf.data.rollout`) are the same numbers.

`policy_token_entropies` is the drop-in's one no-grad forward. `TrainerEntropies` is
HEALGRPOTrainer's fast path, the one place that knows where GRPOTrainer computes
entropies itself: TRL's scoring forward (its fused LM head returns `entropy` and
`label_mask`) or transformers' `generate` (a forward hook). It relies on TRL
internals tested on the versions in FAST_PATH_TRL; on any other version, or whenever
the expected pass did not happen, it falls back to `policy_token_entropies`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Sequence

import torch
import trl
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from transformers import PreTrainedTokenizerBase

from ..data.generation_entropy import GenerationEntropyRecorder, generating_module
from ..data.rollout import completion_entropies

logger = logging.getLogger(__name__)

FAST_PATH_TRL = ">=1.16,<1.17"
"""TRL versions the fast entropy path was tested on; with another, every batch takes one no-grad forward."""
ENTROPY_SOURCES = ("scoring", "generation", "forward")


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

    `heal_hf.data.rollout.completion_entropies` over the prompts tokenized exactly as
    GRPOTrainer does (chat template for conversational prompts), so the numbers equal
    the ones seen while sampling. Returns one list per completion, of its length.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return completion_entropies(model, _prompt_token_ids(tokenizer, prompts), completion_ids, temperature,
                                batch_size=batch_size, pad_id=pad_id)


def entropy_source(trainer: Any, trl_version: str = trl.__version__) -> str:
    """Where a GRPOTrainer's completion entropies come from: one of ENTROPY_SOURCES.

    "scoring": TRL's no-grad forward for `old_per_token_logps`, which TRL runs with
    vLLM's importance-sampling correction (its default) and whenever generation and
    optimizer steps are misaligned (e.g. `num_iterations > 1`); "generation": a forward
    hook on transformers' `generate`; "forward": neither (vLLM with the correction
    off, paged continuous batching at `num_iterations=1`, or a TRL outside
    FAST_PATH_TRL), so one chunked no-grad forward per batch.
    """
    if Version(trl_version) not in SpecifierSet(FAST_PATH_TRL):
        return "forward"
    generate_every = trainer.args.steps_per_generation * trainer.num_iterations
    if trainer.args.gradient_accumulation_steps % generate_every != 0 or (
        trainer.use_vllm and trainer.vllm_importance_sampling_correction
    ):  # TRL 1.16's condition for its scoring forward (GRPOTrainer._generate_and_score_completions)
        return "scoring"
    if not (trainer.use_vllm or trainer.use_transformers_continuous_batching):
        return "generation"
    return "forward"


class TrainerEntropies:
    """A GRPOTrainer batch's completion entropies, taken from a pass it runs anyway when it can.

    Wrap each `_generate_and_score_completions` call in `capture(model, rows)`, then
    `take(...)` the entropies of its `rows` completions (inside the call, where rewards
    are computed). `source` (see `entropy_source`) says which pass is read: "scoring"
    keeps the entropies TRL's fused LM head computes for the first `rows` rows of its
    no-grad forwards (the scoring pass; a reference pass of the same model, under PEFT,
    comes after); "generation" records `generate`'s steps with GenerationEntropyRecorder.
    Whenever that pass did not deliver, `take` computes them with one no-grad forward and
    says so once per reason.
    """

    def __init__(self, source: str, temperature: float) -> None:
        if source not in ENTROPY_SOURCES:
            raise ValueError(f"source: expected one of {ENTROPY_SOURCES}, got {source!r}")
        self.source, self.temperature = source, temperature
        self._recorder = GenerationEntropyRecorder(temperature)
        self._scored: list[list[float]] = []
        self._rows = 0
        self._said: set[str] = set()

    @contextlib.contextmanager
    def capture(self, model: torch.nn.Module, rows: int) -> Iterator[None]:
        """Record the entropies of the `rows` completions that `model` (the unwrapped policy) generates and scores."""
        self._scored, self._rows = [], rows
        if self.source == "generation":
            with self._recorder.attached(model):
                yield
        elif self.source == "scoring":
            handle = generating_module(model).register_forward_hook(self._keep_scoring)
            try:
                yield
            finally:
                handle.remove()
        else:
            yield

    def _keep_scoring(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        entropy, mask = getattr(output, "entropy", None), getattr(output, "label_mask", None)
        if entropy is None or mask is None or len(self._scored) >= self._rows:
            return  # not a fused scoring forward, or the scoring pass is complete
        rows = entropy.detach()[mask].float().cpu().split(mask.sum(1).tolist())
        self._scored.extend(row.tolist() for row in rows[: self._rows - len(self._scored)])

    def take(
        self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Any],
        completion_ids: Sequence[Sequence[int]],
    ) -> list[list[float]]:
        """The captured entropies (nats), one list per completion of its length; else one no-grad forward of `model`."""
        lengths = [len(c) for c in completion_ids]
        if self.source == "scoring" and [len(e) for e in self._scored] == lengths:
            return self._scored
        if self.source == "generation" and len(self._recorder) >= max(lengths, default=0):
            return self._recorder.per_completion(completion_ids)
        why = {
            "scoring": f"TRL's scoring forward gave entropies for {len(self._scored)} of {len(lengths)} completions",
            "generation": "the generation hook saw fewer steps than the longest completion",
            "forward": (f"TRL {trl.__version__} ran no scoring forward and generation is not transformers' generate "
                        f"(num_iterations > 1, or vLLM with vllm_importance_sampling_correction=True, makes them free "
                        f"on TRL {FAST_PATH_TRL})"),
        }[self.source]
        if why not in self._said:
            logger.warning(f"HEALGRPOTrainer: {why}, so the EDA entropies cost one extra no-grad forward per batch")
            self._said.add(why)
        return policy_token_entropies(model, tokenizer, prompts, completion_ids, self.temperature)
