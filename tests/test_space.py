"""The Entropy Explorer's logic, in-process (the served app is tested in test_space_app.py)."""

from pathlib import Path

import datasets
import pytest
from huggingface_hub import SpaceCard
from transformers import LlamaConfig, T5Config

from heal_hf.app.space import examples, exploration, models, ui, views
from heal_hf.core.eda import EDAReward
from heal_hf.data import pool
from heal_hf.data.rollout import sample_with_entropies

SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces" / "entropy-explorer"


@pytest.fixture(scope="module")
def tiny() -> models.ExplorerModel:
    return models.ModelCache().get(models.TINY_RANDOM)


@pytest.mark.parametrize(
    "args, message",
    [
        (("  ", 8, 1.0, 64, 0), "prompt is empty"),
        (("x" * (exploration.MAX_PROMPT_CHARS + 1), 8, 1.0, 64, 0), "limit is 1000"),
        (("hi", 0, 1.0, 64, 0), "Number of samples must be from 1 to 16"),
        (("hi", 17, 1.0, 64, 0), "Number of samples must be from 1 to 16"),
        (("hi", 2.5, 1.0, 64, 0), "whole number"),
        (("hi", 8, 0.0, 64, 0), "Temperature must be from 0.1 to 2"),
        (("hi", 8, float("nan"), 64, 0), "Temperature"),
        (("hi", 8, 1.0, exploration.MAX_NEW_TOKENS + 1, 0), "Max new tokens must be from 1 to 256"),
        (("hi", 8, 1.0, 64, -1), "Seed"),
        (("hi", 8, 1.0, 64, "abc"), "Seed must be a number"),
    ],
)
def test_bad_requests_are_refused_with_a_sentence(args, message):
    with pytest.raises(ValueError, match=message):
        exploration.ExploreRequest.checked(*args)


def test_exploration_gives_one_row_trace_and_curve_per_sample(tiny):
    task = examples.task_examples()[0]
    request = exploration.ExploreRequest.checked(task.prompt, 5.0, 0.9, 20, 3)
    result = exploration.explore(tiny, request, task)
    assert len(result.texts) == len(result.entropies) == len(result.pieces) == 5
    assert all(len(p) == len(e) >= 1 for p, e in zip(result.pieces, result.entropies))
    table = views.sample_table(result)
    assert list(table.columns) == views.TABLE_HEADERS and len(table) == 5
    assert table["tokens"].tolist() == [len(e) for e in result.entropies]
    rewards = EDAReward(tiny.reference).score(result.entropies).reward.tolist()  # scored again, outside the app
    assert table["EDA"].tolist() == [float(f"{r:.3g}") for r in rewards]
    verdicts = ["✓ correct" if task.check(t, task.answer) == 1.0 else f"✗ (gold {task.answer})" for t in result.texts]
    assert table["verified"].tolist() == verdicts  # a known task: each sample's own verdict
    per_token = views.entropy_figure(result)
    assert [t.name for t in per_token.data] == [f"sample {i}" for i in range(1, 6)] + ["forking threshold"]
    profiles = views.profile_figure(result)
    assert sum(t.name.startswith("sample") for t in profiles.data) == 5
    phase = [t for t in profiles.data if t.name == "reference phase shape (EDA)"]
    assert len(phase) == 1 and len(phase[0].y) == 2 * (len(tiny.reference.feature_mean) - 4)
    assert all(len(t.y) == tiny.reference.bins for t in profiles.data if t not in phase)
    assert table["dyn. gap"].tolist() == pytest.approx(result.scores.dynamics_gap.tolist(), rel=1e-2)
    # Same seed, same samples: the explorer is reproducible.
    assert exploration.explore(tiny, request, task).texts == result.texts


def test_unknown_prompts_are_not_verified(tiny):
    result = exploration.explore(tiny, exploration.ExploreRequest.checked("hello", 2, 1.0, 8, 0))
    table = views.sample_table(result)
    assert (table["answer"] == "").all() and (table["verified"] == "").all()


def test_prompt_plus_new_tokens_must_fit_the_context(tiny):
    request = exploration.ExploreRequest.checked("x" * 400, 1, 1.0, 200, 0)  # the tiny model has 512 positions
    with pytest.raises(ValueError, match="exceed this model's context of 512 tokens"):
        exploration.explore(tiny, request)


def test_token_view_escapes_tokens_and_marks_forking_ones():
    view = views.token_html(["<s>", "a", "\n"], [0.1, 2.0, 1.0], forking_threshold=1.5, low=0.1, high=2.0)
    assert "&lt;s&gt;" in view and "<s>" not in view
    assert view.count("(forking)") == 1 and "↵<br>" in view


def test_ui_errors_escape_what_users_typed():
    err = ui._ui_error(ValueError("cannot load '<img src=x onerror=alert(1)>'"))
    assert "<img" not in err.message and "&lt;img" in err.message


def test_models_that_cannot_serve_are_refused_with_the_reason(tmp_path):
    t5 = tmp_path / "t5"
    T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, vocab_size=50).save_pretrained(t5)
    with pytest.raises(models.ModelLoadError, match="'t5' model, not a causal language model"):
        models.load_model(str(t5))
    huge = tmp_path / "huge"
    llama_7b = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, vocab_size=32000)
    llama_7b.save_pretrained(huge)  # a config only: the size is refused before any weights exist
    with pytest.raises(models.ModelLoadError, match=r"has 6\.7B parameters"):
        models.load_model(str(huge))
    with pytest.raises(models.ModelLoadError, match="not a local model folder"):
        models.load_model(str(tmp_path / "no such folder"))


def test_models_load_once_and_the_cache_stays_bounded(monkeypatch):
    loads = []
    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda model_id: loads.append(model_id) or real(models.TINY_RANDOM))
    monkeypatch.setattr(models, "model_reference", lambda *args: (None, "test reference"))
    cache = models.ModelCache(capacity=2)
    first = cache.get("a")
    assert cache.get("a") is first and loads == ["a"]
    cache.get("b"), cache.get("c")
    assert "a" not in cache and "b" in cache and "c" in cache


def test_toy_reasoner_reference_comes_from_the_bundled_pool_when_it_matches(tiny, tmp_path, monkeypatch):
    out = sample_with_entropies(tiny.model, tiny.tokenizer, ["Q: 1+1=?\nA:", "Q: 2+2=?\nA:"], num_samples=3,
                                max_new_tokens=12, seed=0)
    rows = pool.pool_rows(out.prompts, ["2", "4"], ["addition"] * 2, out.texts, out.entropies, [[0.0] * 3] * 2,
                          "toy", pool.tokenizer_fingerprint(tiny.tokenizer), out.settings)
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_list(rows, features=pool.POOL_FEATURES).to_parquet(str(tmp_path / "data" / "0.parquet"))
    monkeypatch.setattr(pool, "bundled_pool_path", lambda: tmp_path)

    reference, note = models.model_reference(models.TOY_REASONER, tiny.model, tiny.tokenizer)
    assert note.startswith("the bundled general-entropy pool: 6 responses") and reference.count == 6
    assert reference.magnitude_mean == pytest.approx(pool.pool_reference(pool.load_pool(None)).magnitude_mean)
    # Any other model gets a reference sampled from itself: pool entropies are the toy reasoner's.
    _, note = models.model_reference(models.TINY_RANDOM, tiny.model, tiny.tokenizer)
    assert note.startswith("sampled from this model")


def test_the_default_model_is_the_bundled_toy_reasoner_scored_against_the_bundled_pool():
    loaded = models.ModelCache().get(models.DEFAULT_MODEL)
    assert loaded.model_id == models.TOY_REASONER
    assert loaded.reference_note.startswith("the bundled general-entropy pool: 6400 responses of the toy reasoner")


def test_a_damaged_toy_reasoner_is_a_load_error_naming_the_file(monkeypatch, tmp_path):
    import shutil

    from heal_hf import toy

    broken = tmp_path / "toy-reasoner"
    shutil.copytree(toy.TOY_REASONER_PATH, broken)
    (broken / "config.json").unlink()
    monkeypatch.setattr(models, "load_toy_reasoner", lambda: toy.load_toy_reasoner(broken))
    with pytest.raises(models.ModelLoadError, match="cannot load the bundled toy reasoner: .*config.json is missing"):
        models.load_model(models.TOY_REASONER)


def test_examples_cover_both_domains_and_verify_their_gold_answers():
    found = examples.task_examples()
    assert {e.domain for e in found} == {"general", "target"}
    assert len({e.prompt for e in found}) == len(found)
    for e in found:
        assert e.check(f"some steps\nAnswer: {e.answer}", e.answer) == 1.0


def test_space_folder_matches_its_card_and_entry_point():
    card = SpaceCard.load(SPACE_DIR / "README.md")
    assert card.data.to_dict() == ui.space_card_data().to_dict()
    assert (SPACE_DIR / card.data.app_file).is_file()
    assert "from heal_hf.app.space import build_app" in (SPACE_DIR / "app.py").read_text()
    requirements = (SPACE_DIR / "requirements.txt").read_text().split()
    assert any(r.startswith("heal-hf") for r in requirements)
