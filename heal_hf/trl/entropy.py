"""Token entropies of completions under the policy being trained: a teacher-forced pass, or a hook on `generate`.

Both read raw logits (before any logits processor or warper), as HEAL defines the
entropy: softmax(logits / temperature) over the full vocabulary, in nats.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from ..core.entropy import DEFAULT_CHUNK_BYTES, token_entropy
from ..data.rollout import completion_entropies


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
