"""A character-level tokenizer and tiny Llama models built in-process (no download).

Tests, the Space's fallback and the toy reasoner all use this tokenizer: printable
ASCII plus newline, one token per character, with <pad>, <s>, </s> and <unk>.
"""

from __future__ import annotations

import string

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARACTERS = sorted(set(string.printable) - set("\t\r\x0b\x0c"))


def char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per printable ASCII character; `</s>` ends a response."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
    )


def tiny_causal_lm(
    seed: int = 0, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4, max_positions: int = 512
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A randomly initialized Llama (~0.1M parameters by default) and the char tokenizer."""
    tokenizer = char_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer
