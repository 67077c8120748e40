import datasets
import numpy as np
import pytest
import torch
from conftest import torch_threads

from heal_hf.core.eda import EDAReference
from heal_hf.core.selection import DIVERSITY_CRITERIA, UNCERTAINTY_CRITERIA
from heal_hf.core.verifiers import numeric_match
from heal_hf.data.pool import (
    POOL_FEATURES,
    load_pool,
    pool_reference,
    pool_rows,
    tokenizer_fingerprint,
    with_pool_scores,
)
from heal_hf.data.rollout import sample_with_entropies
from heal_hf.toy.tiny import char_tokenizer, tiny_causal_lm


@pytest.fixture(scope="module")
def small_pool():
    model, tok = tiny_causal_lm(seed=0)
    prompts = [f"Q: {i} + {i} = ?\nA:" for i in range(5)]
    answers = [str(2 * i) for i in range(5)]
    with torch_threads(1):  # a tiny model samples fastest on one thread (see conftest.one_thread)
        out = sample_with_entropies(model, tok, prompts, num_samples=3, max_new_tokens=16, seed=0)
    passed = [[numeric_match(c, a) for c in cs] for cs, a in zip(out.texts, answers)]
    rows = pool_rows(prompts, answers, ["add"] * 5, out.texts, out.entropies, passed, "tiny",
                     tokenizer_fingerprint(tok), out.settings, bins=8)
    return with_pool_scores(datasets.Dataset.from_list(rows, features=POOL_FEATURES)), out


def test_reference_from_stored_profiles_equals_from_entropies(small_pool):
    pool, out = small_pool
    a, b = pool_reference(pool), EDAReference.from_entropies(out.flat_entropies(), bins=8)
    assert a.magnitude_mean == pytest.approx(b.magnitude_mean, rel=1e-6)
    assert torch.allclose(a.diff_std, b.diff_std, atol=1e-6) and a.forking_threshold == pytest.approx(b.forking_threshold)
    assert a.count == 15


def test_scores_are_pool_ranks(small_pool):
    # Each score is the mean of its two criteria's ranks over the pool, scaled to [0, 1] (highest value -> 1);
    # tied values (e.g. every pass rate 0) share their block of ranks in a seeded random order.
    pool, _ = small_pool
    n = len(pool)
    for score, (first, second) in (("uncertainty_score", UNCERTAINTY_CRITERIA), ("diversity_score", DIVERSITY_CRITERIA)):
        a, b = np.asarray(pool[first], dtype=np.float64), np.asarray(pool[second], dtype=np.float64)
        assert len(set(a)) == n  # the first criterion has no ties: its ranks are plain
        rank_a = np.argsort(np.argsort(a)) / (n - 1)
        rank_b = (2 * np.asarray(pool[score], dtype=np.float64) - rank_a) * (n - 1)
        assert sorted(np.round(rank_b, 4)) == list(range(n)), score
        for i in range(n):  # within the block of positions its value's ties occupy
            assert (b < b[i]).sum() - 1e-4 <= rank_b[i] <= (b <= b[i]).sum() - 1 + 1e-4, (score, i)


def test_load_from_a_folder_validates(small_pool, tmp_path):
    pool, _ = small_pool
    (tmp_path / "data").mkdir()
    pool.to_parquet(str(tmp_path / "data" / "shard-00000.parquet"))
    assert len(load_pool(tmp_path, bins=8)) == 5
    with pytest.raises(ValueError, match="bins=8 but bins=16"):
        load_pool(tmp_path, bins=16)
    with pytest.raises(ValueError, match="tokenizer"):
        load_pool(tmp_path, tokenizer_hash="0" * 16)
    with pytest.raises(ValueError, match="schema version"):
        load_pool(pool.map(lambda r: {"schema_version": "0"}))
    with pytest.raises(ValueError, match="missing columns"):
        load_pool(pool.remove_columns(["token_entropies"]))


def test_tokenizer_fingerprint_is_stable_and_discriminating():
    assert tokenizer_fingerprint(char_tokenizer()) == tokenizer_fingerprint(char_tokenizer())
    other = char_tokenizer()
    other.add_tokens(["<extra>"])
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(char_tokenizer())


def test_hybrid_selection_mixes_target_and_picks(small_pool):
    from heal_hf.data.processors import get_processor

    pool, _ = small_pool
    target = datasets.Dataset.from_dict({"question": ["Q: a?", "Q: b?"], "solution": ["1", "2"]})
    mix = get_processor("hybrid_selection", pool=pool, n_general=3, prompt_column="question",
                        answer_column="solution", target_source="toy")(target)
    assert mix["domain"] == ["target"] * 2 + ["general"] * 3
    assert mix["source"][:2] == ["toy", "toy"] and set(mix["source"][2:]) == {"add"}
    assert len(set(mix["prompt"][2:])) == 3 and set(mix["prompt"][2:]) <= set(pool["prompt"])
    default = get_processor("hybrid_selection", pool=pool, prompt_column="question", answer_column="solution")(target)
    assert default["domain"].count("general") == 5  # 3 x 2 = 6, capped at the pool's 5 rows
    with pytest.raises(ValueError, match="prompt_column"):
        get_processor("hybrid_selection", pool=pool)(target)
    with pytest.raises(ValueError, match="processor"):
        get_processor("nope")
