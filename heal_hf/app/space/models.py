"""The Entropy Explorer's models: loading one by id, its general-domain reference R, and a bounded cache.

The bundled toy reasoner (`TOY_REASONER`, the default) is scored against the bundled
general-entropy pool, sampled from it; any other causal LM (a tiny random Llama,
`TINY_RANDOM`, a local folder or a Hub id) against responses sampled from itself when it
loads, since another model's entropies are not comparable.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Collection, Iterator

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ...core.eda import EDAReference
from ...data.files import error_line
from ...data.model_identity import model_identity
from ...data.models import load_causal_lm
from ...data.pool import load_pool, pool_reference, tokenizer_fingerprint
from ...data.rollout import sample_with_entropies
from ...toy import load_toy_reasoner
from ...toy.tiny import tiny_causal_lm
from .examples import general_prompts

TOY_REASONER = "bundled:toy-reasoner"
TINY_RANDOM = "bundled:tiny-random"
DEFAULT_MODEL = TOY_REASONER
MAX_PARAMETERS = 2_000_000_000  # float32 on a 16 GB CPU Space, with room for activations
MAX_CACHED_MODELS = 2
REFERENCE_SAMPLES = 4
REFERENCE_MAX_NEW_TOKENS = 64
SMALL_MODEL_PARAMETERS = 20_000_000
MODELS_VARIABLE = "HEAL_EXPLORER_MODELS"
"""Environment variable where a Space's owner lists the models it serves besides the bundled ones (comma-separated)."""

# One sampling at a time in the process: it seeds torch's global RNG and flips the
# tokenizer's padding side, and torch already spreads one generation over every core.
_SAMPLING_LOCK = threading.Lock()


@contextmanager
def sampling(model: PreTrainedModel) -> Iterator[None]:
    """Hold the sampling lock; small models run on one intra-op thread.

    A small model's matrices are too small to split: on the toy reasoner's shape, 8 x 64
    tokens take 0.5 s on one thread but 1.3-20 s on two when other processes share the cores.
    """
    with _SAMPLING_LOCK:
        threads = torch.get_num_threads()
        if model.num_parameters() < SMALL_MODEL_PARAMETERS:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


class ModelLoadError(ValueError):
    """A model id that cannot be used here; the message says why and what to try."""


def served_models(default_model: str | None = None) -> list[str]:
    """The model ids the app serves: the bundled ones, its default, and those its owner lists in HEAL_EXPLORER_MODELS.

    Nothing else loads, whatever a visitor types: a folder of the server or a Hub id
    would otherwise be read (or downloaded) on request.
    """
    listed = [m.strip() for m in os.environ.get(MODELS_VARIABLE, "").split(",")]
    served = [TOY_REASONER, TINY_RANDOM, default_model or DEFAULT_MODEL, *listed]
    return list(dict.fromkeys(m for m in served if m))


def not_served_message(served: Collection[str]) -> str:
    """What a visitor is told for any model outside `served`: the same words whatever was asked (no server details)."""
    return (f"That model is not served here. Choose one of: {', '.join(served)}. (The Space's owner adds models "
            f"with the {MODELS_VARIABLE} variable.)")


def load_model(model_id: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The explorer's model `model_id` (eval mode, float32, CPU) and its tokenizer; raises ModelLoadError with the reason.

    `model_id` is TOY_REASONER, TINY_RANDOM, a local folder or a Hub id. Remote code is
    never run, and models over MAX_PARAMETERS are refused before their weights load.
    """
    if model_id == TOY_REASONER:
        try:
            return load_toy_reasoner()
        except Exception as err:  # e.g. a bundled file missing or corrupted
            raise ModelLoadError(f"cannot load the bundled toy reasoner: {error_line(err)}") from None
    if model_id == TINY_RANDOM:
        model, tokenizer = tiny_causal_lm(seed=0)
        return model.eval(), tokenizer
    try:
        return load_causal_lm(model_id, device="cpu", dtype="float32", max_parameters=MAX_PARAMETERS)
    except ValueError as err:
        raise ModelLoadError(str(err).removeprefix("model: ")) from None


def model_reference(
    model_id: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> tuple[EDAReference, str]:
    """The general-domain reference R for a model and a sentence saying where it comes from.

    The bundled pool for the toy reasoner; otherwise general-domain responses sampled
    from the model now (REFERENCE_SAMPLES per prompt, temperature 1), since another
    model's entropies are not comparable.
    """
    if model_id == TOY_REASONER:
        pool = load_pool(None, tokenizer_hash=tokenizer_fingerprint(tokenizer), model=model_identity(model))
        responses = sum(len(lengths) for lengths in pool["lengths"])
        temperature = pool[0]["sampling"]["temperature"]
        note = (
            f"the bundled general-entropy pool: {responses} responses of the toy reasoner to {len(pool)} "
            f"general-domain prompts, sampled at temperature {temperature:g}"
        )
        return pool_reference(pool), note
    prompts = general_prompts()
    with sampling(model):
        rollouts = sample_with_entropies(
            model, tokenizer, prompts, num_samples=REFERENCE_SAMPLES,
            max_new_tokens=REFERENCE_MAX_NEW_TOKENS, temperature=1.0, seed=0,
        )
    flat = rollouts.flat_entropies()
    note = (
        f"sampled from this model when it loaded: {len(flat)} responses to {len(prompts)} general-domain prompts "
        f"at temperature 1 (no bundled general-entropy pool for this model)"
    )
    return EDAReference.from_entropies(flat), note


@dataclass
class ExplorerModel:
    """A loaded model with its tokenizer, its reference R and where R comes from."""

    model_id: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    reference: EDAReference
    reference_note: str

    @property
    def max_positions(self) -> int | None:
        """The model's context length in tokens, when its config says."""
        config = self.model.config
        for name in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None


class ModelCache:
    """Loaded models by id, at most `capacity` at once (least recently used leaves first).

    With `served`, any other id is refused (`not_served_message`) before anything is
    read. A load (a Hub download, say) holds only its own id's lock: requests for models
    already loaded, and sampling, never wait for it.
    """

    def __init__(self, capacity: int = MAX_CACHED_MODELS, served: Collection[str] | None = None) -> None:
        self.capacity = capacity
        self.served = None if served is None else list(served)
        self._models: OrderedDict[str, ExplorerModel] = OrderedDict()
        self._lock = threading.Lock()  # guards the two dicts only, never held while loading
        self._loading: dict[str, threading.Lock] = {}  # one per id being loaded: concurrent requests load it once

    def get(self, model_id: str) -> ExplorerModel:
        """The model called `model_id`, loaded on first use; raises ModelLoadError."""
        if self.served is not None and model_id not in self.served:
            raise ModelLoadError(not_served_message(self.served))
        with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            loading = self._loading.setdefault(model_id, threading.Lock())
        with loading:
            with self._lock:
                if model_id in self._models:  # loaded by the request this one waited for
                    self._models.move_to_end(model_id)
                    return self._models[model_id]
            try:
                model, tokenizer = load_model(model_id)
                reference, note = model_reference(model_id, model, tokenizer)
            finally:
                with self._lock:
                    self._loading.pop(model_id, None)
            loaded = ExplorerModel(model_id, model, tokenizer, reference, note)
            with self._lock:
                self._models[model_id] = loaded
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            return loaded

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._models
