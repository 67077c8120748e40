"""heal_hf.trl: the EDA reward function, the domain-mixing sampler and HEALGRPOTrainer, on real TRL steps."""

import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import evaluate
import pytest
import torch
from conftest import peaked_tiny_lm

from heal_hf.core.eda import EDAReference, EDAReward, EDASettings, SettingError
from heal_hf.core.entropy import token_entropy
from heal_hf.core.verifiers import verifier_reward
from heal_hf.data.pool import (
    POOL_FEATURES,
    pool_rows,
    tokenizer_fingerprint,
    with_pool_scores,
)
from heal_hf.data.rollout import sample_with_entropies
from heal_hf.data.run_folder import STATE_FILE
from heal_hf.metrics import EDA_METRIC_PATH
from heal_hf.toy.tiny import char_tokenizer, tiny_causal_lm
from heal_hf.trl import (
    ENTROPIES_KWARG,
    TRL_PRIVATE_OVERRIDES,
    DomainMixSampler,
    EDARewardFunction,
    GenerationEntropyRecorder,
    HEALConfig,
    HEALGRPOTrainer,
    TrainerEntropies,
    eda_reward_function,
    entropy_source,
    policy_token_entropies,
)


def mixed_set(n_target: int = 4, n_general: int = 12) -> datasets.Dataset:
    target = [(f"Q: {i} + 5 = ?\nA:", str(i + 5), "target") for i in range(n_target)]
    general = [(f"Q: {i} * 3 = ?\nA:", str(3 * i), "general") for i in range(n_general)]
    rows = target + general
    return datasets.Dataset.from_dict({k: list(v) for k, v in zip(("prompt", "answer", "domain"), zip(*rows))})


def heal_config(tmp_path, **kw) -> HEALConfig:
    defaults = dict(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=16, num_generations=4,
        max_completion_length=12, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
        disable_tqdm=True, bf16=False, activation_checkpointing=False, learning_rate=1e-2, seed=0,
    )
    return HEALConfig(**{**defaults, **kw})


@pytest.fixture(scope="module")
def eda_metric():
    return evaluate.load(EDA_METRIC_PATH, keep_in_memory=True)


# --- entropies ------------------------------------------------------------------


def test_generation_hook_and_policy_forward_agree_on_a_padded_batch():
    model, tok = peaked_tiny_lm(seed=1)
    prompts = ["Q: 1 + 1 = ?\nA:", "Q: sort 3 1 2 9 9\nA:", "x"]
    enc = tok(prompts, return_tensors="pt", padding=True)
    recorder = GenerationEntropyRecorder(temperature=0.7)
    torch.manual_seed(0)
    with recorder.attached(model), torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=0.7, top_k=5, max_new_tokens=10,
                             pad_token_id=tok.pad_token_id)
    assert not model._forward_hooks  # the hook is gone after the block
    new = out[:, enc.input_ids.shape[1]:]
    completion_ids = [row[: n].tolist() for row, n in zip(new, [10, 4, 7])]  # ragged, as after EOS masking
    recorded = recorder.per_completion(completion_ids)
    forward = policy_token_entropies(model, tok, prompts, completion_ids, temperature=0.7, batch_size=2)
    assert [len(r) for r in recorded] == [10, 4, 7] == [len(f) for f in forward]
    for r, f in zip(recorded, forward):
        assert r == pytest.approx(f, abs=1e-4)
    # top-k=5 sampling does not change the entropy: it is over the full vocabulary.
    assert max(max(r) for r in recorded) > math.log(5) + 0.1


def test_pool_and_trainer_entropies_agree_under_a_repetition_penalty_and_temperature():
    """One definition: softmax(raw logits / T) over the full vocabulary, before the penalty and every warper."""
    model, tok = peaked_tiny_lm(seed=2)
    model.generation_config.repetition_penalty = 1.5  # sampling (pool and trainer alike) applies it; entropies do not
    prompts, k = ["Q: 1 + 1 = ?\nA:", "Q: sort 3 1 2 9 9\nA:", "x"], 3
    pool = sample_with_entropies(model, tok, prompts, num_samples=k, max_new_tokens=16, temperature=0.7, seed=0)
    samples = [c for per_prompt in pool.token_ids for c in per_prompt]
    pool_entropies = pool.flat_entropies()
    # The trainer's teacher-forced forward (the drop-in) on the pool's samples.
    teacher = policy_token_entropies(model, tok, [p for p in prompts for _ in range(k)], samples, temperature=0.7)
    # The trainer's generation hook, replaying the pool's sampling (same seed, one batch).
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    recorder = GenerationEntropyRecorder(temperature=0.7)
    torch.manual_seed(0)
    with recorder.attached(model), torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=16,
                             num_return_sequences=k, pad_token_id=tok.pad_token_id)
    replayed = [row[: len(c)].tolist() for row, c in zip(out[:, enc.input_ids.shape[1]:], samples)]
    assert replayed == samples and sum(map(len, samples)) > 20
    hooked = recorder.per_completion(samples)
    for theirs in (teacher, hooked):
        assert max(abs(a - b) for x, y in zip(pool_entropies, theirs) for a, b in zip(x, y)) < 1e-5
    # The penalty matters here: entropies of the penalized logits (what a LogitsProcessor sees) are far off.
    from transformers import RepetitionPenaltyLogitsProcessor

    row = torch.tensor([tok(prompts[0]).input_ids + samples[0]])
    logits = model(row).logits[0, -len(samples[0]) - 1 : -1].detach()
    penalized = torch.stack([RepetitionPenaltyLogitsProcessor(1.5)(row[:, : row.shape[1] - len(samples[0]) + t],
                                                                  logits[t : t + 1].clone())[0]
                             for t in range(len(samples[0]))])
    assert (token_entropy(penalized, temperature=0.7) - torch.tensor(pool_entropies[0])).abs().max() > 1e-3


def test_recorder_batches_small_steps_without_changing_their_entropies():
    from types import SimpleNamespace

    class FakeLM(torch.nn.Module):
        def forward(self, logits):
            return SimpleNamespace(logits=logits)

    g = torch.Generator().manual_seed(0)
    steps = [torch.randn(3, 2, 50, generator=g) * 3 for _ in range(5)] + [torch.randn(4, 1, 50, generator=g)]
    want = [token_entropy(s[:, -1]) for s in steps]
    for chunk_bytes in (1, 2 * 3 * 50 * 4, 2**20):  # every step at once, flushes every 2 steps, one flush
        recorder, model = GenerationEntropyRecorder(chunk_bytes=chunk_bytes), FakeLM()
        with recorder.attached(model):
            for s in steps:
                model(s)
        assert len(recorder.steps) == len(want) and not recorder._pending
        for got, w in zip(recorder.steps, want):
            assert torch.equal(got, w)


# --- the reward function on given entropies --------------------------------------


def ragged(generator, n, low, high, scale):
    return [(torch.rand(int(k), generator=generator) * scale).tolist() for k in torch.randint(low, high, (n,), generator=generator)]


def test_reward_is_lambda_times_core_eda_for_target_rows_and_none_for_general(eda_metric):
    g = torch.Generator().manual_seed(0)
    general, target = ragged(g, 6, 8, 30, 2.0), ragged(g, 3, 8, 30, 1.0)
    domains = ["general", "target", "general", "general", "target", "general", "general", "target", "general"]
    it_g, it_t = iter(general), iter(target)
    entropies = [next(it_t) if d == "target" else next(it_g) for d in domains]
    logged = {}
    kwargs = {"domain": domains, ENTROPIES_KWARG: entropies, "log_metric": logged.__setitem__}
    want = EDAReward(general, bins=8).reward(target).tolist()
    for metric in (None, eda_metric):  # the core and the evaluate module give the same numbers
        fn = EDARewardFunction(metric=metric, weight=0.1, bins=8)
        out = fn(["p"] * 9, ["c"] * 9, None, **kwargs)
        assert [r is None for r in out] == [d == "general" for d in domains]
        assert [r for r in out if r is not None] == pytest.approx([0.1 * w for w in want], rel=1e-5)
    assert logged["heal/eda_reward"] == pytest.approx(sum(want) / 3, rel=1e-5)
    assert logged["heal/reference_count"] == 6
    mean_general = sum(sum(e) / len(e) for e in general) / 6
    assert logged["heal/entropy/general"] == pytest.approx(mean_general, rel=1e-5)
    assert logged["heal/entropy_retention/target"] == pytest.approx(1.0)


def test_reference_fallbacks_ema_and_only_correct(caplog):
    g = torch.Generator().manual_seed(1)
    general, target = ragged(g, 8, 8, 30, 2.0), ragged(g, 2, 8, 30, 1.0)
    pool_ref = EDAReference.from_entropies(ragged(g, 20, 8, 30, 1.5), bins=8)
    only_target = {"domain": ["target", "target"], ENTROPIES_KWARG: target}
    # No reference yet (no pool, no batch with general rows): EDA abstains, and says so once.
    for mode in ("batch", "ema"):
        fn = EDARewardFunction(bins=8, reference=mode)
        with caplog.at_level(logging.WARNING, logger="heal_hf.trl.reward"):
            caplog.clear()
            assert fn(["p"] * 2, ["c"] * 2, None, **only_target) == [None, None]
            assert fn(["p"] * 2, ["c"] * 2, None, **only_target) == [None, None]
        said = [r for r in caplog.records if "EDA abstains" in r.getMessage()]
        assert len(said) == 1 and "pool" in said[0].getMessage(), mode
        # The first batch with general rows ends the abstention, and later ones without them reuse it.
        fn(["p"] * 10, ["c"] * 10, None, domain=["general"] * 8 + ["target"] * 2, **{ENTROPIES_KWARG: general + target})
        assert None not in fn(["p"] * 2, ["c"] * 2, None, **only_target)
    fn = EDARewardFunction(bins=8, pool=pool_ref, weight=1.0)
    assert fn(["p"] * 2, ["c"] * 2, None, **only_target) == pytest.approx(EDAReward(pool_ref).reward(target).tolist())
    # Without a pool, a batch short of general rows reuses the last batch that had enough.
    fn = EDARewardFunction(bins=8, weight=1.0)
    fn(["p"] * 10, ["c"] * 10, None, domain=["general"] * 8 + ["target"] * 2, **{ENTROPIES_KWARG: general + target})
    assert fn(["p"] * 2, ["c"] * 2, None, **only_target) == pytest.approx(EDAReward(general, bins=8).reward(target).tolist())
    # EMA: the pool blended with each batch's general statistics (the core's blend).
    fn = EDARewardFunction(bins=8, pool=pool_ref, reference="ema", momentum=0.7, weight=1.0)
    out = fn(["p"] * 10, ["c"] * 10, None, domain=["general"] * 8 + ["target"] * 2, **{ENTROPIES_KWARG: general + target})
    blended = pool_ref.blend(EDAReference.from_entropies(general, bins=8), 0.7)
    assert out[8:] == pytest.approx(EDAReward(blended).reward(target).tolist(), rel=1e-6)
    fn.track = False  # an evaluation batch: scored against the running reference, which stays as it was
    again = fn(["p"] * 10, ["c"] * 10, None, domain=["general"] * 8 + ["target"] * 2, **{ENTROPIES_KWARG: general + target})
    assert fn.ema_reference is not None and fn.ema_reference.magnitude_mean == pytest.approx(blended.magnitude_mean)
    assert again[8:] == pytest.approx(EDAReward(blended.blend(EDAReference.from_entropies(general, bins=8), 0.7)).reward(target).tolist(), rel=1e-6)
    assert EDARewardFunction(bins=8).state_dict()["ema_reference"] is None
    restored = EDARewardFunction(bins=8, reference="ema")
    restored.load_state_dict(fn.state_dict())
    assert restored.ema_reference.magnitude_mean == pytest.approx(blended.magnitude_mean)
    # EDA only for correct rollouts: a wrong answer gets 0.0, a right one its EDA.
    fn = EDARewardFunction(bins=8, pool=pool_ref, only_correct=True, weight=1.0)
    out = fn(["p"] * 2, ["The answer is 7", "The answer is 8"], None, answer=["7", "7"], **only_target)
    assert out[0] == pytest.approx(float(EDAReward(pool_ref).reward(target[:1])[0])) and out[1] == 0.0
    with pytest.raises(ValueError, match="unknown domains"):
        fn(["p"], ["c"], None, domain=["math"], **{ENTROPIES_KWARG: target[:1]})
    with pytest.raises(ValueError, match="model: the EDA reward needs the policy model.*callbacks=\\[eda\\]"):
        EDARewardFunction(bins=8, pool=pool_ref)(["p"], ["c"], [[1, 2]], domain=["target"])
    with pytest.raises(ValueError, match="reference"):
        EDARewardFunction(reference="nearest")
    with pytest.raises(ValueError, match='reference="pool" needs'):
        EDARewardFunction(reference="pool", bins=8)(["p"], ["c"], None, domain=["target"], **{ENTROPIES_KWARG: target[:1]})


# --- the sampler -----------------------------------------------------------------


def test_every_chunk_mixes_domains_in_the_configured_ratio():
    domains = ["target"] * 5 + ["general"] * 15
    sampler = DomainMixSampler(domains, mini_repeat_count=3, batch_size=4, repeat_count=2, target_fraction=0.5, seed=3)
    order = list(sampler)
    assert len(order) == len(sampler) == (20 // 4) * 4 * 3 * 2
    chunks = [order[i : i + 24] for i in range(0, len(order), 24)]
    seen_targets = []
    for chunk in chunks:
        first = chunk[:12]
        assert chunk[12:] == first  # repeat_count: the same chunk again
        unique = first[::3]
        assert all(first[3 * j : 3 * j + 3] == [u] * 3 for j, u in enumerate(unique))  # mini_repeat_count
        assert sorted(domains[i] for i in unique) == ["general", "general", "target", "target"]
        assert len(set(unique)) == 4
        seen_targets += [i for i in unique if domains[i] == "target"]
    assert set(seen_targets) == set(range(5))  # each target row comes up before any repeats twice
    assert list(DomainMixSampler(domains, 3, 4, 2, 0.5, seed=3)) == order
    assert list(DomainMixSampler(domains, 3, 4, 2, 0.5, seed=4)) != order
    # Default share: the dataset's (5 of 20 -> 1 of 4).
    assert DomainMixSampler(domains, 1, 4).n_target == 1
    with pytest.raises(ValueError, match="a generation batch of 1 prompt\\(s\\) cannot hold both"):
        DomainMixSampler(domains, 4, 1)  # one prompt per batch: no batch could mix the domains
    with pytest.raises(ValueError, match="takes 3 target-domain prompts but the dataset has 2"):
        DomainMixSampler(["target"] * 2 + ["general"] * 10, 1, 4, target_fraction=0.75)


# --- real GRPO steps: both paths on the same batch ---------------------------------


@pytest.mark.parametrize("lora", [False, True])
def test_trainer_and_drop_in_give_the_same_rewards_on_the_same_batch(tmp_path, eda_metric, lora):
    model, tok = peaked_tiny_lm()
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    drop_in = eda_reward_function(eda_metric, model, tok, temperature=1.0)
    seen = {}

    def eda_drop_in(prompts, completions, completion_ids, **kwargs):
        captured = kwargs.pop(ENTROPIES_KWARG)  # the trainer's; the drop-in computes its own
        seen.setdefault("captured", captured)
        seen.setdefault("batch", (prompts, completion_ids, kwargs["domain"]))
        seen["last"] = (captured, kwargs["domain"])
        return drop_in(prompts, completions, completion_ids, **kwargs)

    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    trainer = HEALGRPOTrainer(
        model=model, reward_funcs=[verifier_reward("numeric"), eda_drop_in],
        args=heal_config(tmp_path, rollout_metrics=["length"]), train_dataset=mixed_set(), processing_class=tok,
        peft_config=peft_config,
    )
    trainer.train()

    # The last batch's per-row rewards, as TRL logged them: equal, None (NaN) on general rows.
    ours = torch.tensor(trainer._logs["rewards"]["eda"], dtype=torch.float64)
    theirs = torch.tensor(trainer._logs["rewards"]["eda_drop_in"], dtype=torch.float64)
    assert len(ours) == 16 and torch.equal(torch.isnan(ours), torch.isnan(theirs))
    assert int((~torch.isnan(ours)).sum()) == 4  # 1 target prompt x 4 generations per batch
    assert torch.allclose(ours.nan_to_num(), theirs.nan_to_num(), atol=1e-6, rtol=0)
    # The target rows' rewards, recomputed with the core EDA reward from the last batch's entropies and general rows.
    captured, domains = seen["last"]
    target_rows = [i for i, d in enumerate(domains) if d == "target"]
    reference = EDAReward([e for e, d in zip(captured, domains) if d == "general"])
    expected = 0.1 * reference.reward([captured[i] for i in target_rows]).double()
    assert torch.allclose(ours[target_rows], expected, rtol=1e-5, atol=0)
    # Logged metrics are the rewards' own: the per-step mean of r_EDA / lambda.
    logs = [e for e in trainer.state.log_history if "heal/eda_reward" in e]
    assert len(logs) == 2
    last = logs[-1]
    assert last["rewards/eda/mean"] == pytest.approx(float(torch.nanmean(ours)), rel=1e-5)
    assert last["heal/eda_reward"] == pytest.approx(float(torch.nanmean(ours)) / 0.1, rel=1e-5)
    for key in ("heal/entropy/target", "heal/entropy/general", "heal/entropy_retention/target",
                "heal/entropy_retention/general", "heal/reward/target", "heal/reward/general"):
        assert math.isfinite(last[key]), key
    assert logs[0]["heal/entropy_retention/target"] == 1.0
    # heal/reward/<domain>: the mean total reward (every function, weight 1) of that domain's rows in the batch.
    total = torch.tensor([trainer._logs["rewards"][name] for name in trainer.reward_func_names]).nansum(0)
    for domain in ("target", "general"):
        rows = [i for i, d in enumerate(domains) if d == domain]
        assert last[f"heal/reward/{domain}"] == pytest.approx(float(total[rows].mean()), rel=1e-5), domain
        # A rollout metric (HEALConfig.rollout_metrics): the mean over that domain's completions of the batch.
        texts = [list(trainer._logs["completion"])[-len(domains):][i] for i in rows]
        assert last[f"heal/length/{domain}"] == pytest.approx(sum(map(len, texts)) / len(texts)), domain
    assert last["heal/entropy/target"] == pytest.approx(trainer.eda.latest["target"]["entropy"], rel=1e-6)
    trained = dict(trainer.model.named_parameters())
    changed = [n for n, p in trained.items() if p.requires_grad]
    assert changed and (lora == all("lora_" in n for n in changed))
    if lora:
        # The drop-in's forward includes the adapter: without it the entropies differ.
        prompts, completion_ids, _ = seen["batch"]
        with_adapter = policy_token_entropies(model, tok, prompts, completion_ids)
        with trainer.model.disable_adapter():
            without = policy_token_entropies(model, tok, prompts, completion_ids)
        assert max(abs(a - b) for x, y in zip(with_adapter, without) for a, b in zip(x, y)) > 1e-3
    else:
        assert any(not torch.equal(base[n], p) for n, p in trained.items())


def test_the_eda_state_is_saved_with_each_checkpoint_and_restored_on_resume(tmp_path):
    def trainer(max_steps):
        model, tok = peaked_tiny_lm()
        return HEALGRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric")], train_dataset=mixed_set(),
                               args=heal_config(tmp_path, max_steps=max_steps, save_strategy="steps", save_steps=1),
                               processing_class=tok)

    first = trainer(2)
    first.train()
    for step in (1, 2):
        assert (tmp_path / "out" / f"checkpoint-{step}" / STATE_FILE).is_file()
    saved = json.loads((tmp_path / "out" / "checkpoint-2" / STATE_FILE).read_text())
    assert saved == json.loads(json.dumps(first.eda.state_dict()))
    resumed = trainer(3)
    resumed.train(resume_from_checkpoint=True)
    # Entropy retention stays relative to the first run's step 0, not to the resumed run's first batch.
    assert resumed.eda.initial == saved["initial"] and resumed.state.global_step == 3
    # Its own first batch (step 3, a trained model) has other entropies: without the restore, they would be step 0's.
    assert resumed.eda.latest["target"]["entropy"] != saved["initial"]["target"]["entropy"]


def test_at_most_three_private_trl_methods_are_overridden_and_listed(tmp_path):
    from trl import GRPOTrainer

    overridden = {name for name in vars(HEALGRPOTrainer)
                  if name.startswith("_") and not name.startswith("__") and callable(getattr(GRPOTrainer, name, None))}
    assert overridden == set(TRL_PRIVATE_OVERRIDES) and len(overridden) <= 3
    # TRL's own model card names HEAL, its paper and tag.
    model, tok = tiny_causal_lm()
    trainer = HEALGRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric")], args=heal_config(tmp_path),
                              train_dataset=mixed_set(), processing_class=tok)
    trainer.create_model_card(model_name="tiny-heal")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "trained with HEAL" in card and "2604.17928" in card and "liu2026healing" in card
    assert "heal" in card.split("---")[1] and "heal" in model.model_tags


def test_an_untested_trl_falls_back_to_one_forward_and_says_so_once(tmp_path, caplog):
    model, tok = peaked_tiny_lm()
    trainer = HEALGRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric")], args=heal_config(tmp_path),
                              train_dataset=mixed_set(), processing_class=tok)
    assert entropy_source(trainer, trl_version="1.16.0") == "generation"
    assert trainer.entropy_source == entropy_source(trainer)  # the installed TRL's: "forward" outside FAST_PATH_TRL
    assert entropy_source(trainer, trl_version="1.17.0") == "forward"
    assert entropy_source(trainer, trl_version="1.15.2") == "forward"
    checked = []

    def check(prompts, completions, completion_ids, **kwargs):
        teacher_forced = policy_token_entropies(model, tok, prompts, completion_ids)
        checked.append(max(abs(a - b) for x, y in zip(kwargs[ENTROPIES_KWARG], teacher_forced) for a, b in zip(x, y)))
        return [0.0] * len(prompts)

    trainer = HEALGRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric"), check], args=heal_config(tmp_path),
                              train_dataset=mixed_set(), processing_class=tok)
    trainer.entropies = TrainerEntropies("forward", trainer.temperature)  # what entropy_source gives on TRL 1.17
    with caplog.at_level(logging.WARNING, logger="heal_hf.trl"):
        trainer.train()
    assert len(checked) == 2 and max(checked) < 1e-5
    assert len([r for r in caplog.records if "one extra no-grad forward" in r.getMessage()]) == 1


def test_heal_config_makes_one_eda_settings_and_names_its_own_fields(tmp_path):
    config = heal_config(tmp_path, eda_estimator="gaussian", eda_w_mag=0.5, eda_momentum=0.7)
    assert config.eda_settings == EDASettings(estimator="gaussian", w_mag=0.5, momentum=0.7)
    assert config.eda_reward().settings == config.eda_settings
    for bad, field_name in ((dict(eda_w_var=-1.0), "eda_w_var"), (dict(eda_momentum=1.5), "eda_momentum"),
                            (dict(eda_estimator="gaussian", eda_direction="below"), "eda_direction"),
                            (dict(eda_bins=1), "eda_bins"), (dict(eda_weight=-0.1), "eda_weight")):
        with pytest.raises(SettingError, match=f"^{field_name}: "):
            heal_config(tmp_path, **bad)
    defaults = HEALConfig.__dataclass_fields__
    for name, setting in EDASettings.__dataclass_fields__.items():
        assert defaults[f"eda_{name}"].default == setting.default and defaults[f"eda_{name}"].metadata["help"]


def test_trainer_refuses_what_it_cannot_mix_or_measure(tmp_path):
    model, tok = tiny_causal_lm()
    with pytest.raises(ValueError, match="'domain' column"):
        HEALGRPOTrainer(model=model, reward_funcs=[], args=heal_config(tmp_path), train_dataset=mixed_set().remove_columns("domain"),
                        processing_class=tok)
    with pytest.raises(ValueError, match="HEALConfig"):
        from trl import GRPOConfig

        HEALGRPOTrainer(model=model, args=GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False),
                        train_dataset=mixed_set())
    with pytest.raises(ValueError, match="takes 1 target-domain prompts but the dataset has 0"):
        HEALGRPOTrainer(model=model, reward_funcs=[], args=heal_config(tmp_path, target_fraction=0.25),
                        train_dataset=mixed_set(0, 12), processing_class=tok)
    with pytest.raises(ValueError, match='eda_reference="pool" needs'):
        HEALGRPOTrainer(model=model, args=heal_config(tmp_path, eda_reference="pool"), train_dataset=mixed_set(),
                        processing_class=tok)
    with pytest.raises(ValueError, match="eda_reference"):
        heal_config(tmp_path, eda_reference="nearest")


def test_trainer_checks_the_pool_against_its_tokenizer(tmp_path):
    model, tok = tiny_causal_lm()
    out = sample_with_entropies(model, tok, ["Q: 1?", "Q: 2?"], num_samples=2, max_new_tokens=6, seed=0)
    other = char_tokenizer()
    other.add_tokens(["<extra>"])
    rows = pool_rows(out.prompts, ["1", "2"], ["s", "s"], out.texts, out.entropies, [[0.0, 1.0]] * 2, "tiny",
                     tokenizer_fingerprint(other), out.settings, bins=32)
    pool = with_pool_scores(datasets.Dataset.from_list(rows, features=POOL_FEATURES))
    with pytest.raises(ValueError, match="tokenizer"):
        HEALGRPOTrainer(model=model, args=heal_config(tmp_path), train_dataset=mixed_set(), processing_class=tok, pool=pool)


@pytest.mark.slow
def test_the_trl_example_script_runs_offline(tmp_path):
    repo = Path(__file__).resolve().parent.parent
    model, tok = peaked_tiny_lm()
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(repo / "examples" / "trl_grpo_with_eda.py"), "--model", str(tmp_path / "model"),
         "--max-steps", "2", "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"step 2: reward [\d.]+, EDA reward 0\.\d+, entropy target [\d.]+ / general [\d.]+ nats", done.stdout)
    source = (repo / "examples" / "trl_grpo_with_eda.py").read_text()
    assert len(re.findall(r"^(?:from|import) heal_hf", source, re.M)) == 1  # one heal_hf import


def test_advantage_scaling_is_the_batch_with_eda_on_and_trls_group_otherwise(tmp_path):
    # With EDA on, a group whose correctness is constant has only lambda * r_EDA left to vary; TRL's per-group std
    # would blow it up to unit size. Batch scaling is HEAL's default; without EDA, TRL's own default; explicit wins.
    assert heal_config(tmp_path).scale_rewards == "batch"
    assert heal_config(tmp_path, eda_weight=0.0).scale_rewards == "group"
    assert heal_config(tmp_path, scale_rewards="group").scale_rewards == "group"
    assert heal_config(tmp_path, eda_weight=0.0, scale_rewards="none").scale_rewards == "none"
    assert heal_config(tmp_path, scale_rewards=False).scale_rewards == "none"


def test_drop_in_in_a_plain_grpo_script_given_a_model_id_and_no_general_rows(tmp_path, eda_metric, caplog):
    """The drop-in as a user's script meets it: GRPOTrainer loads the model from an id (here a local folder), the
    random sampler brings batches without general rows, and the reward is also a callback that takes the trainer's
    temperature, model and tokenizer; a temperature other than the trainer's is refused before the first step."""
    from trl import GRPOConfig, GRPOTrainer

    model, tok = peaked_tiny_lm()
    model.save_pretrained(tmp_path / "policy")
    tok.save_pretrained(tmp_path / "policy")
    config = GRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=8, num_generations=4,
        max_completion_length=12, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
        disable_tqdm=True, bf16=False, learning_rate=1e-3, temperature=0.7, remove_unused_columns=False, seed=0,
    )
    only_target = mixed_set(n_target=8, n_general=0)
    eda = eda_reward_function(eda_metric)
    trainer = GRPOTrainer(model=str(tmp_path / "policy"), reward_funcs=[verifier_reward("numeric"), eda],
                          callbacks=[eda], args=config, train_dataset=only_target)
    with caplog.at_level(logging.WARNING, logger="heal_hf.trl.reward"):
        trainer.train()
    assert eda.temperature == 0.7 and eda.model is trainer.model
    assert sum("EDA abstains" in r.getMessage() for r in caplog.records) == 1
    assert all(math.isnan(v) for v in trainer._logs["rewards"]["eda"])  # abstained (None) on every row
    # With the pool as the fallback, the same script scores every target row, at the trainer's temperature.
    pool = EDAReference.from_entropies(ragged(torch.Generator().manual_seed(0), 16, 8, 12, 1.0))
    eda = eda_reward_function(eda_metric, pool=pool)
    trainer = GRPOTrainer(model=str(tmp_path / "policy"), reward_funcs=[verifier_reward("numeric"), eda],
                          callbacks=[eda], args=config, train_dataset=only_target)
    trainer.train()
    rewards = torch.tensor(trainer._logs["rewards"]["eda"])
    assert len(rewards) == 8 and not torch.isnan(rewards).any() and (rewards > 0).all()
    # A temperature other than the trainer's: refused when training starts, naming both.
    eda = eda_reward_function(eda_metric, pool=pool, temperature=1.0)
    trainer = GRPOTrainer(model=str(tmp_path / "policy"), reward_funcs=[verifier_reward("numeric"), eda],
                          callbacks=[eda], args=config, train_dataset=only_target)
    with pytest.raises(SettingError, match="built for 1.0 but the trainer samples at 0.7"):
        trainer.train()
