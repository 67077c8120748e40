"""HEALGRPOTrainer with any TRL generator: entropies from TRL's scoring forward, no extra model forwards.

vLLM cannot be installed here (no GPU build); its path through HEALGRPOTrainer is the
scoring forward tested below (TRL runs it with vLLM's importance-sampling correction on),
or the extra forward tested with paged continuous batching (the correction off).
"""

import logging

import datasets
import pytest
import torch
import trl
from conftest import peaked_tiny_lm
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from trl import GRPOConfig, GRPOTrainer

from heal_hf.core.verifiers import verifier_reward
from heal_hf.trl import (
    ENTROPIES_KWARG,
    FAST_PATH_TRL,
    GenerationEntropyRecorder,
    HEALConfig,
    HEALGRPOTrainer,
    policy_token_entropies,
)

TOKENS = 12

FAST_PATH_TESTED = Version(trl.__version__) in SpecifierSet(FAST_PATH_TRL)
fast_path = pytest.mark.skipif(
    not FAST_PATH_TESTED,
    reason=f"the fast entropy path is claimed on TRL {FAST_PATH_TRL} only; on TRL {trl.__version__} the trainer takes "
    "the one-forward fallback, which test_trl.py::test_an_untested_trl_falls_back_to_one_forward_and_says_so_once tests",
)



def mixed() -> datasets.Dataset:
    rows = [(f"Q: {i} + 5 = ?\nA:", str(i + 5), "target") for i in range(4)]
    rows += [(f"Q: {i} * 3 = ?\nA:", str(3 * i), "general") for i in range(12)]
    return datasets.Dataset.from_dict({k: list(v) for k, v in zip(("prompt", "answer", "domain"), zip(*rows))})


def settings(tmp_path, **kw) -> dict:
    defaults = dict(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=16, num_generations=4,
        max_completion_length=TOKENS, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
        disable_tqdm=True, bf16=False, activation_checkpointing=False, learning_rate=1e-2, seed=0,
        remove_unused_columns=False, temperature=0.8,
    )
    return {**defaults, **kw}


class RecordingTrainer(HEALGRPOTrainer):
    """Also records generation-time entropies with a forward hook, and the entropies the reward receives."""

    def _generate_single_turn(self, prompt_ids, *args, **kwargs):
        recorder = GenerationEntropyRecorder(self.temperature)
        with recorder.attached(self.accelerator.unwrap_model(self.model)):
            completion_ids, logprobs = super()._generate_single_turn(prompt_ids, *args, **kwargs)
        self.generated = recorder.per_completion(completion_ids)
        return completion_ids, logprobs

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self.sources.append(self.entropy_source)
        self.generated_batches.append(self.generated)
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)


@fast_path
def test_scoring_forward_entropies_equal_generation_time_ones(tmp_path):
    model, tok = peaked_tiny_lm()
    received = []

    def spy(prompts, completions, **kwargs):
        received.append(kwargs[ENTROPIES_KWARG])
        return [0.0] * len(prompts)

    trainer = RecordingTrainer(
        model=model, reward_funcs=[verifier_reward("numeric"), spy],
        args=HEALConfig(**settings(tmp_path, num_iterations=2)), train_dataset=mixed(), processing_class=tok,
    )
    trainer.sources, trainer.generated_batches = [], []
    assert trainer.entropy_source == "scoring"
    trainer.train()
    assert trainer.sources == ["scoring"] and len(received) == 1  # 2 steps, one generation batch
    generated, given = trainer.generated_batches[0], received[0]
    assert [len(g) for g in generated] == [len(r) for r in given] and sum(map(len, given)) > 16
    worst = max(abs(a - b) for g, r in zip(generated, given) for a, b in zip(g, r))
    assert worst < 1e-5, worst
    assert max(max(r) for r in given if r) > 0.5  # real entropies, not zeros


@fast_path
@pytest.mark.parametrize("num_iterations, source", [(1, "generation"), (2, "scoring")])
def test_trainer_entropies_are_of_the_raw_logits_under_a_repetition_penalty(tmp_path, num_iterations, source):
    """The pool's definition (tests/test_trl.py checks sample_with_entropies): the penalty shapes sampling only."""
    model, tok = peaked_tiny_lm()
    checked = []

    def check(prompts, completions, completion_ids, **kwargs):
        teacher_forced = policy_token_entropies(model, tok, prompts, completion_ids, temperature=0.7)
        checked.append(max(abs(a - b) for x, y in zip(kwargs[ENTROPIES_KWARG], teacher_forced) for a, b in zip(x, y)))
        return [0.0] * len(prompts)

    args = HEALConfig(**settings(tmp_path, num_iterations=num_iterations, temperature=0.7, repetition_penalty=1.5))
    trainer = HEALGRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric"), check], args=args,
                              train_dataset=mixed(), processing_class=tok)
    assert trainer.entropy_source == source and trainer.generation_config.repetition_penalty == 1.5
    trainer.train()
    assert len(checked) == 2 // num_iterations and max(checked) < 1e-5


@fast_path
def test_scoring_capture_under_lora_and_a_kl_term_reads_the_policy_not_the_reference_pass(tmp_path):
    from peft import LoraConfig

    model, tok = peaked_tiny_lm()
    checked = []

    def check(prompts, completions, completion_ids, **kwargs):
        policy = policy_token_entropies(trainer.model, tok, prompts, completion_ids, temperature=0.8)
        with trainer.model.disable_adapter():  # what TRL's reference pass (beta > 0, same model) computes
            reference = policy_token_entropies(trainer.model, tok, prompts, completion_ids, temperature=0.8)
        gap = lambda a, b: max(abs(u - v) for x, y in zip(a, b) for u, v in zip(x, y))  # noqa: E731
        checked.append((gap(kwargs[ENTROPIES_KWARG], policy), gap(policy, reference)))
        return [0.0] * len(prompts)

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    trainer = HEALGRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric"), check],
                              args=HEALConfig(**settings(tmp_path, num_iterations=2, beta=0.1)), train_dataset=mixed(),
                              processing_class=tok, peft_config=lora)
    assert trainer.entropy_source == "scoring"
    trainer.train()
    assert len(checked) == 1 and checked[0][0] < 1e-5 and checked[0][1] > 1e-3, checked


class ForwardCounter:
    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        model.register_forward_pre_hook(self._count)

    def _count(self, module, args):
        self.calls += 1


@fast_path
@pytest.mark.parametrize("num_iterations, source", [(1, "generation"), (2, "scoring")])
def test_heal_runs_exactly_as_many_model_forwards_as_plain_grpo(tmp_path, num_iterations, source):
    # min_new_tokens pins every completion's length, so both trainers do the same work per batch.
    common = settings(tmp_path, num_iterations=num_iterations, generation_kwargs={"min_new_tokens": TOKENS})
    counts = {}
    for name in ("grpo", "heal"):
        model, tok = peaked_tiny_lm()
        counter = ForwardCounter(model)
        if name == "grpo":
            trainer = GRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric")], args=GRPOConfig(**common),
                                  train_dataset=mixed(), processing_class=tok)
        else:
            trainer = HEALGRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric")],
                                      args=HEALConfig(**common), train_dataset=mixed(), processing_class=tok)
            assert trainer.entropy_source == source
        trainer.train()
        counts[name] = counter.calls
        if name == "heal":
            logged = [e for e in trainer.state.log_history if "heal/eda_reward" in e]
            assert logged and all(0 < e["heal/eda_reward"] < 1 for e in logged)
    assert counts["heal"] == counts["grpo"] > 0, counts


@fast_path
@pytest.mark.slow
def test_paged_continuous_batching_on_cpu(tmp_path, caplog):
    """transformers' paged continuous batching: scoring-forward entropies at num_iterations=2, one extra forward at 1."""
    for num_iterations, source in ((2, "scoring"), (1, "forward")):
        model, tok = peaked_tiny_lm()
        checked = []

        def check(prompts, completions, completion_ids, **kwargs):
            teacher_forced = policy_token_entropies(model, tok, prompts, completion_ids, temperature=0.8)
            checked.append(max(abs(a - b) for x, y in zip(kwargs[ENTROPIES_KWARG], teacher_forced)
                               for a, b in zip(x, y)))
            return [0.0] * len(prompts)

        args = HEALConfig(**settings(tmp_path, num_iterations=num_iterations, max_steps=num_iterations,
                                     use_transformers_continuous_batching=True))
        trainer = HEALGRPOTrainer(model=model, reward_funcs=[verifier_reward("numeric"), check], args=args,
                                  train_dataset=mixed(), processing_class=tok)
        assert trainer.entropy_source == source
        with caplog.at_level(logging.WARNING, logger="heal_hf.trl"):
            trainer.train()
        assert checked and max(checked) < 1e-5
        said = [r for r in caplog.records if "one extra no-grad forward" in r.getMessage()]
        assert len(said) == (1 if source == "forward" else 0)
        caplog.clear()
