"""reasoning-gym problems as toy task families, judged by reasoning-gym's own `score_answer`.

reasoning-gym (PyPI `reasoning-gym`) makes procedural problems offline, each an entry
`{"question", "answer", "metadata"}` that its dataset's `score_answer(answer, entry)`
scores. A gym family draws entries from one generator with a small config, rewrites the
question into the toy's `Q: ... A:` form and works a solution by trying and checking
candidates; the row's reference answer is the entry itself (JSON, with the generator's
name and config), so that the verifier can hand reasoning-gym exactly what it made.

The verifier `reasoning_gym` (registered in `heal_hf.core.verifiers.VERIFIERS` when this
module is imported, as `heal_hf.toy.tasks` does) reads the completion's final answer as
every toy verifier does (`extract_answer`) and asks that generator's `score_answer`. It
returns 1.0 when reasoning-gym scores the answer 1.0 (correct) and 0.0 otherwise: the
generators' partial credit for well-formed wrong answers (0.01, 0.05) is not correctness.
A malformed answer, or a reference that is not such an entry, scores 0.0, never raises.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import re
from typing import Any

from ..core import verifiers
from . import explore

GYM_SEED = 0
"""The seed of every reasoning-gym dataset here: an entry is fixed by its index, which the toy's seeded draw picks."""
INDEX_RANGE = 1 << 30
VERIFIER = "reasoning_gym"

COUNTDOWN_CONFIG = {"min_numbers": 3, "max_numbers": 3, "min_value": 1, "max_value": 9,
                    "min_target": 1, "max_target": 60, "operators": ["+", "-"]}
"""reasoning-gym `countdown`: reach a target with three digits and + -, each digit used once (H30; H1-H29 had
`*` too, whose searches seldom named a right candidate). Its candidates a±b±c take 5-7 values, as pair_sum's
six pairs take about five sums."""
EQUATION_CONFIG = {"min_terms": 2, "max_terms": 2, "min_value": 1, "max_value": 9,
                   "operators": ["+", "-", "*"], "operators_weights": [0.5, 0.5, 0.0]}
"""reasoning-gym `simple_equations`: `a*x + b = c` or `a*x - b = c` with one-digit a, b and x."""


@functools.lru_cache(maxsize=None)
def _dataset(name: str, config_json: str) -> Any:
    import reasoning_gym

    config = json.loads(config_json)
    if "operators" in config:  # reasoning-gym's configs hold operator tuples
        config["operators"] = tuple(config["operators"])
    return reasoning_gym.create_dataset(name, seed=GYM_SEED, size=INDEX_RANGE, **config)


def dataset(name: str, config: dict[str, Any]) -> Any:
    """The reasoning-gym dataset `name` with `config` (cached; entries made on demand by index)."""
    return _dataset(name, json.dumps(config, sort_keys=True))


def reference(name: str, config: dict[str, Any], entry: dict[str, Any]) -> str:
    """A row's reference answer: the entry with its generator's name and config, as compact JSON."""
    return json.dumps({"dataset": name, "config": config, "entry": entry}, sort_keys=True, separators=(",", ":"))


def score(completion: Any, answer: Any) -> float:
    """reasoning-gym's own score (0 to 1) of a completion's final answer; 0.0 when the reference is unusable."""
    try:
        ref = json.loads(answer)
        judge = dataset(ref["dataset"], ref["config"])
        return float(judge.score_answer(verifiers.extract_answer(completion), ref["entry"]))
    except Exception:  # a malformed reference or answer is a wrong answer, not a crash
        return 0.0


def reasoning_gym_match(completion: Any, answer: Any) -> float:
    """1.0 when reasoning-gym scores the completion's final answer correct (1.0), else 0.0."""
    return float(score(completion, answer) >= 1.0)


verifiers.VERIFIERS.setdefault(VERIFIER, reasoning_gym_match)


def _draw(rng: random.Random, name: str, config: dict[str, Any], accept) -> dict[str, Any]:
    ds = dataset(name, config)
    while True:
        entry = ds[rng.randrange(INDEX_RANGE)]
        if accept(entry):
            return entry


def value(expression: str) -> int:
    """The value of an expression of digits and + - * (and brackets), with precedence."""
    return eval(expression, {"__builtins__": {}})  # noqa: S307 - our own digits and + - * only


def _countdown_candidates(numbers: list[int]) -> list[str]:
    """Every way reasoning-gym builds its target, (a op b) op c, which + and - need no brackets to write."""
    return sorted({f"{a}{p}{b}{q}{c}" for a, b, c in itertools.permutations(numbers)
                   for p, q in itertools.product(COUNTDOWN_CONFIG["operators"], repeat=2)})


def countdown(rng: random.Random) -> tuple[str, str, str, str]:
    """A reasoning-gym countdown problem: question, try/check steps, the expression answered, reference."""
    entry = _draw(rng, "countdown", COUNTDOWN_CONFIG, lambda e: e["metadata"]["target"] > 0)
    numbers, target = entry["metadata"]["numbers"], entry["metadata"]["target"]
    steps, answer = explore.searched(rng, _countdown_candidates(numbers), value, target, explore.reduced)
    question = f"from {' '.join(map(str, numbers))} make {target}"  # the goal last, as every explore search states it
    return question, steps, answer, reference("countdown", COUNTDOWN_CONFIG, entry)


_COUNTDOWN_QUESTION = re.compile(r"from (\d) (\d) (\d) make (\d+)")


def countdown_candidates(prompt: str) -> dict[int, list[str]]:
    """The workings a countdown try can write for a prompt's digits (`6+1-2=7-2=5`), grouped by their value."""
    match = _COUNTDOWN_QUESTION.search(prompt)
    if match is None:
        raise ValueError(f"prompt: {prompt!r} is not a gym_countdown question ('from a b c make t')")
    return explore.workings_by_value(_countdown_candidates([int(d) for d in match.groups()[:3]]), value, explore.reduced)


def countdown_tried(working: str) -> str:
    """The expression a countdown try works out (`3*7+2=21+2=23` -> `3*7+2`): the answer it commits to."""
    return working.split("=", 1)[0]


def _equation_parts(equation: str) -> tuple[int, str, int, int] | None:
    """(a, sign, b, c) of `a*x + b = c` / `a*x - b = c` (a may be absent: 1), or None for other shapes."""
    left, _, right = equation.partition(" = ")
    parts = left.split(" ")
    if len(parts) != 3 or parts[1] not in "+-" or not right.lstrip("-").isdigit() or not parts[2].isdigit():
        return None
    coefficient, _, variable = parts[0].rpartition("*")
    if not variable.isalpha() or (coefficient and not coefficient.isdigit()):
        return None
    return int(coefficient or 1), parts[1], int(parts[2]), int(right)


def equation(rng: random.Random) -> tuple[str, str, str, str]:
    """A reasoning-gym simple_equations problem: question, try/check steps, the value answered, reference."""
    entry = _draw(rng, "simple_equations", EQUATION_CONFIG,
                  lambda e: (p := _equation_parts(e["metadata"]["equation"])) is not None and p[3] > 0)
    a, sign, b, c = _equation_parts(entry["metadata"]["equation"])
    x = int(entry["answer"])
    steps, _ = explore.searched(rng, range(1, 10), lambda t: value(f"{a}*{t}{sign}{b}"), c,
                                lambda t: explore.reduced(f"{a}*{t}{sign}{b}"))
    return f"solve {entry['metadata']['equation']}", steps, str(x), reference("simple_equations", EQUATION_CONFIG, entry)


def equation_tried(working: str) -> str:
    """The digit an equation try puts for x (`7*3+9=21+9=30` -> `3`): the answer it commits to."""
    return working.split("*", 1)[1].split("+", 1)[0].split("-", 1)[0]
