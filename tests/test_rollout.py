import torch

from heal_hf import token_entropy
from heal_hf.rollout import completion_lengths, sample_with_entropies
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
