"""Sample responses from a Hugging Face causal LM and keep their token entropies.

The entropies are taken during generation by a forward hook on the model
(`heal_hf.data.generation_entropy`): each step's entropy is that of
softmax(raw logits / temperature) over the full vocabulary, before any logits
processor or warper (repetition penalty, temperature, top-k/top-p; docs/method.md,
"Token entropy"), with no extra forward pass and no stored logits. The trainer reads
the same definition, so the pool's reference and the trainer's targets match.

The two-phase path generates first (transformers' `generate` or vLLM) and then takes
the same entropies from one batched teacher-forced forward over prompt + completion
(`completion_entropies`): vLLM returns at most top-k logprobs, never the full
vocabulary an entropy needs.
"""

from __future__ import annotations

import contextlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.cache_utils import DynamicCache, DynamicLayer

from ..core.entropy import token_entropy
from .generation_entropy import GenerationEntropyRecorder


class PreallocatedLayer(DynamicLayer):
    """A full-attention KV cache layer that writes each step into a buffer sized for the whole generation.

    transformers' DynamicLayer grows by `torch.cat` at every step, copying the whole
    cache each time: with hundreds of sequences per `generate` call that copy spills
    the CPU caches and was a third of pool-building time (benchmarks/pool.py). This
    layer allocates room for `capacity` positions once and returns views of it, so
    the keys and values (hence logits, entropies and samples) are exactly those of
    DynamicLayer. If something else replaces `keys` (crop, batch selection...), the
    next update copies them into a fresh buffer.
    """

    def __init__(self, capacity: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.capacity = capacity
        self._buffers: tuple[torch.Tensor, ...] | None = None
        self._views: tuple[torch.Tensor | None, ...] = (None, None)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = 0 if self.keys.numel() == 0 else self.keys.shape[-2]
        stop = length + key_states.shape[-2]
        buffers = self._buffers
        if (
            buffers is None
            or self.keys is not self._views[0]
            or self.values is not self._views[1]
            or stop > buffers[0].shape[-2]
        ):
            size = max(self.capacity, stop)
            buffers = tuple(
                states.new_empty(*states.shape[:-2], size, states.shape[-1]) for states in (key_states, value_states)
            )
            if length:
                buffers[0][..., :length, :] = self.keys
                buffers[1][..., :length, :] = self.values
            self._buffers = buffers
        buffers[0][..., length:stop, :] = key_states
        buffers[1][..., length:stop, :] = value_states
        self.keys, self.values = buffers[0][..., :stop, :], buffers[1][..., :stop, :]
        self._views = (self.keys, self.values)
        return self.keys, self.values

    def reset(self) -> None:
        self._buffers = None
        super().reset()


def preallocated_cache(model: PreTrainedModel, capacity: int) -> DynamicCache | None:
    """A DynamicCache for `model` whose full-attention layers are PreallocatedLayer (None: let generate choose).

    Only where generate would build a plain DynamicCache itself: other layer kinds
    (sliding windows, linear attention) keep transformers' own layers, and models
    with their own cache implementation, or no cache, get None.
    """
    config = getattr(model, "config", None)
    generation_config = getattr(model, "generation_config", None)
    supports = getattr(model, "_supports_default_dynamic_cache", None)
    if (
        config is None
        or getattr(config, "is_encoder_decoder", False)
        or supports is None
        or not supports()
        or getattr(generation_config, "cache_implementation", None) is not None
        or getattr(generation_config, "use_cache", True) is False
    ):
        return None
    try:
        cache = DynamicCache(config=config.get_text_config(decoder=True))
    except Exception:  # an unusual config: generate's own cache is the safe choice
        return None
    if not cache.layers:  # layers made lazily: nothing to swap
        return None
    cache.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


@dataclass
class Rollouts:
    """k sampled responses for each of P prompts.

    `texts[p][j]` is response j of prompt p; `token_ids`, `tokens` (decoded pieces)
    and `entropies` (nats per generated token, EOS included when produced) are
    aligned lists of the same nesting. `settings` records how they were sampled.
    """

    prompts: list[str]
    texts: list[list[str]]
    token_ids: list[list[list[int]]]
    tokens: list[list[list[str]]]
    entropies: list[list[list[float]]]
    settings: dict[str, Any] = field(default_factory=dict)

    def flat_entropies(self) -> list[list[float]]:
        """All P * k entropy sequences, prompt-major."""
        return [e for per_prompt in self.entropies for e in per_prompt]

    def extend(
        self, tokenizer: PreTrainedTokenizerBase, ids: list[list[int]], entropies: list[list[float]], num_samples: int
    ) -> None:
        """Append P' prompts' responses: `ids` and `entropies` hold P' * num_samples rows, prompt-major."""
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
        for start in range(0, len(ids), num_samples):
            rows = slice(start, start + num_samples)
            self.token_ids.append(ids[rows])
            self.entropies.append(entropies[rows])
            self.texts.append(texts[rows])
            self.tokens.append([tokenizer.convert_ids_to_tokens(i) for i in ids[rows]])


def completion_lengths(ids: torch.Tensor, eos_token_ids: Sequence[int]) -> torch.Tensor:
    """(B,) generated lengths: up to and including the first EOS, else the full width."""
    if ids.shape[1] == 0:
        return torch.zeros(ids.shape[0], dtype=torch.long)
    is_eos = torch.isin(ids, torch.as_tensor(list(eos_token_ids), dtype=ids.dtype))
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full_like(ids[:, 0], ids.shape[1]))
    return first.long()


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return list(eos) if isinstance(eos, (list, tuple)) else [int(eos)]


@torch.no_grad()
def completion_entropies(
    model: torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    temperature: float = 1.0,
    batch_size: int = 8,
    pad_id: int = 0,
) -> list[list[float]]:
    """Per-token entropies (nats) of each completion under `model`, teacher-forced.

    One no-grad forward over prompt + completion, `batch_size` rows at a time, keeping
    only the completion positions' logits; entropy of softmax(logits / temperature)
    over the full vocabulary (chunked `token_entropy`). Prompts are left-padded and
    completions right-padded (with `pad_id`, masked out), as `generate` and
    GRPOTrainer lay them out, so the numbers equal the ones seen while sampling.

    Args:
        prompt_ids, completion_ids: N token-id lists each (row i is prompt i followed
            by completion i; a completion may be empty).
    Returns:
        N lists, list i of len(completion_ids[i]) entropies.
    """
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(
            f"prompt_ids, completion_ids: expected one of each per row, got {len(prompt_ids)} and {len(completion_ids)}"
        )
    device = next(model.parameters()).device
    out: list[list[float]] = []
    for start in range(0, len(prompt_ids), batch_size):
        rows = range(start, min(start + batch_size, len(prompt_ids)))
        p_width = max(len(prompt_ids[i]) for i in rows)
        c_width = max(len(completion_ids[i]) for i in rows)
        if c_width == 0:
            out.extend([] for _ in rows)
            continue
        ids = torch.full((len(rows), p_width + c_width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(rows):
            p, c = list(prompt_ids[i]), list(completion_ids[i])
            ids[r, p_width - len(p) : p_width] = torch.tensor(p, dtype=torch.long)
            ids[r, p_width : p_width + len(c)] = torch.tensor(c, dtype=torch.long)
            mask[r, p_width - len(p) : p_width + len(c)] = 1
        # Logits at positions P-1 .. P+C-2 predict the C completion tokens.
        logits = model(
            input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=c_width + 1
        ).logits[:, :-1]
        ent = token_entropy(logits, mask[:, p_width:].to(device).bool(), temperature=temperature).cpu()
        out.extend(ent[r, : len(completion_ids[i])].tolist() for r, i in enumerate(rows))
    return out


VLLM_MISSING = "backend vllm: vLLM is not installed; pip install 'heal-hf[vllm]' (a CUDA GPU build), or use --backend transformers-two-phase"


def check_vllm() -> None:
    """Raise a one-line ValueError naming the fix when vLLM is not importable."""
    if importlib.util.find_spec("vllm") is None:
        raise ValueError(VLLM_MISSING)


def load_vllm(model_path: str, dtype: str = "auto", gpu_memory_utilization: float = 0.5, distributed: bool = False) -> Any:
    """A `vllm.LLM` of the checkpoint at `model_path` that generates for the two-phase builder.

    `gpu_memory_utilization` leaves the rest of the GPU to the transformers model that
    scores the completions. `distributed`: one engine per process under
    `accelerate launch` / torchrun, each on its own GPU (vLLM's external launcher,
    as TRL's colocate mode starts it).
    """
    check_vllm()
    from vllm import LLM

    return LLM(model=model_path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
               **({"distributed_executor_backend": "external_launcher"} if distributed else {}))


def vllm_completion_ids(
    llm: Any,
    prompt_ids: Sequence[Sequence[int]],
    num_samples: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
) -> list[list[list[int]]]:
    """Sample `num_samples` completions per prompt with a `vllm.LLM`: token ids[p][j], EOS included when produced.

    The thin vLLM-specific part of the two-phase path: prompts go in as token ids,
    so the scoring forward sees exactly the prompt vLLM continued. Prompt p's request
    has seed `seed + p * num_samples` and vLLM seeds its j-th sample with that + j, so
    every sample has a random stream of its own and a rerun draws the same ones.
    """
    from vllm import SamplingParams, TokensPrompt

    params = [
        SamplingParams(n=num_samples, temperature=temperature, top_p=top_p, top_k=top_k if top_k > 0 else -1,
                       max_tokens=max_new_tokens, seed=(seed + p * num_samples) % 2**63, detokenize=False)
        for p in range(len(prompt_ids))
    ]
    outputs = llm.generate([TokensPrompt(prompt_token_ids=list(ids)) for ids in prompt_ids], params, use_tqdm=False)
    return [[list(c.token_ids) for c in sorted(out.outputs, key=lambda c: c.index)] for out in outputs]


Batch = tuple[list[list[int]], list[list[int]], list[list[float]] | None]
"""One sampled batch: its P' prompts' token ids, their P' * k completions (prompt-major), entropies or None."""


def _vllm_batches(
    llm: Any, prompt_ids: list[list[int]], per_call: int, num_samples: int, max_new_tokens: int,
    temperature: float, top_p: float, top_k: int, seed: int,
) -> Iterator[Batch]:
    """vLLM's completions, `per_call` prompts at a time, without entropies (the scoring forward adds them)."""
    sampled = vllm_completion_ids(llm, prompt_ids, num_samples, max_new_tokens, temperature, top_p, top_k, seed)
    for start in range(0, len(prompt_ids), per_call):
        yield prompt_ids[start : start + per_call], [c for per in sampled[start : start + per_call] for c in per], None


def _generate_batches(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], per_call: int,
    add_special_tokens: bool, eos_ids: list[int], record: bool, **generate_kwargs: Any,
) -> Iterator[Batch]:
    """transformers' completions, `per_call` prompts at a time, with the hook's entropies when `record`."""
    for start in range(0, len(texts), per_call):
        enc = tokenizer(texts[start : start + per_call], return_tensors="pt", padding=True,
                        add_special_tokens=add_special_tokens)
        prompt_ids = [row[m.bool()].tolist() for row, m in zip(enc["input_ids"], enc["attention_mask"])]
        enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        cache = preallocated_cache(model, enc["input_ids"].shape[1] + generate_kwargs["max_new_tokens"])
        recorder = GenerationEntropyRecorder(generate_kwargs["temperature"])
        with recorder.attached(model) if record else contextlib.nullcontext():
            generated = model.generate(**enc, **({"cache": cache} if cache is not None else {}), **generate_kwargs)
        new_ids = generated[:, enc["input_ids"].shape[1] :].cpu()
        lengths = completion_lengths(new_ids, eos_ids).tolist()
        ids = [row[:n] for row, n in zip(new_ids.tolist(), lengths)]
        yield prompt_ids, ids, recorder.per_completion(ids) if record else None


def _check_sampling(prompts: Sequence[str], num_samples: int, max_new_tokens: int, batch_size: int,
                    temperature: float) -> None:
    if not prompts:
        raise ValueError("prompts: expected at least one prompt")
    if num_samples < 1 or max_new_tokens < 1 or batch_size < 1:
        raise ValueError(
            f"num_samples, max_new_tokens, batch_size: expected positive integers, "
            f"got {num_samples}, {max_new_tokens}, {batch_size}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature: expected > 0, got {temperature}")


@torch.no_grad()
def sample_with_entropies(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    num_samples: int = 8,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    batch_size: int = 64,
    chat_template: bool = False,
    progress: Any = None,
    two_phase: bool = False,
    llm: Any = None,
) -> Rollouts:
    """Sample `num_samples` responses per prompt and record per-token entropies (nats).

    Args:
        model, tokenizer: a causal LM and its tokenizer (left padding is used). The
            model's `generation_config` (e.g. a repetition penalty) applies to sampling;
            the entropies are of its raw logits either way (module doc).
        prompts: P prompt strings (wrapped in the chat template when `chat_template`).
        num_samples: k responses per prompt.
        max_new_tokens: generation cap per response.
        temperature, top_p, top_k: sampling settings; entropies use `temperature`
            over the full vocabulary (top-k/top-p do not change them).
        seed: seeds torch's RNG once before the first batch (with `llm`: vLLM's
            per-sample seeds, see `vllm_completion_ids`), so the same call gives the
            same responses.
        batch_size: sequences per `generate` call and per scoring forward
            (prompts per call = batch_size // k).
        progress: optional callable taking the number of prompts just finished
            (e.g. a tqdm bar's `update`).
        two_phase: generate without recording, then take each batch's entropies from
            one teacher-forced forward of `model` (`completion_entropies`). The samples
            are the one-phase path's (the hook reads, never changes, the logits), the
            entropies equal within float rounding; costs one extra forward per batch.
        llm: a `vllm.LLM` of the same checkpoint to generate with instead of
            `model.generate` (implies two_phase: `model` scores its completions).
    """
    _check_sampling(prompts, num_samples, max_new_tokens, batch_size, temperature)
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids or [0])[0]
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        if chat_template else p
        for p in prompts
    ]
    per_call = max(1, batch_size // num_samples)
    out = Rollouts(list(prompts), [], [], [], [], settings=dict(
        num_samples=num_samples, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
        seed=seed))
    padding_side, was_training = tokenizer.padding_side, model.training
    tokenizer.padding_side = "left"
    model.eval()
    torch.manual_seed(seed)
    try:
        if llm is not None:
            prompt_ids = tokenizer(texts, add_special_tokens=not chat_template)["input_ids"]
            batches = _vllm_batches(llm, prompt_ids, per_call, num_samples, max_new_tokens, temperature, top_p, top_k,
                                    seed)
        else:
            batches = _generate_batches(
                model, tokenizer, texts, per_call, not chat_template, eos_ids, record=not two_phase, do_sample=True,
                temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens,
                num_return_sequences=num_samples, pad_token_id=pad_id, eos_token_id=eos_ids or None,
            )
        for prompt_ids, ids, entropies in batches:
            if entropies is None:  # two-phase: one teacher-forced forward over the batch's prompt + completion rows
                rows = [p for p in prompt_ids for _ in range(num_samples)]
                entropies = completion_entropies(model, rows, ids, temperature, batch_size=len(ids), pad_id=pad_id)
            out.extend(tokenizer, ids, entropies, num_samples)
            if progress is not None:
                progress(len(prompt_ids))
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return out


# --- Loading and checking a causal LM ------------------------------------------------
