"""The toy task families and the bundled toy reasoner."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import torch_threads
from huggingface_hub import ModelCard

from heal_hf.app.evaluation import greedy_completions
from heal_hf.data.rollout import sample_with_entropies
from heal_hf.toy import (
    MANIFEST,
    TOY_REASONER_PATH,
    check_toy_reasoner,
    load_toy_reasoner,
    tasks,
)

V6 = tasks.world_families("v6")  # the bundled reasoner's world; the explore world has tests/test_toy_explore.py


@pytest.mark.parametrize("name", V6)
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
    for name in V6:
        drawn = {split: {r["prompt"] for seed in (0, 1, 2) for r in tasks.generate(name, 100, split, seed)}
                 for split in tasks.SPLITS}
        assert not drawn["train"] & drawn["validation"] and not drawn["train"] & drawn["test"]
        assert not drawn["validation"] & drawn["test"]
        for split, prompts in drawn.items():
            assert {tasks.problem_split(p) for p in prompts} == {split}
    assert tasks.generate("weekday", 5, seed=7) == tasks.generate("weekday", 5, seed=7)
    assert tasks.generate("weekday", 5, seed=7) != tasks.generate("weekday", 5, seed=8)


def test_domains_and_bad_input():
    assert len(tasks.TARGET_FAMILIES) >= 3 and len(tasks.GENERAL_FAMILIES) >= 3
    assert {tasks.FAMILIES[n].domain for n in tasks.TARGET_FAMILIES} == {tasks.TARGET}
    with pytest.raises(ValueError, match="unknown toy task family 'sorting'.*sort_digits"):
        tasks.generate("sorting", 3)
    with pytest.raises(ValueError, match="split"):
        tasks.generate("addition", 3, split="dev")
    with pytest.raises(ValueError, match="fewer than"):
        tasks.generate("weekday", 2000, split="test")
    # Enough distinct train problems for the 1,000-example arm of the replication.
    for name in tasks.TARGET_FAMILIES:
        assert len(tasks.generate(name, 1000, "train", seed=0)) == 1000


def test_general_solutions_fork_into_several_valid_ways():
    # Correct solutions of the general domain come in several orders (forking tokens), all verified.
    def first_terms(name, pick):
        rows = tasks.generate(name, 300, split="train", seed=0)
        return {pick(r["prompt"][3:-3], r["response"].split(",")[0].split("=")[0].strip()) for r in rows} - {None}

    def addition(q, step):  # which operand's units digit the first column starts with
        a, b = q.rstrip("=?").split("+")
        return None if a[-1] == b[-1] else ("a" if step.startswith(a[-1]) else "b")

    def multiplication(q, step):
        a, b = q.rstrip("=?").split("*")
        return None if a[-1] == b else ("digit" if step.startswith(a[-1]) else "factor")

    def word_problem(q, step):
        numbers = [w for w in q.replace(".", "").replace(",", "").split() if w.isdigit()]
        return None if "more" not in q or numbers[0] == numbers[1] else step.startswith(numbers[0] + "+")

    assert first_terms("addition", addition) == {"a", "b"}
    assert first_terms("multiplication", multiplication) == {"digit", "factor"}
    assert first_terms("word_problem", word_problem) == {True, False}
    rows = tasks.generate("sequence", 300, split="train", seed=0)
    positions = {r["prompt"][11:-4].split(", ").index(r["response"].split("-")[0].strip()) for r in rows}
    assert positions == {1, 2, 3}


def test_bundled_toy_reasoner_is_a_small_standard_llama_with_its_card():
    model, tokenizer = load_toy_reasoner()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert tokenizer.decode(tokenizer("Q: 1+2=?\nA:")["input_ids"]) == "Q: 1+2=?\nA:"
    card = ModelCard.load(TOY_REASONER_PATH / "README.md")
    assert card.data.library_name == "transformers" and "heal" in card.data.tags
    for name in V6:
        assert f"| {name} | {tasks.FAMILIES[name].domain} |" in card.text


def test_the_cards_pass_rates_are_what_the_bundled_model_does():
    # Measured here, not read back: 16 test problems x 4 samples at T = 1 per target family, against the
    # rate the training script measured on 100 problems (same seed: the same first 16 problems). 0.2 is
    # about two standard errors of a 16-problem mean; a card from other weights misses by far more.
    model, tokenizer = load_toy_reasoner()
    summary = json.loads((TOY_REASONER_PATH / "training_summary.json").read_text())
    seed = summary["args"]["seed"]
    for name in tasks.TARGET_FAMILIES:
        family = tasks.FAMILIES[name]
        rows = family.generate(16, split="test", seed=seed)
        with torch_threads(1):  # a tiny model samples fastest on one thread
            sampled = sample_with_entropies(model, tokenizer, [r["prompt"] for r in rows], num_samples=4,
                                            max_new_tokens=48, temperature=1.0, seed=seed)
        rate = sum(family.verify(t, r["answer"]) for texts, r in zip(sampled.texts, rows) for t in texts) / (16 * 4)
        stored = summary["pass_rates"][name]["sampled_pass_rate"]
        assert abs(rate - stored) <= 0.2, (name, rate, stored)


def test_bundled_toy_reasoner_really_reasons_on_held_out_general_problems(one_thread):
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


def test_countdown_works_a_ten_crossing_in_two_valid_ways_and_every_step_is_right():
    ways = set()
    for r in tasks.generate("countdown", 300, split="train", seed=0):
        start, *digits = (int(t) for t in r["prompt"][3:-3].replace("minus", "").split())
        total = start
        for d, step in zip(digits, r["response"].split(". Answer:")[0].strip().split(", ")):
            terms, result = step.split("=")
            parts = [int(t) for t in terms.split("-")]
            assert parts[0] == total and sum(parts[1:]) == d and int(result) == total - d, (r, step)
            if d > total % 10 > 0:
                ways.add(len(parts))  # 2: at once, 3: down to the ten first
            else:
                assert len(parts) == 2, (r, step)
            total -= d
        assert r["answer"] == str(total) and tasks.FAMILIES["countdown"].verify(r["response"], r["answer"]) == 1.0
    assert ways == {2, 3}


def test_every_worked_solution_fits_the_rl_completion_budget():
    from heal_hf.experiments.replicate import TOY_GRPO
    from heal_hf.toy.tiny import char_tokenizer

    tokenizer = char_tokenizer()
    for name in V6:
        for r in tasks.generate(name, 300, split="test", seed=0):
            assert len(tokenizer(r["response"], add_special_tokens=False)["input_ids"]) + 1 <= TOY_GRPO["max_completion_length"], (name, r)
