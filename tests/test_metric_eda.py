import doctest
import importlib.util

import evaluate
import pytest
import torch

from heal_hf import EDAReward
from heal_hf.metrics import EDA_METRIC_PATH


@pytest.fixture(scope="module")
def eda_metric():
    return evaluate.load(EDA_METRIC_PATH)


@pytest.mark.parametrize("settings", [
    {"w_mag": 0.5},
    {"estimator": "calibrated", "w_var": 2.0, "direction": "below", "rel_floor": 0.1},
    {"estimator": "gaussian", "w_mag": 0.5, "eps": 1e-2},
])
def test_same_numbers_as_the_core(eda_metric, settings):
    g = torch.Generator().manual_seed(0)
    general = [(torch.rand(int(n), generator=g) * 2).tolist() for n in torch.randint(5, 60, (30,), generator=g)]
    target = [(torch.rand(int(n), generator=g)).tolist() for n in torch.randint(5, 60, (7,), generator=g)]
    out = eda_metric.compute(predictions=target, references=general, bins=8, **settings)
    core = EDAReward(general, bins=8, **settings).score(target)
    assert len(out["eda_reward"]) == 7  # references: a set of 30, not row-aligned
    for name in ("eda_reward", "distance", "magnitude_gap", "variation_gap", "dynamics_gap"):
        assert out[name] == pytest.approx(getattr(core, name.replace("eda_", "")).tolist(), rel=1e-6), name
    assert out["mean_eda_reward"] == pytest.approx(float(core.reward.mean()), rel=1e-6)


def test_add_batch_then_compute_with_a_reference_dict(eda_metric):
    ref = EDAReward([[1.0, 2.0, 1.5, 0.5] * 3, [1.5, 1.0, 2.0, 0.7] * 3], bins=4).reference
    eda_metric.add_batch(predictions=[[1.0, 2.0, 1.5, 0.5] * 3])
    eda_metric.add_batch(predictions=[[0.01] * 12])
    out = eda_metric.compute(pool=ref.to_dict())
    assert out["eda_reward"] == pytest.approx(EDAReward(ref).reward([[1.0, 2.0, 1.5, 0.5] * 3, [0.01] * 12]).tolist())
    assert out["eda_reward"][0] > 100 * out["eda_reward"][1]
    assert out["magnitude_z"][1] < 0


def test_references_or_pool_exactly_one(eda_metric):
    with pytest.raises(ValueError, match="references / pool"):
        eda_metric.compute(predictions=[[1.0, 2.0]])


def test_module_docstring_example_runs_offline():
    spec = importlib.util.spec_from_file_location("eda_module", f"{EDA_METRIC_PATH}/eda.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    offline = {"evaluate": evaluate, "__name__": "eda_doctest"}
    text = module._KWARGS_DESCRIPTION.replace('evaluate.load("heal/eda")', f'evaluate.load("{EDA_METRIC_PATH}")')
    test = doctest.DocTestParser().get_doctest(text, offline, "eda", None, 0)
    result = doctest.DocTestRunner().run(test)
    assert result.failed == 0 and result.attempted >= 3
