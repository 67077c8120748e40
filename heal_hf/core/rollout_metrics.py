"""Rollout metrics: a number per completion text, logged per domain over training and in evaluations.

A rollout metric measures a behaviour, not a reward: the share of try/check steps of the toy's
explore world (`heal_hf.toy.explore`, registered as "try_check" when that module is imported),
or simply a completion's length. Name them in `HEALConfig(rollout_metrics=[...])` and
HEALGRPOTrainer logs each one's mean per domain and generation batch as
`heal/<name>/<domain>`; `heal-hf train`'s held-out evaluation reports each one's mean over the
sampled and the greedy completions.

    from heal_hf.core.rollout_metrics import register_rollout_metric
    register_rollout_metric("says_wait", lambda text: float("wait" in text.lower()))
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from .verifiers import completion_text

RolloutMetric = Callable[[str], float]

ROLLOUT_METRICS: dict[str, RolloutMetric] = {"length": lambda text: float(len(text))}
"""Registered rollout metrics by name: completion text -> number ("length": characters)."""


def register_rollout_metric(name: str, metric: RolloutMetric) -> None:
    """Make `metric` (completion text -> float) available by `name` (a word: it becomes part of a log key)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"rollout metric: name {name!r} must be letters, digits and _ (it becomes heal/<name>/<domain>)")
    ROLLOUT_METRICS[name] = metric


def check_rollout_metrics(names: Sequence[str]) -> None:
    """A clear error for a name nobody registered, before anything runs."""
    unknown = [n for n in names if n not in ROLLOUT_METRICS]
    if unknown:
        raise ValueError(f"rollout_metrics: unknown {unknown}; registered: {sorted(ROLLOUT_METRICS)} (register one with "
                         "heal_hf.core.rollout_metrics.register_rollout_metric; the toy's try_check comes with "
                         "`import heal_hf.toy.explore`)")


def rollout_metric_means(names: Sequence[str], completions: Iterable[object]) -> dict[str, float]:
    """Each named metric's mean over `completions` (texts, or chat messages: their text); empty -> {}."""
    texts = [completion_text(c) for c in completions]
    if not texts:
        return {}
    check_rollout_metrics(names)
    return {n: sum(ROLLOUT_METRICS[n](t) for t in texts) / len(texts) for n in names}
