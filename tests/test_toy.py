"""The toy task families and the bundled toy reasoner."""

from __future__ import annotations

import json
import shutil

import pytest
from huggingface_hub import ModelCard

from heal_hf.toy import MANIFEST, TOY_REASONER_PATH, check_toy_reasoner, load_toy_reasoner, tasks
from heal_hf.train import greedy_completions


@pytest.mark.parametrize("name", list(tasks.FAMILIES))
def test_every_family_verifies_its_own_answers_and_rejects_wrong_ones(name):
    family = tasks.FAMILIES[name]
    rows = family.generate(40, split="train", seed=3)
    assert len({r["prompt"] for r in rows}) == 40
    for row in rows:
        assert row["prompt"].startswith("Q: ") and row["prompt"].endswith("\nA:")
        assert row["response"].endswith(f"Answer: {row['answer']}")
        assert family.verify(row["response"], row["answer"]) == 1.0
        assert family.verify(row["response"] + "0", row["answer"]) == 0.0
        assert family.verify("no answer at all", row["answer"]) == 0.0


def test_splits_are_disjoint_whatever_the_seed_and_draws_are_seeded():
    for name in tasks.FAMILIES:
        train = {r["prompt"] for seed in (0, 1, 2) for r in tasks.generate(name, 200, "train", seed)}
        test = {r["prompt"] for seed in (0, 1) for r in tasks.generate(name, 100, "test", seed)}
        assert not train & test
        assert all(tasks.problem_split(p) == "test" for p in test)
    assert tasks.generate("weekday", 5, seed=7) == tasks.generate("weekday", 5, seed=7)
    assert tasks.generate("weekday", 5, seed=7) != tasks.generate("weekday", 5, seed=8)


def test_domains_and_bad_input():
    assert len(tasks.TARGET_FAMILIES) >= 3 and len(tasks.GENERAL_FAMILIES) >= 3
    assert {tasks.FAMILIES[n].domain for n in tasks.TARGET_FAMILIES} == {tasks.TARGET}
    with pytest.raises(ValueError, match="unknown toy task family 'sorting'.*sort_digits"):
        tasks.generate("sorting", 3)
    with pytest.raises(ValueError, match="split"):
        tasks.generate("addition", 3, split="validation")
    with pytest.raises(ValueError, match="fewer than"):
        tasks.generate("weekday", 2000, split="test")
    # Enough distinct train problems for the 1,000-example arm of the replication.
    for name in tasks.TARGET_FAMILIES:
        assert len(tasks.generate(name, 1000, "train", seed=0)) == 1000


def test_bundled_toy_reasoner_is_a_small_standard_llama_with_its_card():
    model, tokenizer = load_toy_reasoner()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert tokenizer.decode(tokenizer("Q: 1+2=?\nA:")["input_ids"]) == "Q: 1+2=?\nA:"
    card = ModelCard.load(TOY_REASONER_PATH / "README.md")
    assert card.data.library_name == "transformers" and "heal" in card.data.tags
    summary = json.loads((TOY_REASONER_PATH / "training_summary.json").read_text())
    for name in tasks.TARGET_FAMILIES:  # base pass rates where RL can help (the 10%..60%)
        rate = summary["pass_rates"][name]["sampled_pass_rate"]
        assert 0.1 <= rate <= 0.6, (name, rate)
        assert f"| {name} | target |" in card.text


def test_bundled_toy_reasoner_really_reasons_on_held_out_general_problems():
    model, tokenizer = load_toy_reasoner()
    rows = tasks.generate("addition", 32, split="test", seed=0)
    texts = greedy_completions(model, tokenizer, [r["prompt"] for r in rows], 48, chat_template=False)
    accuracy = sum(tasks.FAMILIES["addition"].verify(t, r["answer"]) for t, r in zip(texts, rows)) / len(rows)
    assert accuracy >= 0.8


def test_a_missing_or_corrupted_bundled_file_is_a_clear_error(tmp_path):
    copy = tmp_path / "toy"
    shutil.copytree(TOY_REASONER_PATH, copy)
    assert check_toy_reasoner(copy) == copy
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ValueError, match="model.safetensors is corrupted.*reinstall"):
        load_toy_reasoner(copy)
    weights.unlink()
    with pytest.raises(ValueError, match="model.safetensors is missing"):
        check_toy_reasoner(copy)
    (copy / MANIFEST).unlink()
    with pytest.raises(ValueError, match="MANIFEST.json is missing"):
        check_toy_reasoner(copy)
