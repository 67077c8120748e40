import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from heal_hf import EDAReference, EDAReward, EntropyProfile


def general_like(n: int, t: int = 64, seed: int = 0) -> torch.Tensor:
    """Entropy sequences with a general-domain shape: high start, decay, spikes."""
    g = torch.Generator().manual_seed(seed)
    time = torch.linspace(0, 1, t)
    base = 1.5 * torch.exp(-2 * time) + 0.4
    return (base + 0.3 * torch.rand(n, t, generator=g) + (torch.rand(n, t, generator=g) > 0.9) * 1.5).clamp(min=0)


@pytest.fixture(scope="module")
def eda():
    return EDAReward(general_like(200), bins=16)


def test_reference_mean_profile_gets_the_highest_reward(eda):
    ref = eda.reference
    # A 16-token trajectory is its own curve: build one whose differences equal the
    # reference's mean differences and whose magnitude equals the reference mean.
    curve = torch.cat([torch.zeros(1), ref.diff_mean.cumsum(0)])
    curve = curve - curve.mean() + ref.magnitude_mean
    best = eda.score(curve[None])
    assert best.reward.item() == pytest.approx(1.0, abs=1e-5)
    others = eda.reward(general_like(50, seed=1))
    assert (others < best.reward).all()


def test_collapsed_trajectory_scores_clearly_below_general_like(eda):
    collapsed = torch.full((4, 64), 0.01) + 0.001 * torch.rand(4, 64)
    general = general_like(4, seed=2)
    r_collapsed, r_general = eda.reward(collapsed), eda.reward(general)
    assert r_collapsed.max() < 1e-3
    assert r_general.min() > 10 * r_collapsed.max()
    scores = eda.score(collapsed)
    assert (scores.magnitude_z < -3).all()  # sign says: less entropy than the reference


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 50)),
              elements=st.floats(allow_nan=False, allow_infinity=False, width=32)))
def test_rewards_finite_and_in_unit_interval_for_any_finite_input(eda, x):
    scores = eda.score(torch.from_numpy(x))
    assert torch.isfinite(scores.reward).all()
    assert (scores.reward > 0).all() and (scores.reward <= 1).all()
    d = eda.w_mag * scores.magnitude_gap + eda.w_dyn * scores.dynamics_gap
    assert torch.allclose(d, scores.distance, rtol=1e-5)


def test_formula_matches_heal_md_by_hand():
    ref_h = general_like(30, t=8)
    eda = EDAReward(ref_h, bins=8, w_mag=0.7, w_dyn=1.3, eps=1e-3)
    target = torch.rand(3, 8) * 2
    prof_r = EntropyProfile.from_entropies(ref_h, bins=8)
    m_r = prof_r.magnitude.double()
    dc_r = prof_r.diff.double()
    tgt = EntropyProfile.from_entropies(target, bins=8, forking_threshold=prof_r.forking_threshold)
    z_m = (tgt.magnitude.double() - m_r.mean()) / m_r.std(unbiased=False)
    z_d = (tgt.diff.double() - dc_r.mean(0)) / dc_r.std(0, unbiased=False)
    d = 0.7 * z_m**2 + 1.3 * (z_d**2).mean(1)
    assert torch.allclose(eda.reward(target).double(), torch.exp(-d / 2), rtol=1e-4)


def test_std_floor_keeps_a_single_reference_finite():
    eda = EDAReward([[1.0, 2.0, 1.0, 2.0]], bins=4, eps=1e-2)
    r = eda.reward([[1.0, 2.0, 1.0, 2.0], [1.0, 2.05, 1.0, 2.0]])
    assert r[0] == pytest.approx(1.0) and 0 < r[1] < 1


def test_reference_forms_agree():
    h = general_like(40, t=32)
    prof = EntropyProfile.from_entropies(h, bins=8)
    by_tensor = EDAReward(h, bins=8).reference
    by_list = EDAReward([row.tolist() for row in h], bins=8).reference
    by_profile = EDAReward(prof).reference
    by_ref = EDAReward(EDAReference.from_dict(by_tensor.to_dict())).reference
    for r in (by_list, by_profile, by_ref):
        assert r.magnitude_mean == pytest.approx(by_tensor.magnitude_mean, rel=1e-6)
        assert torch.allclose(r.diff_std, by_tensor.diff_std, atol=1e-6)


def test_a_datasets_column_is_a_reference_and_a_batch():
    import datasets

    h = general_like(20, t=24)
    ds = datasets.Dataset.from_dict({"entropies": h.tolist()})
    by_column = EDAReward(ds["entropies"], bins=8)
    by_list = EDAReward(h.tolist(), bins=8)
    assert by_column.reference.magnitude_mean == pytest.approx(by_list.reference.magnitude_mean, rel=1e-6)
    assert torch.equal(by_column.reward(ds["entropies"]), by_list.reward(h))
    with pytest.raises(ValueError, match="reference"):
        EDAReward({"entropies": h.tolist()})


def test_ema_update_blends_moments():
    a, b = general_like(100, seed=3), general_like(100, seed=4) + 1.0
    eda = EDAReward(a, bins=8, momentum=0.75)
    ref_b = EDAReference.from_entropies(b, bins=8)
    before = eda.reference.magnitude_mean
    after = eda.update(b).magnitude_mean
    assert after == pytest.approx(0.75 * before + 0.25 * ref_b.magnitude_mean, rel=1e-6)
    # pooled variance of a 75/25 mixture
    pooled = EDAReference.from_entropies(torch.cat([a, a, a, b]), bins=8)
    assert eda.reference.magnitude_std == pytest.approx(pooled.magnitude_std, rel=1e-4)
    assert eda.update(b, momentum=0.0).magnitude_mean == pytest.approx(ref_b.magnitude_mean, rel=1e-6)


def test_vectorized_over_the_batch_equals_one_at_a_time(eda):
    h = general_like(7, seed=5)
    batched = eda.reward(h)
    single = torch.stack([eda.reward(h[i : i + 1])[0] for i in range(7)])
    assert torch.allclose(batched, single)


@pytest.mark.parametrize("make, message", [
    (lambda: EDAReward([]), "empty"),
    (lambda: EDAReward("nope"), "reference"),
    (lambda: EDAReward(torch.rand(3, 8), w_mag=-1), "w_mag"),
    (lambda: EDAReward(torch.rand(3, 8), eps=0), "eps"),
    (lambda: EDAReward(torch.rand(3, 8), momentum=2), "momentum"),
    (lambda: EDAReward(torch.rand(3, 8), bins=8).score(EntropyProfile.from_entropies(torch.rand(2, 8), bins=4)), "bins"),
    (lambda: EDAReward(torch.rand(3, 8), bins=8).update(EDAReference.from_entropies(torch.rand(2, 8), bins=4)), "bins"),
    (lambda: EDAReward(torch.rand(3, 8), bins=8).score(torch.zeros(0, 8)), "empty"),
    (lambda: EDAReference.from_dict({"bins": 4}), "missing"),
    (lambda: EDAReference.from_entropies(torch.rand(3, 8), mask=torch.zeros(3, 8), bins=4), "0 tokens"),
    (lambda: EDAReward([[], []], bins=4), "0 tokens"),
])
def test_bad_input_raises_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_empty_reference_trajectories_are_left_out():
    h = general_like(12, t=16)
    padded = torch.cat([h, torch.zeros(3, 16)])
    mask = torch.cat([torch.ones(12, 16), torch.zeros(3, 16)]).bool()
    with_empty = EDAReference.from_entropies(padded, mask=mask, bins=8)
    assert with_empty.count == 12
    assert with_empty.magnitude_std == pytest.approx(EDAReference.from_entropies(h, bins=8).magnitude_std, rel=1e-6)


def test_reward_floor_is_positive():
    eda = EDAReward(general_like(10), bins=8, eps=1e-6)
    r = eda.reward(torch.full((1, 8), 1e6))
    assert r.item() > 0 and math.isfinite(r.item())
