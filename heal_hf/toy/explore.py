"""Try, check, revise: how the explore world's worked solutions search, and how to count it in a rollout.

A try/check step names a candidate's working, restates the goal beside the value it wrote, and
gives the verdict of that comparison: `6*8=48 vs 56 no` (rejected, so the next step revises),
`7*8=56 vs 56 yes` (accepted). The comparison is the same text in every family; what is left to
a family is copying its goal (its question's last number). Steps are separated by `, ` as in
every toy family, and a response ends in `Answer: ...`:

    ` 6*8=48 vs 56 no, 7*8=56 vs 56 yes. Answer: 7`   (two try/check steps, one revision)
    ` guess 7*8 for 56. Answer: 7`                    (a direct guess: no step worked, tried or checked)

The counters read a try with or without its restated goal (`6*8=48 no` is a try too).

`try_check(text)` counts a rollout's steps, tries, rejections, revisions and faked checks
(tries whose working is false arithmetic, `280+2=287 yes`); its `share`
is the try/check steps over all steps, the final answer counting as one (a commit), so a
direct guess scores 0, one checked try 1/2 and three tries 3/4. The share works on any
toy family's text (plain working steps such as `5+7=12` are steps, not tries), so the same
number can be logged on target and general rollouts, per arm, over training: importing this
module registers it as the rollout metric "try_check" (`HEALConfig(rollout_metrics=["try_check"])`).
"""

from __future__ import annotations

import random
import re
import statistics
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, TypeVar

from ..core.rollout_metrics import register_rollout_metric

YES, NO = "yes", "no"
GUESS = "guess"
"""The word a direct target answer starts with (`direct_response`): the choice to try or to guess is its first token."""
SOLUTION_BUDGET = 96
"""Toy tokens (one a character) every worked solution fits, end-of-text included: a search keeps fewer of its
drawn tries when they would not fit (`searched`). 96 keeps every drawn try of every family's search (H9; the
longest was a three-try countdown search with `*`, 94 tokens; from H30, over + and -, 92), so gym_countdown
and gym_equation show what follows two rejections as often as the general searches do. 80 (H1-H8) let a
countdown search reject one try and revise, but cut nearly all third tries (G7's tries without the restated
goal fitted 64)."""
COMPLETION_BUDGET = 128
"""Tokens a sample or RL completion may use in the explore world (the replication's max_completion_length for
its families; world v6 keeps 48). It holds one more try than any worked solution draws, since a model whose
third try fails searches on (H2's samples did): the longest worked solution with every drawn try kept (94
tokens, gym_countdown with `*`, H3-H29; 92 from H30) plus the longest try (27; 26 in H4's searches), rounded
up to a multiple of 16 (H3)."""
_ANSWER = re.compile(r"answer\s*:", re.IGNORECASE)
_VERDICT = re.compile(r"(?:^|\s)(yes|no)\s*$", re.IGNORECASE)
_RESTATED = re.compile(r"\s+vs\s+(-?\d{1,6})\s*$")
_STEP_SPLIT = re.compile(r"[,;]\s*")
_ARITHMETIC = re.compile(r"[\d+\-*() ]{1,40}")
_INTEGER = re.compile(r"-?\d{1,6}")
MOST_TRIES = 3
"""The most candidates a worked search tries (the last one right)."""
SEARCH_NOISE = 3.0
"""How far, in ranks, a worked solver misjudges how near a value is to the goal (H4): its first try is right
in about half of the searches (0.48-0.52 in every family), its second in 0.29-0.32, its third in 0.18-0.20."""
REDRAWS = 50
"""Draws of a search's order before the right candidate is put in its last place."""
UNINFORMED_NOISE = 1e9
"""Rank noise under which a search's order knows nothing of its goal: every order of the values is equally likely
(`train_toy_reasoner.py --uninformed`, H36). A search still ends at its first right try within MOST_TRIES."""
T = TypeVar("T")


@dataclass(frozen=True)
class TryCheckCount:
    """The try/check/revise steps of one rollout (see the module doc)."""

    steps: int  # working steps plus one for a final answer
    tries: int  # steps that end in a verdict (yes / no)
    rejected: int  # tries whose verdict is no
    revisions: int  # tries that follow a rejected one
    miscomputed: int = 0  # tries whose working `expression=value` is false arithmetic (a faked check)

    @property
    def share(self) -> float:
        """Try/check steps over all steps, in [0, 1] (below 1 once an answer is given); 0.0 for an empty rollout."""
        return self.tries / self.steps if self.steps else 0.0


def _steps(text: str) -> tuple[list[str], int]:
    """A completion's working steps (split at `,`/`;`, before its last `Answer:`) and 1 if it commits to an answer."""
    text = text if isinstance(text, str) else ""
    match = None
    for match in _ANSWER.finditer(text):
        pass
    working, committed = (text[: match.start()], 1) if match else (text, 0)
    steps = [s.strip().rstrip(".").strip() for s in _STEP_SPLIT.split(working)]
    return [s for s in steps if s], committed


def _restated(working: str) -> tuple[str, int | None]:
    """A try's working without its restated goal, and that goal (None when not restated):
    `21+6=27 vs 30` -> ("21+6=27", 30)."""
    goal = _RESTATED.search(working)
    return (working[: goal.start()].strip(), int(goal.group(1))) if goal else (working.strip(), None)


def checked_steps(text: str) -> list[tuple[str, int | None, bool]]:
    """A completion's try/check steps in order: each (working, restated goal or None, accepted), the working
    without its goal and verdict (`21+6=27 vs 30 no` -> ("21+6=27", 30, False)); free text, never raises."""
    out = []
    for step in _steps(text)[0]:
        verdict = _VERDICT.search(step)
        if verdict is not None:
            out.append((*_restated(step[: verdict.start()]), verdict.group(1).lower() == YES))
    return out


def try_check(text: str) -> TryCheckCount:
    """Count the try/check/revise steps of one completion (free text; never raises)."""
    steps, committed = _steps(text)
    tries = rejected = revisions = miscomputed = 0
    last_rejected = False
    for step in steps:
        verdict = _VERDICT.search(step)
        if verdict is None:
            last_rejected = False
            continue
        tries += 1
        miscomputed += _false_working(_restated(step[: verdict.start()])[0])
        revisions += last_rejected
        last_rejected = verdict.group(1).lower() == NO
        rejected += last_rejected
    return TryCheckCount(steps=len(steps) + committed, tries=tries, rejected=rejected, revisions=revisions,
                         miscomputed=miscomputed)


def arithmetic_value(expression: str) -> int | None:
    """The value of an expression of digits, + - * and brackets; None for anything else (no powers: 9**9**9)."""
    if "**" in expression or not _ARITHMETIC.fullmatch(expression):
        return None
    try:
        return eval(expression, {"__builtins__": {}})  # noqa: S307 - digits, + - * ( ) only
    except (SyntaxError, TypeError, ValueError):
        return None


def _false_working(working: str) -> bool:
    """Whether a try's working is false arithmetic: `expression=value`, or a chain of reductions
    `2*8+9=16+9=25` in which any link differs from the final value (digits, + - * and brackets)."""
    *chain, value = working.strip().split("=")
    values = [arithmetic_value(link) for link in chain]
    if not chain or not _INTEGER.fullmatch(value.strip()) or None in values:
        return False  # not arithmetic we can check: not counted as faked
    return any(v != int(value) for v in values)


def reduced(expression: str) -> str:
    """`expression` worked one operation at a time, by precedence, as a chain ending in its value:
    `2*8+9` -> `2*8+9=16+9=25`, `(2+3)*2` -> `(2+3)*2=5*2=10`, `38+5` -> `38+5=43` (digits, + - *, one
    level of brackets)."""
    links = [expression]
    while True:
        current = links[-1]
        inner = re.search(r"\(([^()]*)\)", current)
        if inner:  # the bracket first, as one operation
            links.append(current[: inner.start()] + str(eval(inner.group(1), {"__builtins__": {}})) + current[inner.end():])  # noqa: S307
            continue
        terms = re.findall(r"(?<![\d)])-?\d+|[+\-*]", current)
        if len(terms) <= 1:
            return "=".join(links)
        ops = [i for i in range(1, len(terms), 2)]
        i = next((i for i in ops if terms[i] == "*"), ops[0])  # products first, then left to right
        value = eval("".join(terms[i - 1: i + 2]), {"__builtins__": {}})  # noqa: S307 - two numbers, one operator
        links.append("".join(terms[: i - 1] + [str(value)] + terms[i + 2:]))


def try_check_share(texts: Iterable[str]) -> float:
    """The mean try/check share of some rollouts (nan for none): what is logged per domain and arm."""
    shares = [try_check(t).share for t in texts]
    return statistics.mean(shares) if shares else float("nan")


def checked(working: str, goal: object, accepted: bool) -> str:
    """One try/check step: the working, the goal restated beside its value, the verdict (`45+3=48 vs 52 no`)."""
    return f"{working} vs {goal} {YES if accepted else NO}"


def tried_steps(candidates: Sequence[tuple[str, bool]], goal: object) -> str:
    """Worked try/check steps: each (working, accepted) pair as `working vs goal yes|no`, joined by `, `."""
    return ", ".join(checked(working, goal, ok) for working, ok in candidates)


def fits(response: str) -> bool:
    """Whether a worked response and its end-of-text token fit SOLUTION_BUDGET toy tokens."""
    return len(response) + 1 <= SOLUTION_BUDGET


def direct_response(response: str, tried_answer: Callable[[str], str] | None = None, guess: str | None = None) -> str:
    """The direct answer of a worked response: a guess that names a candidate's expression and the goal without
    working it out, then commits to that candidate (` guess 7*8+9 for 65. Answer: 8`). With `tried_answer` (a
    family's: the answer a try's working commits to, `TaskFamily.tried_answer`) the candidate is the search's
    first try, right only when that try was (about half the searches; H15): a first try without its check.
    Without it, the accepted candidate (H10-H14), so a direct answer was right by construction. Up to H5 it was
    the answer alone; H6-H9 showed the candidate's working (` 7*8+9=56+9=65. Answer: 8`), word for word a first
    try without its verdict, so RL could learn to check from the value it had just written. The counters see
    one working step and no try (share 0). A response without a try is direct already, and returned as it is.
    With `guess` as well (a candidate's working drawn apart from the search, `uninformed_guess`; H36), that
    candidate: a guess that knows nothing of the answer."""
    tries = checked_steps(response)
    if not tries:
        return response
    if guess is not None and tried_answer is None:
        raise ValueError("guess: a guessed candidate needs the family's tried_answer to name its answer")
    working, goal, _ = tries[0] if tried_answer is not None else tries[-1]
    working = guess if guess is not None else working
    answer = tried_answer(working) if tried_answer is not None else response.rsplit("Answer: ", 1)[-1]
    return f" {GUESS} {working.split('=', 1)[0]} for {goal}. Answer: {answer}"


def uninformed_guess(rng: random.Random, workings: dict[int, list[str]]) -> str:
    """A guess that knows nothing of the answer (H36): one of the positive values the candidates take (every goal
    of the explore world's target searches is positive), drawn uniformly, and one of that value's workings."""
    values = sorted(v for v in workings if v > 0)
    if not values:
        raise ValueError("workings: no candidate takes a positive value, so there is nothing to guess")
    return rng.choice(workings[rng.choice(values)])


def workings_by_value(candidates: Iterable[T], value: Callable[[T], int], working: Callable[[T], str]) -> dict[int, list[str]]:
    """The workings a search's tries can write (`working(candidate)`), grouped by the candidates' values in their
    order: what `TaskFamily.candidates` reads from a question."""
    return {v: [working(c) for c in group] for v, group in _by_value(candidates, value).items()}


def _by_value(candidates: Iterable[T], value: Callable[[T], int]) -> dict[int, list[T]]:
    """`candidates` grouped by their value, in their order (what every draw of a search's order reads)."""
    by_value: dict[int, list[T]] = {}
    for candidate in candidates:
        by_value.setdefault(value(candidate), []).append(candidate)
    return by_value


def _order(rng: random.Random, by_value: dict[int, list[T]], goal: int, noise: float) -> list[tuple[int, T]]:
    """(value, candidate) pairs of one drawn order (`guessed_order`)."""
    values = sorted(by_value, key=lambda v: (abs(v - goal), rng.random()))
    noisy = sorted(range(len(values)), key=lambda rank: rank + rng.gauss(0.0, noise))
    return [(values[rank], rng.choice(by_value[values[rank]])) for rank in noisy]


def guessed_order(rng: random.Random, candidates: Sequence[T], value: Callable[[T], int], goal: int,
                  noise: float = SEARCH_NOISE) -> list[T]:
    """One candidate of each value `candidates` take, in the order a solver that does not know the answer tries
    them: the values ranked by distance from `goal`, nearest first (ties in random order), each rank misjudged
    by Gaussian noise of `noise` ranks (the world's SEARCH_NOISE)."""
    return [c for _, c in _order(rng, _by_value(candidates, value), goal, noise)]


def _tried_until_right(rng: random.Random, by_value: dict[int, list[T]], goal: int, most: int, noise: float) -> list[T]:
    for _ in range(REDRAWS):
        order = _order(rng, by_value, goal, noise)
        first = next(i for i, (v, _) in enumerate(order) if v == goal)
        if first < most:
            return [c for _, c in order[: first + 1]]
    return [c for v, c in order if v != goal][: most - 1] + [order[first][1]]


def tried_until_right(rng: random.Random, candidates: Sequence[T], value: Callable[[T], int], goal: int,
                      most: int = MOST_TRIES, noise: float = SEARCH_NOISE) -> list[T]:
    """The candidates a worked search tries: `guessed_order` up to its first right one (value == goal), at most
    `most` of them. An order that needs more is drawn again; after REDRAWS draws the right candidate takes
    the last place, after the first wrong ones."""
    return _tried_until_right(rng, _by_value(candidates, value), goal, most, noise)


def searched(rng: random.Random, candidates: Sequence[T], value: Callable[[T], int], goal: int,
             working: Callable[[T], str], answered: Callable[[T], str] = str,
             noise: float = SEARCH_NOISE) -> tuple[str, T]:
    """A worked search for the candidate whose value is `goal`: its try/check steps (each `working(candidate)`
    compared with `goal`, `tried_until_right`) and the candidate it accepts. At most MOST_TRIES tries, one
    fewer while the response (answer written by `answered`) would not fit SOLUTION_BUDGET."""
    by_value = _by_value(candidates, value)  # once: every draw and every budget reads the same values
    for most in range(MOST_TRIES, 0, -1):
        tried = _tried_until_right(rng, by_value, goal, most, noise)
        steps = tried_steps([(working(c), i == len(tried) - 1) for i, c in enumerate(tried)], goal)  # the last is right
        if most == 1 or fits(f" {steps}. Answer: {answered(tried[-1])}"):
            break
    return steps, tried[-1]


def try_check_metric(text: str) -> float:
    """One rollout's try/check share: the rollout metric "try_check" (`heal_hf.core.rollout_metrics`)."""
    return try_check(text).share


TRY_CHECK = "try_check"
"""The rollout metric's name (`heal_hf.core.rollout_metrics`), registered when this module is imported."""
register_rollout_metric(TRY_CHECK, try_check_metric)
