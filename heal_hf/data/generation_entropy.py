"""Token entropies of every step of a `generate` call, from the model's raw logits.

The one definition of a generated token's entropy that the pool, the trainer and the
Space share (docs/method.md, "Token entropy"): H_t of softmax(logits_t / temperature)
over the full vocabulary, where logits_t are the model's own, BEFORE any logits
processor or warper (repetition penalty, minimum length, temperature, top-k/top-p).
A forward hook on the causal LM sees exactly those; a LogitsProcessor would see them
after transformers' own processors. A teacher-forced forward over prompt + completion
(`heal_hf.data.rollout.completion_entropies`) gives the same numbers.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch

from ..core.entropy import DEFAULT_CHUNK_BYTES, token_entropy


def generating_module(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose forward `model.generate` calls: a PEFT model's base causal LM, else `model` itself."""
    base = getattr(model, "get_base_model", None)  # PEFT wraps the LM; generate runs the inner one's forward
    return base() if callable(base) else model


class GenerationEntropyRecorder:
    """Records the next-token entropy (nats) of every forward call made while `generate` runs.

    A forward hook on the causal LM sees its raw logits (before any logits processor,
    temperature or top-k/top-p), so each step's entropy is that of
    softmax(logits / temperature) over the full vocabulary. Calls without logits (a
    fused LM head's scoring pass) are skipped. Steps whose last-position logits are
    small are kept (copied) until they fill `chunk_bytes` and reduced in one
    `token_entropy` call: with small vocabularies the per-call overhead, not the
    arithmetic, is what a step costs. Larger ones are reduced at once, so memory stays
    bounded by `chunk_bytes`.
    """

    def __init__(self, temperature: float = 1.0, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.temperature = temperature
        self.chunk_bytes = chunk_bytes
        self.steps: list[torch.Tensor] = []  # (B,) per recorded step
        self._pending: list[torch.Tensor] = []  # last-position logits not yet reduced, all of one shape

    def _hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        logits = output[0] if isinstance(output, tuple) else getattr(output, "logits", None)
        if logits is None:  # a fused LM head's output (log-probs, no logits): not a generation step
            return
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

    def __len__(self) -> int:
        """Steps recorded so far."""
        return len(self.steps) + len(self._pending)

    def _flush(self) -> None:
        if self._pending:
            self.steps.extend(token_entropy(torch.stack(self._pending), temperature=self.temperature).unbind(0))
            self._pending = []

    @contextlib.contextmanager
    def attached(self, model: torch.nn.Module) -> Iterator["GenerationEntropyRecorder"]:
        """Record `model`'s generation steps inside the block (see `generating_module`); the hook goes on exit."""
        self.steps, self._pending = [], []
        handle = generating_module(model).register_forward_hook(self._hook)
        try:
            yield self
            self._flush()
        finally:
            handle.remove()
            self._pending = []

    def per_completion(self, completion_ids: Sequence[Sequence[int]]) -> list[list[float]]:
        """Entropies (nats) aligned with each completion's tokens: list i has len(completion_ids[i]).

        Generation stops when the longest completion ends, so the last `max(len)`
        recorded steps are the decoding steps (chunked prefill may add calls before).
        """
        self._flush()
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
