"""Causal LMs as heal-hf loads them: the checks of a model object and of a model folder, and the loader that
build-pool and the Space share (one line naming the folder and the fix for each way a folder can be broken)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .files import error_line


@torch.no_grad()
def check_causal_lm(model: Any) -> None:
    """Raise ValueError unless `model` is a decoder-only model that can `generate` left to right.

    Besides the class (GenerationMixin, not encoder-decoder), one tiny forward checks
    that a position's prediction ignores later tokens: an encoder such as BERT loaded
    as `BertLMHeadModel` passes the class checks but attends both ways, so its
    "generations" are noise (empty responses at log-vocabulary entropy).
    """
    from transformers import GenerationMixin

    is_seq2seq = getattr(getattr(model, "config", None), "is_encoder_decoder", False)
    if not isinstance(model, GenerationMixin) or not model.can_generate() or is_seq2seq:
        raise ValueError(
            f"model: {type(model).__name__} is not a causal language model that can generate; "
            "load a decoder-only checkpoint with transformers.AutoModelForCausalLM"
        )
    vocab = int(getattr(model.config, "vocab_size", 0) or 0)
    if vocab < 6:
        return  # too few tokens to probe with; the class checks above are all there is
    # Two rows that differ only in their last token: a causal LM's earlier positions cannot tell them apart.
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 5]], device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        logits = model(input_ids=ids).logits[:, :3].float()
    finally:
        model.train(was_training)
    if (logits[0] - logits[1]).abs().max() > 1e-5 * (1 + logits.abs().max()):
        raise ValueError(
            f"model: {type(model).__name__} ({getattr(model.config, 'model_type', '?')}) predicts each token from the "
            "tokens after it too (an encoder such as BERT), so it cannot generate text; pass a decoder-only causal LM"
        )


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")
"""Files one of which a saved tokenizer holds (fast tokenizers, SentencePiece, BPE and WordPiece vocabularies)."""
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
                "adapter_model.safetensors", "adapter_model.bin")


def check_model_files(source: str | Path) -> None:
    """ValueError naming what a local model folder lacks (config, tokenizer, weights) and the fix; Hub ids pass.

    Checked before transformers looks: without tokenizer files it falls back to a slow
    tokenizer class and asks for sentencepiece, which is not the problem.
    """
    folder = Path(source)
    if not folder.is_dir():
        return
    fix = f"save the model and its tokenizer into it (model.save_pretrained({str(folder)!r}) and " \
          f"tokenizer.save_pretrained({str(folder)!r})) or pass another --model"
    if not (folder / "config.json").is_file():
        raise ValueError(f"model: {folder} has no config.json, so it is not a saved model folder; {fix}")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(f"model: {folder} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)}); {fix}")
    if not any((folder / name).is_file() for name in WEIGHT_FILES) and not any(folder.glob("*.safetensors")):
        raise ValueError(f"model: {folder} has no weights (model.safetensors or pytorch_model.bin); {fix}")


def load_causal_lm(
    model_id: str | Path,
    device: str | None = None,
    dtype: str = "auto",
    max_parameters: int | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM (eval mode) and its tokenizer from a local folder or a Hub id; never remote code.

    Raises a one-line ValueError when the checkpoint cannot be found, is not a causal
    LM that can generate (an encoder, a sequence-to-sequence model; see
    `check_causal_lm`), or has more than `max_parameters` parameters (counted before
    any weight loads).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = str(model_id)
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=False)
    except Exception as err:  # missing folder, offline Hub, bad id, remote code: all "cannot load"
        raise ValueError(
            f"model: cannot load {name!r}: it is not a local model folder and the Hub could not provide it "
            f"(offline, private or misspelled?); pass a local folder or a Hub model id. Details: {error_line(err)}"
        ) from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or getattr(config, "is_encoder_decoder", False):
        raise ValueError(
            f"model: {name!r} is a {config.model_type!r} model, not a causal language model; "
            "pass a decoder-only checkpoint (one AutoModelForCausalLM loads), e.g. a Llama, GPT-2 or Qwen"
        )
    if max_parameters is not None:
        with torch.device("meta"):  # count parameters without allocating them
            parameters = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
        if parameters > max_parameters:
            raise ValueError(
                f"model: {name!r} has {parameters / 1e9:.1f}B parameters; this loads at most "
                f"{max_parameters / 1e9:.0f}B. Try a smaller checkpoint"
            )
    check_model_files(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            name, dtype=dtype if dtype == "auto" else getattr(torch, dtype), trust_remote_code=False
        )
    except Exception as err:
        raise ValueError(f"model: cannot load {name!r}: {error_line(err)}") from None
    model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    check_causal_lm(model)
    return model, tokenizer

