import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heal_hf import HybridSelector, response_criteria
from heal_hf.core.selection import CRITERIA, distinct_ngrams


def random_pool(n: int, seed: int = 0, d: int = 6):
    rng = np.random.default_rng(seed)
    criteria = {c: rng.random(n) for c in CRITERIA}
    return criteria, rng.normal(size=(n, d))


def naive_mmr(scores, feats, n_select, redundancy, bandwidth, seed):
    """O(N^2) greedy MMR with the same kernel, for checking the fast path.

    Ties go to the candidate first in the selector's documented order: score
    descending, equal scores in a permutation seeded by `seed`.
    """
    perm = np.random.default_rng(seed).permutation(len(scores))
    order = perm[np.argsort(-scores[perm], kind="stable")]
    f = (feats - feats.mean(0)) / np.maximum(feats.std(0), 1e-6) / np.sqrt(feats.shape[1])
    d2 = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)
    sim = np.exp(-d2 / (2 * bandwidth**2))
    picked, max_sim = [], np.zeros(len(scores))
    for _ in range(n_select):
        value = (1 - redundancy) * scores - redundancy * max_sim
        value[picked] = -np.inf
        best = int(order[np.argmax(value[order])])
        picked.append(best)
        max_sim = np.maximum(max_sim, sim[best])
    return picked


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 300), st.integers(0, 1000), st.floats(0.05, 0.95), st.floats(0.05, 2.0))
def test_fast_mmr_equals_naive_mmr(n, seed, redundancy, bandwidth):
    criteria, feats = random_pool(n, seed)
    k = max(1, n // 5)
    sel = HybridSelector(k, redundancy=redundancy, bandwidth=bandwidth, seed=seed).select(criteria, feats)
    want = naive_mmr(sel.scores, feats, k, redundancy, bandwidth, seed)
    assert sel.indices.tolist() == want


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.integers(0, 10_000))
def test_never_picks_the_same_item_twice_and_is_deterministic(n, seed):
    criteria, feats = random_pool(n, seed)
    k = min(n, 1 + seed % n)
    a = HybridSelector(k, seed=seed).select(criteria, feats)
    b = HybridSelector(k, seed=seed).select(criteria, feats)
    assert len(set(a.indices.tolist())) == k == len(a.indices)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.scores, b.scores)


def test_prefers_uncertain_and_diverse_candidates():
    rng = np.random.default_rng(1)
    n = 100
    good = np.zeros(n, dtype=bool)
    good[rng.choice(n, 10, replace=False)] = True
    criteria = {
        "mean_entropy": np.where(good, 2.0, 0.2) + 0.01 * rng.random(n),
        "outcome_uncertainty": np.where(good, 1.0, 0.1) + 0.01 * rng.random(n),
        "curve_diversity": np.where(good, 0.8, 0.1) + 0.01 * rng.random(n),
        "lexical_diversity": np.where(good, 0.9, 0.3) + 0.01 * rng.random(n),
    }
    distinct = np.eye(n)  # no two candidates alike: the penalty plays no part
    sel = HybridSelector(10, seed=0).select(criteria, distinct)
    assert good[sel.indices].all()
    assert sel.uncertainty[good].min() > sel.uncertainty[~good].max()
    assert sel.diversity[good].min() > sel.diversity[~good].max()


def test_near_duplicates_are_not_both_picked():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(50, 8))
    feats[1] = feats[0] + 1e-4  # a near-duplicate of the top candidate
    criteria = {c: np.linspace(1, 0, 50) for c in CRITERIA}  # 0 then 1 are the best scored
    with_penalty = HybridSelector(5, redundancy=0.5).select(criteria, feats).indices.tolist()
    without = HybridSelector(5, redundancy=0.0).select(criteria, feats).indices.tolist()
    assert without[:2] == [0, 1]
    assert 0 in with_penalty and 1 not in with_penalty


def test_missing_criteria_are_skipped_and_weights_apply():
    n = 20
    criteria = {"mean_entropy": np.arange(n, dtype=float), "outcome_uncertainty": np.full(n, np.nan)}
    sel = HybridSelector(3).select(criteria)
    assert sel.indices.tolist() == [19, 18, 17]
    flipped = {"mean_entropy": np.arange(n, dtype=float), "curve_diversity": -np.arange(n, dtype=float)}
    sel = HybridSelector(3, weights={"mean_entropy": 0.0}).select(flipped)
    assert sel.indices.tolist() == [0, 1, 2]


def test_response_criteria_from_sampled_responses():
    flat = [[1.0] * 20, [1.0] * 20]
    varied = [[0.1] * 20, [3.0] * 20]
    a = response_criteria(flat, ["x y z", "x y z"], [1, 1], bins=8)
    b = response_criteria(varied, ["x y z", "a b c"], [1, 0], bins=8)
    assert a["curve_diversity"] == 0 and b["curve_diversity"] == pytest.approx(2.9)
    assert a["outcome_uncertainty"] == 0 and b["outcome_uncertainty"] == 1.0
    assert a["lexical_diversity"] == 0.5 and b["lexical_diversity"] == 1.0
    assert b["mean_entropy"] == pytest.approx(1.55) and len(b["features"]) == 12
    none = response_criteria(flat, bins=8)
    assert np.isnan(none["pass_rate"]) and np.isnan(none["lexical_diversity"])
    assert distinct_ngrams(["one"]) == 0.0


@pytest.mark.parametrize("make, message", [
    (lambda: HybridSelector(0), "n_select"),
    (lambda: HybridSelector(2, redundancy=1.0), "redundancy"),
    (lambda: HybridSelector(2, weights={"speed": 1}), "weights"),
    (lambda: HybridSelector(5).select({"mean_entropy": np.arange(3.0)}), "n_select"),
    (lambda: HybridSelector(1).select({"bogus": np.arange(3.0)}), "criteria"),
    (lambda: HybridSelector(1).select({"mean_entropy": np.arange(3.0), "curve_diversity": np.arange(4.0)}), "criteria"),
    (lambda: HybridSelector(1).select({"mean_entropy": np.array([1.0, np.nan])}), "NaN"),
    (lambda: HybridSelector(1).select({"mean_entropy": np.arange(3.0)}, np.zeros((2, 4))), "features"),
    (lambda: HybridSelector(1).select({"mean_entropy": np.zeros(0)}), "candidates"),
])
def test_bad_input_raises_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()
