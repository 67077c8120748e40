"""A pool describes one model: its build records the model's name and fingerprint; using it with another warns once."""

from __future__ import annotations

import json
import shutil
import warnings

import datasets
import evaluate
import pytest
import torch
from conftest import TINY_POOL_CONFIG, addition_rows, torch_threads
from transformers import AutoModelForCausalLM, AutoTokenizer

from heal_hf.app.pool_build import build_pool
from heal_hf.data.model_identity import ModelIdentity, OtherModelWarning, model_fingerprint, model_identity
from heal_hf.data.pool import bundled_pool_path, load_pool
from heal_hf.data.pool_shards import MANIFEST_NAME, PoolBuildConfig
from heal_hf.metrics import EDA_METRIC_PATH
from heal_hf.toy import TOY_REASONER_ID, TOY_REASONER_PATH, load_toy_reasoner


@pytest.fixture(scope="module")
def other_toy(tmp_path_factory):
    """The toy reasoner with other weights, same tokenizer: a different model the bundled pool does not describe."""
    folder = tmp_path_factory.mktemp("models") / "other-toy"
    model, tokenizer = load_toy_reasoner()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _warnings(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if issubclass(w.category, OtherModelWarning)]


def test_the_bundled_pool_records_the_toy_reasoner_by_name_and_fingerprint():
    manifest = json.loads((bundled_pool_path() / MANIFEST_NAME).read_text())
    toy = model_identity(TOY_REASONER_PATH)
    assert toy == ModelIdentity(TOY_REASONER_ID, model_fingerprint(TOY_REASONER_PATH)) and toy.fingerprint
    assert manifest["model_id"] == TOY_REASONER_ID and manifest["model_fingerprint"] == toy.fingerprint
    assert set(load_pool("bundled").unique("model_id")) == {TOY_REASONER_ID}
    assert toy.fingerprint in (bundled_pool_path() / "README.md").read_text()
    # A copy of the toy's folder is the same model; its fingerprint is of config and weights only.
    assert model_identity(TOY_REASONER_PATH.resolve()) == toy


def test_a_pool_used_with_another_model_warns_once_naming_both(other_toy, tmp_path):
    assert _warnings(lambda: load_pool("bundled", model=model_identity(TOY_REASONER_PATH))) == []
    copy = tmp_path / "toy-copy"
    shutil.copytree(TOY_REASONER_PATH, copy)
    copy.joinpath("MANIFEST.json").write_text("{}")  # not recognized as the bundled toy by name: same fingerprint
    assert model_identity(copy).name == "toy-copy"
    assert _warnings(lambda: load_pool("bundled", model=model_identity(copy))) == []

    # The loaded pool, passed on as a Dataset (as `heal-hf train` hands it to the trainer), keeps its build's
    # fingerprint: the copy is still the same model.
    assert _warnings(lambda: load_pool(load_pool("bundled"), model=model_identity(copy))) == []

    other = model_identity(other_toy)
    assert other.fingerprint and other.fingerprint != model_identity(TOY_REASONER_PATH).fingerprint
    said = _warnings(lambda: load_pool("bundled", model=other))
    assert len(said) == 1 and TOY_REASONER_ID in said[0] and "other-toy" in said[0] and other.fingerprint in said[0]
    assert _warnings(lambda: load_pool("bundled", model=other)) == []  # once


def test_the_metric_warns_when_its_pool_is_another_models():
    eda = evaluate.load(EDA_METRIC_PATH)
    predictions = [[1.0, 0.5, 0.2, 0.1] * 3]
    assert _warnings(lambda: eda.compute(predictions=predictions, pool="bundled", model_id=TOY_REASONER_ID)) == []
    said = _warnings(lambda: eda.compute(predictions=predictions, pool="bundled", model_id="someone/other-model"))
    assert len(said) == 1 and "someone/other-model" in said[0] and TOY_REASONER_ID in said[0]


def test_a_build_records_its_models_fingerprint(tiny_model_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = PoolBuildConfig(prompt_column="question", answer_column="solution", **TINY_POOL_CONFIG)
    with torch_threads(1):
        out = build_pool(model, tokenizer, datasets.Dataset.from_list(addition_rows(5)), tmp_path / "pool", config,
                         dataset_id="toy-addition", progress=False)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["model_fingerprint"] == model_fingerprint(tiny_model_dir) is not None
    assert manifest["model_fingerprint"] in (out / "README.md").read_text()
    assert _warnings(lambda: load_pool(out, model=model_identity(tiny_model_dir))) == []
    said = _warnings(lambda: load_pool(out, model=model_identity(TOY_REASONER_PATH)))
    assert len(said) == 1 and TOY_REASONER_ID in said[0]


def test_the_trl_reward_warns_when_its_pool_is_another_models(other_toy, tmp_path):
    """The drop-in reward and HEALGRPOTrainer's `pool=` (through `set_pool`) check the pool against the policy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from heal_hf.trl import EDARewardFunction

    folder = tmp_path / "policy-under-test"  # a name of its own: the warning is said once per pool and model
    shutil.copytree(other_toy, folder)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    said = _warnings(lambda: EDARewardFunction(model=model, tokenizer=tokenizer, pool="bundled"))
    assert len(said) == 1 and "policy-under-test" in said[0] and TOY_REASONER_ID in said[0]
    toy, toy_tokenizer = load_toy_reasoner()
    fn = EDARewardFunction()
    assert _warnings(lambda: fn.set_pool("bundled", toy_tokenizer, toy)) == []  # the pool's own model: silent
