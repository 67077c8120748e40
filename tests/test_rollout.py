import torch

from heal_hf import token_entropy
from heal_hf.data.generation_entropy import GenerationEntropyRecorder
from heal_hf.data.rollout import (
    PreallocatedLayer,
    completion_lengths,
    preallocated_cache,
    sample_with_entropies,
)
from heal_hf.toy.tiny import char_tokenizer, tiny_causal_lm


def test_char_tokenizer_round_trips():
    tok = char_tokenizer()
    text = "Q: 12 + 7 = ?\nA: 19"
    assert tok.decode(tok(text).input_ids) == text
    assert len(tok(text).input_ids) == len(text)


def test_recorded_entropies_equal_a_teacher_forced_forward_pass():
    model, tok = tiny_causal_lm(seed=3)
    prompts = ["Q: 1 + 1 = ?\nA:", "Q: sort 3 1 2\nA:"]
    out = sample_with_entropies(model, tok, prompts, num_samples=3, max_new_tokens=12, temperature=0.7, seed=5)
    assert len(out.texts) == 2 and all(len(t) == 3 for t in out.texts)
    for p, prompt in enumerate(prompts):
        prompt_ids = tok(prompt).input_ids
        for ids, ent in zip(out.token_ids[p], out.entropies[p]):
            assert len(ids) == len(ent) >= 1
            full = torch.tensor([prompt_ids + ids])
            with torch.no_grad():
                logits = model(full).logits[0, len(prompt_ids) - 1 : -1]
            want = token_entropy(logits, temperature=0.7)
            assert torch.allclose(torch.tensor(ent), want, atol=1e-4)


def test_same_seed_same_samples_and_eos_counts():
    model, tok = tiny_causal_lm(seed=1)
    a = sample_with_entropies(model, tok, ["x"], num_samples=4, max_new_tokens=30, seed=9)
    b = sample_with_entropies(model, tok, ["x"], num_samples=4, max_new_tokens=30, seed=9)
    assert a.texts == b.texts and a.entropies == b.entropies
    ids = torch.tensor([[5, 6, tok.eos_token_id, 0], [5, 6, 7, 8]])
    assert completion_lengths(ids, [tok.eos_token_id]).tolist() == [3, 4]


def test_preallocated_cache_samples_exactly_what_the_default_cache_does():
    # The pool builder's KV cache writes into one buffer instead of torch.cat per step:
    # token ids and entropies must be bit-identical to generate's own DynamicCache.
    model, tok = tiny_causal_lm(seed=2)
    tok.padding_side = "left"
    enc = tok(["Q: 1 + 1 = ?\nA:", "Q: 12 + 30 = ?\nA:", "x"], return_tensors="pt", padding=True)
    enc = {k: enc[k] for k in ("input_ids", "attention_mask")}
    runs = []
    for cache in (None, preallocated_cache(model, enc["input_ids"].shape[1] + 20)):
        torch.manual_seed(4)
        recorder = GenerationEntropyRecorder(0.8)
        with recorder.attached(model):
            ids = model.generate(**enc, **({"cache": cache} if cache is not None else {}), do_sample=True,
                                 temperature=0.8, top_k=0, max_new_tokens=20, num_return_sequences=3,
                                 pad_token_id=tok.pad_token_id)
        runs.append((ids, torch.stack(recorder.steps, 1)))
        if cache is not None:
            assert all(isinstance(layer, PreallocatedLayer) for layer in cache.layers)
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_preallocated_layer_grows_and_survives_outside_changes():
    layer = PreallocatedLayer(capacity=3)
    parts = [torch.randn(2, 1, n, 4) for n in (2, 1, 2)]  # the third update overflows the capacity
    for i, part in enumerate(parts):
        keys, values = layer.update(part, -part)
        want = torch.cat(parts[: i + 1], dim=-2)
        assert torch.equal(keys, want) and torch.equal(values, -want)
    layer.crop(-2)  # replaces the views: the next update starts from what crop left
    keys, _ = layer.update(parts[1], -parts[1])
    assert torch.equal(keys, torch.cat([parts[0], parts[1], parts[1]], dim=-2))
    layer.batch_select_indices(torch.tensor([1]))
    keys, values = layer.update(parts[1][1:], -parts[1][1:])
    want = torch.cat([parts[0], parts[1], parts[1], parts[1]], dim=-2)[1:]
    assert torch.equal(keys, want) and torch.equal(values, -want)


def test_preallocated_cache_defers_to_a_model_s_own_cache_choice():
    model, _ = tiny_causal_lm(seed=2)
    model.generation_config.cache_implementation = "static"
    assert preallocated_cache(model, 8) is None
    model.generation_config.cache_implementation = None
    model.generation_config.use_cache = False
    assert preallocated_cache(model, 8) is None
