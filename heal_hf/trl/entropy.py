"""Token entropies of completions under the policy being trained: a teacher-forced pass, or a hook on `generate`.

Both read raw logits (before any logits processor or warper), as docs/method.md defines
the entropy: softmax(logits / temperature) over the full vocabulary, in nats; the pool's
entropies (`heal_hf.data.rollout`) are the same numbers.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from ..data.generation_entropy import GenerationEntropyRecorder
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
