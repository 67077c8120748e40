import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from heal_hf import EntropyProfile

seqs = st.lists(st.lists(st.floats(0, 12, allow_nan=False, width=32), min_size=0, max_size=90), min_size=1, max_size=6)


def naive_curve(h: list[float], k: int) -> np.ndarray:
    t = len(h)
    if t == 0:
        return np.zeros(k)
    if t >= k:
        return np.array([np.mean([h[i] for i in range(t) if (i * k) // t == b]) for b in range(k)])
    centres = np.clip((np.arange(k) + 0.5) * t / k - 0.5, 0, t - 1)
    return np.interp(centres, np.arange(t), h)


@settings(max_examples=150, deadline=None)
@given(seqs, st.integers(2, 40))
def test_matches_a_naive_per_trajectory_implementation(batch, k):
    p = EntropyProfile.from_entropies(batch, bins=k, forking_threshold=3.0)
    assert p.curve.shape == (len(batch), k) and p.diff.shape == (len(batch), k - 1)
    for i, h in enumerate(batch):
        h64 = np.asarray(h, dtype=np.float64)
        assert np.allclose(p.curve[i].numpy(), naive_curve(list(h64), k), atol=1e-4)
        d = np.diff(h64)
        assert p.magnitude[i].item() == pytest.approx(h64.mean() if len(h) else 0.0, abs=1e-4)
        assert p.total_variation[i].item() == pytest.approx(np.abs(d).mean() if len(d) else 0.0, abs=1e-4)
        assert p.volatility[i].item() == pytest.approx(d.std() if len(d) else 0.0, abs=1e-3)
        assert p.forking_share[i].item() == pytest.approx((h64 > 3.0).mean() if len(h) else 0.0, abs=1e-6)
        assert p.lengths[i].item() == len(h)
    for field in (p.curve, p.magnitude, p.total_variation, p.volatility, p.forking_share):
        assert torch.isfinite(field).all()


@settings(max_examples=60, deadline=None)
@given(seqs, st.integers(0, 5))
def test_any_mask_layout_equals_the_ragged_list(batch, left_pad):
    width = max(len(h) for h in batch) + left_pad
    values = torch.full((len(batch), width), 99.0)
    mask = torch.zeros(len(batch), width, dtype=torch.bool)
    for i, h in enumerate(batch):
        values[i, width - len(h):] = torch.tensor(h, dtype=torch.float32)
        mask[i, width - len(h):] = True
    a = EntropyProfile.from_entropies(values, mask, bins=8, forking_threshold=1.0)
    b = EntropyProfile.from_entropies(batch, bins=8, forking_threshold=1.0)
    assert torch.allclose(a.curve, b.curve) and torch.allclose(a.volatility, b.volatility)


def test_edge_lengths_are_documented_values():
    p = EntropyProfile.from_entropies([[], [2.5], [1.0, 3.0]], bins=4, forking_threshold=2.0)
    assert torch.all(p.curve[0] == 0) and p.magnitude[0] == 0 and p.lengths[0] == 0
    assert torch.all(p.curve[1] == 2.5) and p.total_variation[1] == 0 and p.volatility[1] == 0
    assert p.volatility[2] == 0 and p.total_variation[2] == 2.0
    # bin centres at token positions 0, 0.25, 0.75, 1 (clamped), linearly interpolated
    assert torch.allclose(p.curve[2], torch.tensor([1.0, 1.5, 2.5, 3.0]))


def test_t_equal_k_uses_the_tokens_themselves():
    h = torch.arange(32.0)[None]
    assert torch.equal(EntropyProfile.from_entropies(h, bins=32).curve, h)


def test_default_forking_threshold_is_the_80th_percentile():
    h = torch.arange(100.0)[None]
    p = EntropyProfile.from_entropies(h)
    assert p.forking_threshold == pytest.approx(np.quantile(np.arange(100.0), 0.8))
    assert p.forking_share.item() == pytest.approx(0.2, abs=0.011)


def test_indexing_concat_features_and_dict():
    p = EntropyProfile.from_entropies(torch.rand(5, 40), bins=8, forking_threshold=0.5)
    q = EntropyProfile.concat([p[[0, 1]], p[2:]])
    assert torch.equal(q.curve, p.curve) and len(q) == 5
    assert p.features().shape == (5, 12)
    d = p.to_dict()
    assert len(d["curve"]) == 5 and len(d["curve"][0]) == 8 and d["length"] == [40] * 5
    with pytest.raises(ValueError, match="bins"):
        EntropyProfile.concat([p, EntropyProfile.from_entropies(torch.rand(2, 9), bins=4, forking_threshold=0.5)])


@pytest.mark.parametrize("kwargs, message", [
    (dict(entropies=torch.zeros(0, 5)), "empty"),
    (dict(entropies=[]), "empty"),
    (dict(entropies=torch.zeros(5)), "1-D"),
    (dict(entropies=torch.zeros(2, 3, 4)), r"\(B, T\)"),
    (dict(entropies=torch.tensor([[1.0, float("nan")]])), "NaN"),
    (dict(entropies=torch.zeros(2, 5), mask=torch.ones(2, 4)), "mask"),
    (dict(entropies=torch.zeros(2, 5), bins=1), "bins"),
    (dict(entropies=[[1.0, "x"]]), "entropies"),
])
def test_bad_input_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EntropyProfile.from_entropies(**kwargs)


def test_masked_nan_is_ignored():
    h = torch.tensor([[1.0, 2.0, float("nan")]])
    p = EntropyProfile.from_entropies(h, torch.tensor([[True, True, False]]), bins=2)
    # The profile of [1, 2] alone: two bins of one token each, mean 1.5, one step of +1.
    assert p.curve.tolist() == [[1.0, 2.0]] and p.lengths.tolist() == [2]
    assert p.magnitude.tolist() == [1.5] and p.total_variation.tolist() == [1.0] and p.volatility.tolist() == [0.0]
