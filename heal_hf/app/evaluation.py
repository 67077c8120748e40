"""Evaluation on held-out target problems: greedy completions, accuracy and pass@k.

What `heal-hf train` reports before and after training, and what `heal-hf replicate`
and the demo measure. Answers are checked with a verifier (`heal_hf.core.verifiers`);
sampled answers come from `heal_hf.data.rollout.sample_with_entropies`, so their mean
token entropy (nats) is reported too.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from ..core.rollout_metrics import rollout_metric_means
from ..core.verifiers import get_verifier
from ..data.rollout import completion_lengths, sample_with_entropies


def conversational(prompts: Sequence[str]) -> list[list[dict[str, str]]]:
    """Prompts as one-message user conversations, the form chat templates take."""
    return [[{"role": "user", "content": p}] for p in prompts]


@torch.no_grad()
def greedy_completions(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, chat_template: bool, batch_size: int = 16
) -> list[str]:
    """Greedy completions of `prompts`, left-padded in batches."""
    texts = [
        tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in conversational(prompts)
    ] if chat_template else list(prompts)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    eos = model.generation_config.eos_token_id
    eos_ids = [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
    out: list[str] = []
    try:
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=not chat_template)
            enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            ids = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id)[:, enc["input_ids"].shape[1] :].cpu()
            lengths = completion_lengths(ids, eos_ids)
            out += tokenizer.batch_decode([row[:n] for row, n in zip(ids, lengths)], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return out


def evaluate_target(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    answers: Sequence[str],
    verifier: str,
    samples: int,
    max_new_tokens: int,
    temperature: float,
    chat_template: bool = False,
    seed: int = 0,
    rollout_metrics: Sequence[str] = (),
) -> dict[str, Any]:
    """Greedy accuracy, pass@k (k = `samples` sampled answers) and mean token entropy (nats) of the samples.

    `per_problem` holds each problem's greedy score and its share of correct samples (in
    prompt order), what paired comparisons between models resample. With `rollout_metrics`
    (names in `heal_hf.core.rollout_metrics`), `rollout_metrics` holds each one's mean over the
    sampled completions (`sampled`) and the greedy ones (`greedy`).
    """
    check = get_verifier(verifier)
    was_training = model.training
    model.eval()
    try:
        greedy = greedy_completions(model, tokenizer, prompts, max_new_tokens, chat_template)
        with tqdm(total=len(prompts), desc="evaluating", unit="problem") as bar:
            rollouts = sample_with_entropies(
                model, tokenizer, list(prompts), num_samples=samples, max_new_tokens=max_new_tokens,
                temperature=temperature, seed=seed, chat_template=chat_template, progress=bar.update,
            )
    finally:
        model.train(was_training)
    correct = [[check(t, a) for t in texts] for texts, a in zip(rollouts.texts, answers)]
    greedy_correct = [check(c, a) for c, a in zip(greedy, answers)]
    tokens = [h for e in rollouts.flat_entropies() for h in e]
    behaviour = {} if not rollout_metrics else {"rollout_metrics": {
        "sampled": rollout_metric_means(rollout_metrics, [t for texts in rollouts.texts for t in texts]),
        "greedy": rollout_metric_means(rollout_metrics, greedy)}}
    return {
        "greedy_accuracy": sum(greedy_correct) / len(prompts),
        f"pass@{samples}": sum(max(c) for c in correct) / len(prompts),
        "sample_accuracy": sum(map(sum, correct)) / (len(prompts) * samples),
        "mean_token_entropy": sum(tokens) / len(tokens) if tokens else 0.0,
        "problems": len(prompts),
        "per_problem": {"greedy": greedy_correct, "sampled": [sum(c) / samples for c in correct]},
        **behaviour,
    }


def accuracy_curve_callback(prompts: Sequence[str], answers: Sequence[str], verifier: str, every: int,
                            max_new_tokens: int, metric: str) -> Any:
    """A TrainerCallback that records (step, greedy accuracy on `prompts`) in `points` at step 0 and every
    `every` steps, and (step, the rollout metric `metric` of those greedy completions) in `behaviour`."""
    from transformers import TrainerCallback

    check = get_verifier(verifier)

    class AccuracyCurve(TrainerCallback):
        def __init__(self) -> None:
            self.points: list[tuple[int, float]] = []
            self.behaviour: list[tuple[int, float]] = []  # (step, the greedy completions' `metric`)

        def measure(self, step: int, model: Any, tokenizer: Any) -> None:
            was_training = model.training
            model.eval()
            try:
                texts = greedy_completions(model, tokenizer, prompts, max_new_tokens, chat_template=False, batch_size=64)
            finally:
                model.train(was_training)
            self.points.append((step, sum(check(t, a) for t, a in zip(texts, answers)) / len(prompts)))
            self.behaviour.append((step, rollout_metric_means((metric,), texts)[metric]))

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
            if state.global_step == 0:
                self.measure(0, model, processing_class)

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                self.measure(state.global_step, model, processing_class)

    return AccuracyCurve()
