import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from heal_hf import EDAReference, EDAReward, EDASettings, EntropyProfile
from heal_hf.core.eda import ESTIMATOR_CLASSES, ESTIMATORS, CalibratedEstimator, GaussianEstimator, SettingError


def general_like(n: int, t: int = 64, seed: int = 0) -> torch.Tensor:
    """Entropy sequences with a general-domain shape: high start, decay, spikes."""
    g = torch.Generator().manual_seed(seed)
    time = torch.linspace(0, 1, t)
    base = 1.5 * torch.exp(-2 * time) + 0.4
    return (base + 0.3 * torch.rand(n, t, generator=g) + (torch.rand(n, t, generator=g) > 0.9) * 1.5).clamp(min=0)


# --- v1, estimator="gaussian": docs/method.md's first reading, kept by name ---------


@pytest.fixture(scope="module")
def eda():
    return EDAReward(general_like(200), bins=16, estimator="gaussian")


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
    assert eda.settings.estimator == "gaussian" and isinstance(eda.estimator, GaussianEstimator)
    assert isinstance(EDAReward(general_like(20)).estimator, CalibratedEstimator)


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
              elements=st.floats(0, float(np.finfo(np.float32).max), allow_nan=False, allow_infinity=False, width=32)))
def test_rewards_finite_and_in_unit_interval_for_any_finite_input(eda, x):
    scores = eda.score(torch.from_numpy(x))
    assert torch.isfinite(scores.reward).all()
    assert (scores.reward > 0).all() and (scores.reward <= 1).all()
    d = eda.settings.w_mag * scores.magnitude_gap + eda.settings.w_dyn * scores.dynamics_gap
    assert torch.allclose(d, scores.distance, rtol=1e-5)


def test_formula_matches_method_md_by_hand():
    ref_h = general_like(30, t=8)
    eda = EDAReward(ref_h, bins=8, estimator="gaussian", w_mag=0.7, w_dyn=1.3, eps=1e-3)
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
    eda = EDAReward([[1.0, 2.0, 1.0, 2.0]], bins=4, estimator="gaussian", eps=1e-2)
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
    eda = EDAReward(general_like(10), bins=8, estimator="gaussian", eps=1e-6)
    r = eda.reward(torch.full((1, 8), 1e6))
    assert r.item() > 0 and math.isfinite(r.item())


# --- v2, estimator="calibrated" (docs/method.md, "v2: calibrated") ----------------


def _draw(kind: str, n: int, length: int | tuple[int, int], seed: int) -> list[np.ndarray]:
    """Reference-like entropy trajectories of four kinds (nats), lengths fixed or in [lo, hi)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = length if isinstance(length, int) else int(rng.integers(*length))
        if kind == "exponential":  # i.i.d. tokens, one level
            h = rng.exponential(1.0, t)
        elif kind == "levels":  # every trajectory at its own level
            h = rng.lognormal(0.0, 0.6) * rng.exponential(1.0, t)
        elif kind == "near_deterministic":  # the toy's general domain: ~0.004 nats, rare forks
            h = np.where(rng.random(t) < 0.08, rng.exponential(0.05, t), rng.exponential(2e-4, t))
        else:  # "decaying": high start, decay, spikes
            time = np.linspace(0, 1, t)
            h = 1.5 * np.exp(-2 * time) + 0.4 + 0.3 * rng.random(t) + (rng.random(t) > 0.9) * 1.5
        out.append(h)
    return out


KINDS = ("exponential", "levels", "near_deterministic", "decaying")


@pytest.fixture(scope="module", params=KINDS)
def calibrated(request):
    """(kind, EDAReward on 1,000 reference trajectories of 32-95 tokens, 300 fresh reference-like ones)."""
    kind = request.param
    reference = _draw(kind, 1000, (32, 96), seed=0)
    return kind, EDAReward(reference), _draw(kind, 300, (32, 96), seed=1)


def test_no_saturation_on_a_near_deterministic_reference():
    reference = _draw("near_deterministic", 1000, (32, 96), seed=0)
    assert 0.002 < np.mean(np.concatenate(reference)) < 0.006
    eda = EDAReward(reference)
    base = _draw("near_deterministic", 100, 64, seed=2)
    rewards = torch.stack([eda.reward([h * k for h in base]) for k in (3, 10, 30, 100)]).double()
    assert torch.isfinite(rewards).all() and (rewards > 1e-12).all()
    assert (rewards[1:] < rewards[:-1]).all(), "each trajectory's reward falls strictly from 3x to 100x"
    assert (rewards[1] < 0.2).all() and (rewards[3] < 0.05).all()


def test_calibration_reference_like_trajectories_score_about_one_half(calibrated):
    kind, eda, like = calibrated
    assert 0.25 <= float(eda.reward(like).median()) <= 0.75, kind


def test_the_reference_itself_has_median_reward_one_half():
    reference = _draw("levels", 301, (20, 80), seed=3)  # odd, <= CALIBRATION_SAMPLE: D0 is an exact median
    eda = EDAReward(reference)
    assert float(eda.reward(reference).median()) == pytest.approx(0.5, abs=1e-6)


def test_variation_matters_flat_and_collapsed_trajectories(calibrated):
    kind, eda, like = calibrated
    r_like = eda.reward(like)
    level = eda.reference.level
    flat = eda.reward([np.full(64, level)])
    assert flat.item() < 0.5 * float(r_like.median()), kind
    for collapsed in (np.zeros(64), np.full(64, 1e-3 * level)):
        assert eda.reward([collapsed]).item() < float(r_like.min()), kind


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(KINDS), st.integers(0, 10_000), st.sampled_from([0.01, 100.0]))
def test_scale_free(kind, seed, factor):
    reference, targets = _draw(kind, 60, (8, 64), seed), _draw(kind, 20, (1, 128), seed + 1)
    plain = EDAReward(reference).reward(targets)
    scaled = EDAReward([h * factor for h in reference]).reward([h * factor for h in targets])
    assert (plain - scaled).abs().max().item() <= 1e-3


def test_length_fair(calibrated):
    kind, eda, like = calibrated
    at_length = float(eda.reward(like).median())
    for lo, hi in ((8, 24), (128, 384)):  # a quarter and four times the reference's 32-95 tokens
        other = float(eda.reward(_draw(kind, 300, (lo, hi), seed=4)).median())
        assert abs(other - at_length) <= 0.2, (kind, lo, other, at_length)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 50)),
              elements=st.floats(0, float(np.finfo(np.float32).max), allow_nan=False, allow_infinity=False, width=32)),
       st.sampled_from(KINDS), st.sampled_from(["both", "below"]))
def test_calibrated_reward_in_unit_interval_for_any_finite_input(x, kind, direction):
    eda = EDAReward(_draw(kind, 30, (4, 40), seed=5), direction=direction)
    for reward in (eda.reward(torch.from_numpy(x)), EDAReward(x.tolist()).reward(_draw(kind, 3, 9, seed=6))):
        assert torch.isfinite(reward).all() and (reward > 0).all() and (reward <= 1).all()


def test_calibrated_formula_recomputed_by_hand():
    """docs/method.md's calibrated estimator, recomputed with numpy from the token entropies."""
    reference, targets = _draw("levels", 41, (6, 30), seed=7), _draw("levels", 5, (3, 50), seed=8)
    w = (0.5, 1.0, 2.0)
    eda = EDAReward(reference, bins=8, w_mag=w[0], w_var=w[1], w_dyn=w[2])
    tau = np.quantile(np.concatenate(reference), 0.8)

    def features(h):
        d = np.diff(h)
        t = len(h)
        curve = np.array([h[(np.arange(t) * 8) // t == k].mean() for k in range(8)]) if t >= 8 else \
            np.interp((np.arange(8) + 0.5) * t / 8 - 0.5, np.arange(t), h)
        phases = curve.reshape(4, 2).mean(1) / curve.mean()
        vol = d.std() if len(d) else 0.0
        raw = [h.mean(), np.abs(d).mean() if len(d) else 0.0, vol, (h > tau).mean(), *phases]
        noise = [h.var(), np.abs(d).var() if len(d) else 0.0, np.abs(d - d.mean()).var() if len(d) else 0.0]
        return np.array(raw), np.array(noise), t

    ref = [features(h) for h in reference]
    raw = np.stack([r[0] for r in ref])
    lengths = np.array([r[2] for r in ref], dtype=float)
    level = raw[:, 0].mean()
    x = raw.copy()
    x[:, :3] = np.log(raw[:, :3] / level + 0.01)
    mean, var = x.mean(0), x.var(0)
    weights = lengths / lengths.sum()
    pooled = (np.stack([r[1] for r in ref]) * weights[:, None]).sum(0)
    token = np.concatenate([
        pooled / (raw[:, :3].mean(0) + 0.01 * level) ** 2,
        [(raw[:, 3] * (1 - raw[:, 3]) * weights).sum()],
        np.full(4, 4 * pooled[0] / (raw[:, 0].mean() + 0.01 * level) ** 2),
    ])
    between = np.maximum(var - token * (1 / lengths).mean(), 0)
    floor = 0.05 * np.concatenate([np.ones(3), np.maximum(np.abs(mean[3:]), 1e-2)])

    def distance(raw_t, t):
        xt = raw_t.copy()
        xt[:3] = np.log(raw_t[:3] / level + 0.01)
        z = (xt - mean) / np.sqrt(np.maximum(between + token / t, floor**2))
        parts = [z[0] ** 2, (z[1:4] ** 2).mean(), (z[4:] ** 2).mean()]
        return sum(wi * p for wi, p in zip(w, parts)) / sum(w)

    d0 = np.median([distance(r[0], r[2]) for r in ref])
    expected = [1 / (1 + distance(*features(h)[::2]) / d0) for h in targets]
    assert eda.d0 == pytest.approx(d0, rel=1e-5)
    assert np.allclose(eda.reward(targets).numpy(), expected, rtol=1e-4)


def test_direction_below_penalizes_only_less_entropy():
    reference = _draw("levels", 400, (32, 96), seed=9)
    both, below = EDAReward(reference), EDAReward(reference, direction="below")
    like = _draw("levels", 50, 64, seed=10)
    louder = [h * 20 for h in like]
    assert (below.reward(louder) > 5 * both.reward(louder)).all()
    assert below.reward([np.zeros(64)]).item() < 0.05
    scores = below.score(louder)
    assert (scores.magnitude_gap == 0).all() and (scores.variation_gap == 0).all()


def test_parts_of_d_say_why_a_trajectory_is_far():
    eda = EDAReward(_draw("exponential", 500, 64, seed=11))
    level = eda.reference.level
    flat = eda.score([np.full(64, level)])
    assert flat.magnitude_gap.item() < 1 and flat.variation_gap.item() > 10  # right level, no variation
    late = np.concatenate([np.zeros(48), np.full(16, 4 * level)])  # all the entropy at the end
    assert eda.score([late]).dynamics_gap.item() > 10


def test_calibrated_round_trip_and_blend():
    a, b = _draw("levels", 200, (20, 60), seed=12), _draw("levels", 200, (20, 60), seed=13)
    eda = EDAReward(a, momentum=0.75)
    again = EDAReward(EDAReference.from_dict(eda.reference.to_dict()))
    assert torch.allclose(again.reward(b), eda.reward(b), atol=1e-6)
    ref_b = EDAReference.from_entropies(b)
    assert torch.allclose(eda.reference.blend(ref_b, 0.0).feature_mean, ref_b.feature_mean, atol=1e-9)
    assert torch.allclose(eda.reference.blend(ref_b, 1.0).feature_var, eda.reference.feature_var, atol=1e-9)
    blended = eda.update(b)
    assert blended.level == pytest.approx(0.75 * EDAReference.from_entropies(a).level + 0.25 * ref_b.level)
    assert len(blended.sample_lengths) == 200
    r = eda.reward(b)
    assert torch.isfinite(r).all() and 0.2 < float(r.median()) < 0.8


@pytest.mark.parametrize("field_name, value", [
    ("feature_var", float("nan")), ("token_var", -1.0), ("magnitude_std", -0.5), ("diff_std", float("nan")),
    ("level", -1.0),
])
def test_from_dict_refuses_nan_or_negative_spreads(field_name, value):
    data = EDAReference.from_entropies(_draw("exponential", 20, 16, seed=14), bins=8).to_dict()
    data[field_name] = [value] * len(data[field_name]) if isinstance(data[field_name], list) else value
    with pytest.raises(ValueError, match=field_name):
        EDAReference.from_dict(data)


@pytest.mark.parametrize("estimator", ["calibrated", "gaussian"])
def test_negative_entropies_are_a_clear_error(estimator):
    eda = EDAReward(_draw("exponential", 20, 16, seed=15), estimator=estimator)
    with pytest.raises(ValueError, match="negative.*Log-probabilities"):
        eda.reward([[-0.7, -1.2, -0.1]])
    with pytest.raises(ValueError, match="negative"):
        EDAReward([[0.5, -2.3]])
    assert eda.reward([[0.5, -1e-8]]).item() == eda.reward([[0.5, 0.0]]).item()  # rounding noise reads as 0


def test_bins_that_disagree_with_a_given_reference_are_an_error():
    ref = EDAReference.from_entropies(_draw("exponential", 10, 16, seed=16), bins=16)
    assert EDAReward(ref).bins == 16
    with pytest.raises(ValueError, match="bins: 8 disagrees"):
        EDAReward(ref, bins=8)
    with pytest.raises(ValueError, match="bins"):
        EDAReward(EntropyProfile.from_entropies(torch.rand(4, 16), bins=16), bins=32)


@pytest.mark.parametrize("make, message", [
    (lambda: EDAReward(torch.rand(3, 8), estimator="kde"), "estimator"),
    (lambda: EDAReward(torch.rand(3, 8), direction="above"), "direction"),
    (lambda: EDAReward(torch.rand(3, 8), estimator="gaussian", direction="below"), "direction"),
    (lambda: EDAReward(torch.rand(3, 8), w_var=float("inf")), "w_var"),
    (lambda: EDAReward(torch.rand(3, 8), w_mag=0, w_var=0, w_dyn=0), "at least one weight"),
    (lambda: EDAReward(torch.rand(3, 8), rel_floor=0), "rel_floor"),
])
def test_bad_calibrated_settings_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_reference_of_more_than_2_to_the_24_tokens_works():
    n, t = 2**24 // 256 + 8, 256
    entropies = torch.rand(n, t, generator=torch.Generator().manual_seed(0))
    ref = EDAReference.from_entropies(entropies, bins=8)
    assert ref.count == n and ref.forking_threshold == pytest.approx(0.8, abs=1e-3)
    assert 0.25 < float(EDAReward(ref).reward(entropies[:200]).median()) < 0.75


# --- settings, the estimators' registry, references saved before ------------------


def test_settings_are_one_frozen_checked_object():
    settings = EDASettings(estimator="gaussian", w_mag=0.5)
    with pytest.raises(AttributeError):
        settings.w_mag = 2.0  # frozen
    assert settings.replace(w_dyn=2.0) == EDASettings(estimator="gaussian", w_mag=0.5, w_dyn=2.0)
    with pytest.raises(SettingError, match="momentum") as err:
        settings.replace(momentum=1.5)
    assert err.value.field == "momentum"
    with pytest.raises(SettingError, match="w_vra: not an EDA setting"):
        settings.replace(w_vra=1.0)
    # Given by object or by name, the same reward.
    h, target = general_like(30, t=16), general_like(5, t=16, seed=9)
    by_object = EDAReward(h, bins=8, settings=settings).reward(target)
    assert torch.equal(by_object, EDAReward(h, bins=8, estimator="gaussian", w_mag=0.5).reward(target))
    assert EDAReward(h, bins=8, settings=settings, w_mag=1.0).settings == EDASettings(estimator="gaussian")


def test_every_estimator_has_a_class_fitted_into_the_reference():
    assert tuple(ESTIMATOR_CLASSES) == ESTIMATORS
    ref = EDAReference.from_entropies(general_like(20, t=16), bins=8)
    for name, cls in ESTIMATOR_CLASSES.items():
        assert cls.name == name and isinstance(ref, cls.stats)
        assert isinstance(EDAReward(ref, estimator=name).estimator, cls)


def test_a_reference_saved_by_heal_hf_0_1_0_loads_and_scores_as_it_did():
    saved = json.loads((Path(__file__).parent / "data" / "eda_reference_0.1.0.json").read_text())
    ref = EDAReference.from_dict(saved["reference"])
    assert ref.to_dict() == saved["reference"]
    for estimator, want in saved["reward"].items():
        assert EDAReward(ref, estimator=estimator).reward(saved["target"]).tolist() == want, estimator
