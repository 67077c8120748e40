import doctest
import importlib.util

import evaluate
import pytest
import torch

from heal_hf import EDAReference, EntropyProfile
from heal_hf.metrics import ENTROPY_DYNAMICS_PATH


@pytest.fixture(scope="module")
def dynamics():
    return evaluate.load(ENTROPY_DYNAMICS_PATH, module_type="measurement")


def test_same_numbers_as_the_core(dynamics):
    g = torch.Generator().manual_seed(1)
    data = [(torch.rand(int(n), generator=g) * 2).tolist() for n in torch.randint(3, 50, (20,), generator=g)]
    out = dynamics.compute(data=data, bins=8)
    profile = EntropyProfile.from_entropies(data, bins=8)
    reference = EDAReference.from_entropies(data, bins=8)
    assert out["count"] == 20 and out["mean_length"] == pytest.approx(float(profile.lengths.double().mean()))
    assert out["magnitude_mean"] == pytest.approx(reference.magnitude_mean, rel=1e-6)
    assert out["diff_std"] == pytest.approx(reference.diff_std.tolist(), rel=1e-6)
    assert out["curve_mean"] == pytest.approx(reference.curve_mean.tolist(), rel=1e-6)
    assert out["forking_share_mean"] == pytest.approx(float(profile.forking_share.double().mean()), rel=1e-6)
    fixed = dynamics.compute(data=data, bins=8, forking_threshold=10.0)
    assert fixed["forking_share_mean"] == 0.0 and fixed["forking_threshold"] == 10.0


def test_collapse_shows(dynamics):
    healthy = dynamics.compute(data=[[2.0, 1.2, 0.4, 1.5, 0.6, 1.1]] * 2 + [[1.8, 0.9, 1.4, 0.5, 1.0, 0.7]], bins=4)
    collapsed = dynamics.compute(data=[[0.02] * 6] * 3, bins=4)
    assert collapsed["magnitude_mean"] < 0.05 < healthy["magnitude_mean"]
    assert collapsed["total_variation_mean"] == 0.0 < healthy["total_variation_mean"]


def test_bad_input_is_a_clear_error(dynamics):
    with pytest.raises(ValueError, match="bins"):
        dynamics.compute(data=[[1.0, 2.0]], bins=1)


def test_module_docstring_example_runs_offline():
    spec = importlib.util.spec_from_file_location("dynamics_module", f"{ENTROPY_DYNAMICS_PATH}/entropy_dynamics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module._KWARGS_DESCRIPTION.replace('"heal/entropy_dynamics"', f'"{ENTROPY_DYNAMICS_PATH}"')
    test = doctest.DocTestParser().get_doctest(text, {"evaluate": evaluate}, "entropy_dynamics", None, 0)
    result = doctest.DocTestRunner().run(test)
    assert result.failed == 0 and result.attempted >= 3
