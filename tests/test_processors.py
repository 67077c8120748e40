"""datasets processors: the entropy profiler, uncertainty and diversity scoring, the registry."""

from __future__ import annotations

import datasets
import pytest
from conftest import TINY_POOL_CONFIG, addition_rows, torch_threads

from heal_hf.data.pool import POOL_FEATURES, load_pool, validate_pool, with_pool_scores
from heal_hf.data.processors import (
    PROCESSORS,
    DiversityScoring,
    EntropyProfiler,
    UncertaintyScoring,
    get_processor,
)
from heal_hf.toy.tiny import tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = {k: v for k, v in TINY_POOL_CONFIG.items() if k != "shard_size"}


@pytest.fixture(scope="module")
def profiled() -> datasets.Dataset:
    model, tokenizer = tiny_causal_lm(seed=0)
    profiler = EntropyProfiler(model, tokenizer, model_id="tiny-llama", prompt_column="question",
                               answer_column="solution", **SETTINGS)
    with torch_threads(1):  # as the tests' own sampling (see conftest.one_thread)
        return datasets.Dataset.from_list(addition_rows(7)).map(profiler, batched=True, batch_size=4)


def test_profiler_output_becomes_a_pool_and_keeps_the_dataset_columns(profiled):
    assert {"question", "solution", "family"} <= set(profiled.column_names)
    pool = with_pool_scores(profiled)
    validate_pool(pool, bins=8)
    assert pool.features == datasets.Features({**POOL_FEATURES, **{c: datasets.Value("string") for c in
                                                                  ("question", "solution", "family")}})
    assert list(pool["prompt"]) == list(pool["question"]) and set(pool["source"]) == {"general"}
    assert all(len(r) == 3 for r in pool["responses"]) and all(0 <= p <= 1 for p in pool["pass_rate"])
    assert pool[0]["model_id"] == "tiny-llama" and pool[0]["bins"] == 8
    mixed = get_processor("hybrid_selection", pool=pool, n_general=4)(
        datasets.Dataset.from_dict({"prompt": ["Q: reverse abc\nA:"], "answer": ["cba"]}))
    assert list(mixed["domain"]) == ["target"] + ["general"] * 4


def test_profiler_is_deterministic_per_batch(profiled):
    model, tokenizer = tiny_causal_lm(seed=0)
    profiler = EntropyProfiler(model, tokenizer, prompt_column="question", answer_column="solution", **SETTINGS)
    again = datasets.Dataset.from_list(addition_rows(7)).map(profiler, batched=True, batch_size=4)
    assert list(again["responses"]) == list(profiled["responses"])
    assert list(again["token_entropies"]) == list(profiled["token_entropies"])


def test_scoring_from_stored_entropies_equals_the_pool(built_pool):
    pool = load_pool(built_pool)
    stored = pool.select_columns(["token_entropies", "responses", "passed"])
    uncertainty = stored.map(UncertaintyScoring(), batched=True, batch_size=5)
    diversity = stored.map(DiversityScoring(bins=8), batched=True, batch_size=5)
    for column in ("mean_entropy", "outcome_uncertainty", "pass_rate"):
        assert list(uncertainty[column]) == pytest.approx(list(pool[column]), rel=1e-6), column
    for column in ("curve_diversity", "lexical_diversity"):
        assert list(diversity[column]) == pytest.approx(list(pool[column]), rel=1e-6), column
    for mine, stored_features in zip(diversity["features"], pool["features"]):
        assert mine == pytest.approx(stored_features, rel=1e-5, abs=1e-6)
    no_texts = stored.remove_columns(["responses"]).map(DiversityScoring(bins=8), batched=True)
    assert all(v != v for v in no_texts["lexical_diversity"])  # NaN: not available without the texts


def test_registry_and_bad_input():
    assert set(PROCESSORS) == {"entropy_profiler", "uncertainty_scoring", "diversity_scoring", "hybrid_selection"}
    assert isinstance(get_processor("uncertainty_scoring"), UncertaintyScoring)
    with pytest.raises(ValueError, match="no 'token_entropies' column"):
        datasets.Dataset.from_dict({"x": [1]}).map(get_processor("diversity_scoring"), batched=True)
    model, tokenizer = tiny_causal_lm(seed=0)
    with pytest.raises(ValueError, match="unknown \\['temprature'\\]"):
        EntropyProfiler(model, tokenizer, temprature=0.7)
    profiler = EntropyProfiler(model, tokenizer, **SETTINGS)
    with pytest.raises(ValueError, match="no 'prompt' column.*prompt_column"):
        datasets.Dataset.from_list(addition_rows(2)).map(profiler, batched=True)
    from transformers import BertConfig, BertModel

    encoder = BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32))
    with pytest.raises(ValueError, match="not a causal language model"):
        get_processor("entropy_profiler", model=encoder, tokenizer=tokenizer)
