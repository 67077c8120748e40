"""Seeded, verifiable toy reasoning tasks: the toy reasoner's world.

Every problem is a prompt `Q: <question>\\nA:` whose response works step by step and
ends in `Answer: <answer>`, which `heal_hf.core.verifiers` reads. Families come in two
domains:

- general (the pool's source): arithmetic and number reasoning, numeric answers:
  `addition`, `multiplication`, `word_problem`, `sequence`. Each worked solution is
  one of several valid ones drawn at random (which operand first in each step, which
  pair of terms gives a progression's step), as real reasoners write the same
  solution in many ways: a model trained on them is uncertain at those forking
  tokens of *correct* solutions, not only where it errs;
- target (the few-shot domains): symbol and string manipulation, digit and calendar
  reasoning, exact answers: `sort_digits`, `reverse_word`, `letter_shift`, `digit_sum`,
  `weekday` have one fixed way of working each; `countdown` (subtract digits from a
  two-digit number) works a step that crosses a ten in one of two valid ways (at once, or
  down to the ten first), a fork in correct solutions, as the general domain has.

Train, validation and test splits are disjoint by construction: a hash of the prompt
puts one problem in five in test and one in five in validation, whatever the seed, so
no seed can leak held-out problems into training. `generate(family, n, split, seed)`
draws `n` distinct problems of one split, the same ones for the same seed.

Worlds. `WORLDS` names the families of each toy world. `v6`, the ten above, is the bundled
reasoner's (`BUNDLED_WORLD`): FAMILIES, GENERAL_FAMILIES and TARGET_FAMILIES are its
families, and every family of every world is in ALL_FAMILIES (`get_family` finds any).
`explore` is a world where trying alternatives pays (`heal_hf.toy.explore`): its target
families are searches whose first guess often fails, two of them drawn from reasoning-gym
and judged by its own `score_answer` (`heal_hf.toy.gym`):
`gym_countdown` (reach a target with three digits and + -), `gym_equation` (solve
`a*x + b = c` for a digit x) and `pair_sum` (which two of four digits make a sum); its
general domain keeps `addition` and `multiplication` (the digit facts every check uses)
and adds `missing_addend`, `missing_subtrahend` and `missing_operator`, worked by trying a
candidate, checking it and revising (` 38+5=43 no, 38+6=44 no, 38+7=45 yes. Answer: 7`), and
`check`, the verdict alone (` 56+7=63 vs 65 no. Answer: no`, yes and no equally often), and
`pair_sums` (any two of six digits that add to a sum, which three or more pairs do: several
right answers, judged by `one_of`), and `missing_term` (the digit x of `7*?+23=79`: gym_equation's search
with a two-digit constant). Every explore problem has such a
worked solution; the toy reasoner's training mix keeps it for every general problem and
for a few target ones only (the rest answer directly), so the base model has the behaviour
but uses it less in the target.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from dataclasses import dataclass
from typing import Callable

from ..core import verifiers
from . import explore, gym

GENERAL = "general"
TARGET = "target"
SPLITS = ("train", "validation", "test")
HELD_OUT_SHARE = 5  # one problem in HELD_OUT_SHARE is a test problem, one a validation problem
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NAMES = ("Ann", "Bob", "Cy", "Dee", "Eli", "Fay", "Gus", "Ida")
ITEMS = ("pens", "apples", "cards", "stones", "books", "coins")

Problem = tuple[str, ...]  # question, worked steps, answer[, reference answer when the shown one is not it]


def _terms(rng: random.Random, *terms: object) -> str:
    """The terms of a sum in a random order: every order is valid working (forks in correct solutions)."""
    terms = [str(t) for t in terms]
    rng.shuffle(terms)
    return "+".join(terms)


def _addition(rng: random.Random) -> Problem:
    a, b = rng.randint(10, 999), rng.randint(10, 99)
    xs, ys, steps, carry = str(a)[::-1], str(b)[::-1], [], 0
    for i in range(max(len(xs), len(ys))):
        x, y = int(xs[i]) if i < len(xs) else 0, int(ys[i]) if i < len(ys) else 0
        s = x + y + carry
        steps.append(f"{_terms(rng, x, y, *([1] if carry else []))}={s}")
        carry = s // 10
    return f"{a}+{b}=?", ", ".join(steps), str(a + b)


def _multiplication(rng: random.Random) -> Problem:
    a, b = rng.randint(10, 999), rng.randint(2, 9)
    steps, carry = [], 0
    for d in str(a)[::-1]:
        p = int(d) * b + carry
        product = f"{d}*{b}" if rng.random() < 0.5 else f"{b}*{d}"
        steps.append(f"{_terms(rng, product, *([carry] if carry else []))}={p}")
        carry = p // 10
    return f"{a}*{b}=?", ", ".join(steps), str(a * b)


def _word_problem(rng: random.Random) -> Problem:
    # One-digit operands: every step is a digit fact the column-wise families also teach.
    name, item, kind = rng.choice(NAMES), rng.choice(ITEMS), rng.randrange(4)
    if kind == 0:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return f"{name} has {a} {item} and gets {b} more. How many now?", f"{_terms(rng, a, b)}={a + b}", str(a + b)
    if kind == 1:
        a = rng.randint(5, 18)
        b = rng.randint(1, min(9, a - 1))
        return f"{name} has {a} {item} and gives away {b}. How many left?", f"{a}-{b}={a - b}", str(a - b)
    if kind == 2:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        product = f"{a}*{b}" if rng.random() < 0.5 else f"{b}*{a}"
        return f"{name} has {a} bags of {b} {item}. How many {item}?", f"{product}={a * b}", str(a * b)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    c = rng.randint(1, min(9, a + b - 1))
    return (f"{name} has {a} {item}, gets {b}, gives {c}. How many?",
            f"{_terms(rng, a, b)}={a + b}, {a + b}-{c}={a + b - c}", str(a + b - c))


def _sequence(rng: random.Random) -> Problem:
    start, step = rng.randint(1, 999), rng.randint(2, 9)
    terms = [start + i * step for i in range(4)]
    i = rng.randrange(3)  # any two neighbours give the step
    steps = f"{terms[i + 1]}-{terms[i]}={step}, {_terms(rng, terms[3], step)}={terms[3] + step}"
    return f"next in {', '.join(map(str, terms))}?", steps, str(terms[3] + step)


def _sort_digits(rng: random.Random) -> Problem:
    digits = [rng.randint(0, 9) for _ in range(rng.randint(3, 6))]
    ordered = " ".join(map(str, sorted(digits)))
    return f"sort {' '.join(map(str, digits))}", f"min first: {ordered}", ordered


def _reverse_word(rng: random.Random) -> Problem:
    consonants, vowels = "bcdfgklmnprstvz", "aeiou"
    n = rng.randint(3, 5)
    word = "".join(rng.choice(vowels if i % 2 else consonants) for i in range(n))
    return f"reverse {word}", "-".join(word[::-1]), word[::-1]


def _letter_shift(rng: random.Random) -> Problem:
    letters = "abcdefghijklmnopqrstuvwxyz"
    word, k = "".join(rng.choice(letters) for _ in range(rng.randint(3, 4))), rng.randint(1, 3)
    shifted = "".join(letters[(letters.index(c) + k) % 26] for c in word)
    return f"shift {word} by {k}", ", ".join(f"{c}+{k}={d}" for c, d in zip(word, shifted)), shifted


def _digit_sum(rng: random.Random) -> Problem:
    digits = [rng.randint(0, 9) for _ in range(rng.randint(3, 5))]
    steps, total = [], digits[0]
    for d in digits[1:]:
        steps.append(f"{total}+{d}={total + d}")
        total += d
    return f"digit sum {''.join(map(str, digits))}", ", ".join(steps), str(total)


def _countdown(rng: random.Random) -> Problem:
    start, digits = rng.randint(30, 99), [rng.randint(1, 9) for _ in range(rng.randint(2, 3))]
    steps, total = [], start
    for d in digits:
        ones = total % 10
        if d > ones > 0 and rng.random() < 0.5:  # crossing a ten: at once, or down to the ten first
            steps.append(f"{total}-{ones}-{d - ones}={total - d}")
        else:
            steps.append(f"{total}-{d}={total - d}")
        total -= d
    return f"{start} minus {' '.join(map(str, digits))}", ", ".join(steps), str(total)


def _weekday(rng: random.Random) -> Problem:
    day, offset = rng.randrange(7), rng.randint(1, 299)
    end = WEEKDAYS[(day + offset) % 7]
    return (f"{WEEKDAYS[day]} + {offset} days = ?",
            f"{offset} mod 7 = {offset % 7}, {WEEKDAYS[day]}+{offset % 7} = {end}", end)


def _searched(rng: random.Random, goal: int, value: Callable[[int], int], working: Callable[[int], str]) -> str:
    """Try/check steps of a digit search (1 to 9, explore.searched), each compared with `goal`, as many as fit."""
    return explore.searched(rng, range(1, 10), value, goal, working)[0]


def _missing_addend(rng: random.Random) -> Problem:
    # Two-digit numbers, so that three tries fit the budget and no verdict is given away by its position.
    a, d = rng.randint(10, 99), rng.randint(1, 9)
    return f"{a}+?={a + d}", _searched(rng, a + d, lambda t: a + t, lambda t: f"{a}+{t}={a + t}"), str(d)


def _missing_subtrahend(rng: random.Random) -> Problem:
    a = rng.randint(11, 99)
    d = rng.randint(1, min(9, a - 1))
    return f"{a}-?={a - d}", _searched(rng, a - d, lambda t: a - t, lambda t: f"{a}-{t}={a - t}"), str(d)


def _missing_operator(rng: random.Random) -> Problem:
    # `a?b*c=v`: the operator that makes v (with precedence), unique; the checks are countdown's and
    # gym_equation's arithmetic (a op b op c, a*t+b), practised in the general domain.
    while True:
        a, b, c = (rng.randint(1, 9) for _ in range(3))
        given, slot = rng.choice("+-*"), rng.randrange(2)
        expression = lambda op: f"{a}{op}{b}{given}{c}" if slot == 0 else f"{a}{given}{b}{op}{c}"  # noqa: E731
        values = {op: gym.value(expression(op)) for op in "+-*"}
        answer = rng.choice("+-*")
        if sum(v == values[answer] for v in values.values()) == 1:
            break
    question = expression("?") + f"={values[answer]}"
    steps, _ = explore.searched(rng, "+-*", values.__getitem__, values[answer], lambda op: explore.reduced(expression(op)))
    return question, steps, answer


def _missing_term(rng: random.Random) -> Problem:
    # `a*?+b=c` / `a*?-b=c` (H12): gym_equation's search and working (`7*8+23=56+23=79`) in the general domain, with
    # b of two digits (10-59) where gym_equation's has one, so that no general problem is a target one reworded;
    # c below 100, so that three tries fit SOLUTION_BUDGET as gym_equation's do.
    def expression(digit: int) -> str:
        return f"{a}*{digit}{sign}{b}"

    while True:
        a, t, b, sign = rng.randint(1, 9), rng.randint(1, 9), rng.randint(10, 59), rng.choice("+-")
        goal = gym.value(expression(t))
        if 0 < goal < 100:
            break
    steps = _searched(rng, goal, lambda d: gym.value(expression(d)), lambda d: explore.reduced(expression(d)))
    return f"{a}*?{sign}{b}={goal}", steps, str(t)


def _check(rng: random.Random) -> Problem:
    # The verdict alone, balanced: is a claimed value the working's? Half one-operation checks (the searches'
    # and pair_sum's), half three one-digit operands (missing_operator's, gym_countdown's, gym_equation's),
    # reduced by precedence; a wrong claim is a near miss (1-9 off), so that its digits must be read.
    if rng.random() < 0.5:
        expression = f"{rng.randint(10, 99)}{rng.choice('+-')}{rng.randint(1, 9)}"
    else:
        a, b, c = (rng.randint(1, 9) for _ in range(3))
        expression = f"{a}{rng.choice('+-*')}{b}{rng.choice('+-*')}{c}"
    value = gym.value(expression)
    right = rng.random() < 0.5
    claimed = value if right else value + rng.choice((-1, 1)) * rng.randint(1, 9)
    verdict = explore.YES if right else explore.NO
    return f"{expression}={claimed}?", explore.checked(explore.reduced(expression), claimed, right), verdict


def _pairs(rng: random.Random, count: int, right: Callable[[int], bool]) -> tuple[list[int], list[tuple[int, int]], int]:
    """`count` distinct digits, their pairs (in the digits' order) and a sum that `right(pairs making it)` accepts."""
    while True:
        digits = rng.sample(range(1, 10), count)
        pairs = [(digits[i], digits[j]) for i in range(count) for j in range(i + 1, count)]
        target = sum(rng.choice(pairs))
        if right(sum(a + b == target for a, b in pairs)):
            return digits, pairs, target


def _pair(pair: tuple[int, int]) -> str:
    return f"{pair[0]} {pair[1]}"


def _pair_tried(working: str) -> str:
    """The pair a try's working adds (`3+5=8` -> `3 5`), written as pair_sum answers."""
    return working.split("=", 1)[0].replace("+", " ")


def _pair_working(pair: tuple[int, int]) -> str:
    return f"{pair[0]}+{pair[1]}={pair[0] + pair[1]}"


def _pair_search(rng: random.Random, pairs: list[tuple[int, int]], target: int) -> tuple[str, str]:
    """A worked search of `pairs` for one that adds to `target`: its try/check steps and the pair answered."""
    steps, right = explore.searched(rng, pairs, sum, target, _pair_working, _pair)
    return steps, _pair(right)


def _pair_sum(rng: random.Random) -> Problem:
    # Four distinct digits of which exactly one pair makes the sum asked for.
    digits, pairs, target = _pairs(rng, 4, lambda making: making == 1)
    return (f"two of {' '.join(map(str, digits))} make {target}", *_pair_search(rng, pairs, target))


_PAIR_SUM_QUESTION = re.compile(r"two of (\d) (\d) (\d) (\d) make (\d+)")


def _pair_sum_candidates(prompt: str) -> dict[int, list[str]]:
    """The workings a pair_sum try can write for a prompt's digits (`3+5=8`), grouped by their sum."""
    match = _PAIR_SUM_QUESTION.search(prompt)
    if match is None:
        raise ValueError(f"prompt: {prompt!r} is not a pair_sum question ('two of a b c d make t')")
    pairs = list(itertools.combinations([int(d) for d in match.groups()[:4]], 2))
    return explore.workings_by_value(pairs, sum, _pair_working)


def _pair_sums(rng: random.Random) -> Problem:
    # Six distinct digits of which at least three pairs make the sum asked for; any of them is right (H8). The
    # search accepts a pair drawn from all that make it, so its tries and answer carry that choice's entropy.
    digits, pairs, target = _pairs(rng, 6, lambda making: making >= 3)
    steps, answer = _pair_search(rng, pairs, target)
    right = verifiers.ALTERNATIVES.join(_pair(p) for p in pairs if sum(p) == target)
    return f"any two of {' '.join(map(str, digits))} that add to {target}", steps, answer, right


class SplitTooSmall(ValueError):
    """A family's split holds fewer distinct problems than were asked for (`TaskFamily.generate`)."""


@dataclass(frozen=True)
class TaskFamily:
    """One task family: its domain, a seeded problem maker and the verifier of its answers."""

    name: str
    domain: str  # GENERAL | TARGET
    make: Callable[[random.Random], Problem]
    verifier: str  # a heal_hf.core.verifiers name: numeric | exact | reasoning_gym
    about: str
    tried_answer: Callable[[str], str] | None = None
    """A target search family's: the answer a try's working commits to (`explore.direct_response`'s first try)."""
    candidates: Callable[[str], dict[int, list[str]]] | None = None
    """A target search family's whose search can be drawn again in another order (H36): the workings its tries can
    write for a prompt, grouped by value (`searched_again`, `explore.uninformed_guess`)."""

    def verify(self, completion: object, answer: object) -> float:
        """1.0 when the completion's final answer is right, else 0.0 (never raises on model output)."""
        return verifiers.get_verifier(self.verifier)(completion, answer)

    def generate(self, n: int, split: str = "train", seed: int = 0, noise: float | None = None) -> list[dict[str, str]]:
        """`n` distinct problems of `split`: rows with prompt, response (worked steps), answer, family, domain.
        With `noise` (a family with `candidates` only), each problem's search is drawn again at that rank noise
        (`searched_again`): the problems are the same as without it, only their tries' order changes."""
        if split not in SPLITS:
            raise ValueError(f"split: {split!r} is not a toy task split; use one of {SPLITS}")
        if n < 0:
            raise ValueError(f"n: {n} problems asked for; pass a count >= 0")
        if noise is not None and self.candidates is None:
            raise ValueError(f"noise: {self.name!r} has no search whose order can be drawn; leave noise out")
        digest = hashlib.sha256(f"{self.name}/{split}/{seed}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        rows: list[dict[str, str]] = []
        seen: set[str] = set()
        misses = 0  # draws in a row that found nothing new: many means the split is used up
        while len(rows) < n:
            question, steps, answer, *reference = self.make(rng)
            prompt = format_prompt(question)
            if prompt in seen or problem_split(prompt) != split:
                misses += 1
                if misses > 20_000:
                    raise SplitTooSmall(
                        f"n: the {split} split of {self.name!r} has fewer than {n} distinct problems "
                        f"(found {len(rows)}); ask for fewer"
                    )
                continue
            seen.add(prompt)
            misses = 0
            rows.append({"prompt": prompt, "response": format_response(steps, answer),
                         "answer": reference[0] if reference else answer, "family": self.name, "domain": self.domain})
        if noise is not None:
            for row in rows:
                row["response"] = self.searched_again(row, noise, random.Random(f"{self.name}/{split}/{seed}/{row['prompt']}"))
        return rows

    def searched_again(self, row: dict[str, str], noise: float, rng: random.Random) -> str:
        """A row's worked response searched again at rank `noise` (`explore.searched` over `candidates`, the goal
        its accepted try restates): tries in another order, ending at the first right one, as every search does."""
        if self.candidates is None or self.tried_answer is None:
            raise ValueError(f"{self.name!r} has no search that can be drawn again")
        goal = explore.checked_steps(row["response"])[-1][1]
        value = {w: v for v, workings in self.candidates(row["prompt"]).items() for w in workings}
        steps, right = explore.searched(rng, list(value), value.__getitem__, goal, str, self.tried_answer, noise=noise)
        return format_response(steps, self.tried_answer(right))


def format_prompt(question: str) -> str:
    """The prompt the toy reasoner reads: `Q: <question>\\nA:`."""
    return f"Q: {question}\nA:"


def format_response(steps: str, answer: str) -> str:
    """A worked response: ` <steps>. Answer: <answer>`, or ` Answer: <answer>` without steps (the
    end-of-text token follows in training)."""
    return f" {steps}. Answer: {answer}" if steps else f" Answer: {answer}"


def problem_split(prompt: str) -> str:
    """The split of a prompt, by its hash (independent of any seed): one in HELD_OUT_SHARE 'test',
    one in HELD_OUT_SHARE 'validation', the rest 'train'."""
    bucket = hashlib.sha256(prompt.encode()).digest()[0] % HELD_OUT_SHARE
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


ALL_FAMILIES: dict[str, TaskFamily] = {
    f.name: f
    for f in (
        TaskFamily("addition", GENERAL, _addition, "numeric", "add a two-digit number to one of up to three digits, column by column, with carries"),
        TaskFamily("multiplication", GENERAL, _multiplication, "numeric", "a two- or three-digit number times a digit"),
        TaskFamily("word_problem", GENERAL, _word_problem, "numeric",
                   "word problems of one or two one-digit steps: more, fewer, bags of, gets then gives"),
        TaskFamily("sequence", GENERAL, _sequence, "numeric", "the next term of an arithmetic progression"),
        TaskFamily("sort_digits", TARGET, _sort_digits, "exact", "sort 3 to 6 digits in ascending order"),
        TaskFamily("reverse_word", TARGET, _reverse_word, "exact", "spell a 3- to 5-letter word backwards"),
        TaskFamily("letter_shift", TARGET, _letter_shift, "exact", "shift each letter of a 3- or 4-letter string 1 to 3 places"),
        TaskFamily("digit_sum", TARGET, _digit_sum, "exact", "the sum of 3 to 5 digits, as a running total"),
        TaskFamily("countdown", TARGET, _countdown, "exact",
                   "subtract 2 or 3 digits from a two-digit number, as a running total; a step that crosses a ten "
                   "is worked at once or down to the ten first (two valid ways)"),
        TaskFamily("weekday", TARGET, _weekday, "exact", "the weekday 1 to 299 days after a given one"),
        TaskFamily("missing_addend", GENERAL, _missing_addend, "numeric",
                   "the digit that added to a two-digit number makes another, found by trying digits"),
        TaskFamily("missing_subtrahend", GENERAL, _missing_subtrahend, "numeric",
                   "the digit that taken from a two-digit number leaves another, found by trying digits"),
        TaskFamily("missing_operator", GENERAL, _missing_operator, "exact",
                   "the operator (+ - *) missing from a?b*c=v, evaluated with precedence, found by trying operators"),
        TaskFamily("missing_term", GENERAL, _missing_term, "numeric",
                   "the digit x with a*x+b=c or a*x-b=c (a one digit, b two), found by trying digits: gym_equation's "
                   "search in the general domain"),
        TaskFamily("check", GENERAL, _check, "exact",
                   "whether an expression (a two-digit number +- a digit, or three digits with + - *) makes a claimed "
                   "value: worked, then yes or no, half of each"),
        TaskFamily("gym_countdown", TARGET, gym.countdown, gym.VERIFIER,
                   "reasoning-gym countdown: an expression of three given digits with + and - that makes a "
                   "target (judged by reasoning-gym)", gym.countdown_tried, gym.countdown_candidates),
        TaskFamily("gym_equation", TARGET, gym.equation, gym.VERIFIER,
                   "reasoning-gym simple_equations: the digit x with a*x + b = c or a*x - b = c (judged by reasoning-gym)",
                   gym.equation_tried),
        TaskFamily("pair_sum", TARGET, _pair_sum, "exact", "which two of four distinct digits make a given sum",
                   _pair_tried, _pair_sum_candidates),
        TaskFamily("pair_sums", GENERAL, _pair_sums, "one_of",
                   "any two of six distinct digits that add to a given sum, which at least three pairs do, found by "
                   "trying pairs (every right pair is right)"),
    )
}
WORLDS: dict[str, tuple[str, ...]] = {
    "v6": ("addition", "multiplication", "word_problem", "sequence",
           "sort_digits", "reverse_word", "letter_shift", "digit_sum", "countdown", "weekday"),
    "explore": ("addition", "multiplication", "missing_addend", "missing_subtrahend", "missing_operator", "check",
                "pair_sums", "missing_term", "gym_countdown", "gym_equation", "pair_sum"),
}
"""Each toy world's families (see the module doc); BUNDLED_WORLD is the bundled reasoner's."""
BUNDLED_WORLD = "v6"
COMPLETION_BUDGETS: dict[str, int] = {"v6": 48, "explore": explore.COMPLETION_BUDGET}
"""New tokens an RL completion may use in each world (the replication's max_completion_length)."""


def completion_budget(family: str) -> int:
    """The completion budget of the world a target family belongs to (a general one: the first world that has it)."""
    return COMPLETION_BUDGETS[next(world for world, names in WORLDS.items() if family in names)]


def world_families(world: str, domain: str | None = None) -> tuple[str, ...]:
    """The families of `world` (of one domain when given), in a fixed order."""
    if world not in WORLDS:
        raise ValueError(f"world: unknown toy world {world!r}; choose one of {list(WORLDS)}")
    return tuple(name for name in WORLDS[world] if domain is None or ALL_FAMILIES[name].domain == domain)


FAMILIES: dict[str, TaskFamily] = {name: ALL_FAMILIES[name] for name in WORLDS[BUNDLED_WORLD]}
"""The bundled world's families (what the bundled reasoner, pool, demo and Space use); every family by
name is in ALL_FAMILIES and get_family."""
GENERAL_FAMILIES = world_families(BUNDLED_WORLD, GENERAL)
TARGET_FAMILIES = world_families(BUNDLED_WORLD, TARGET)
GENERAL_VERIFIER = "one_of"
"""A checker every toy general family's answers pass (numbers, explore's operators and pair_sums' several right
pairs alike; `exact` for a single answer): what training judges general rows by when the target's verifier
is another (reasoning-gym's targets, and pair_sum's `exact` since H8)."""
ALL_TARGET_FAMILIES = tuple(name for name, f in ALL_FAMILIES.items() if f.domain == TARGET)
"""The target families of every world (train another world's on its own reasoner: --model, --pool)."""


def get_family(name: str) -> TaskFamily:
    """The family called `name`; a ValueError listing the families otherwise."""
    if name not in ALL_FAMILIES:
        raise ValueError(
            f"family: unknown toy task family {name!r}; choose a target family {list(TARGET_FAMILIES)} "
            f"or a general one {list(GENERAL_FAMILIES)} (world {BUNDLED_WORLD}), or one of another world: "
            f"{sorted(set(ALL_FAMILIES) - set(FAMILIES))}"
        )
    return ALL_FAMILIES[name]


def generate(family: str, n: int, split: str = "train", seed: int = 0, noise: float | None = None) -> list[dict[str, str]]:
    """`n` distinct problems of one family and split (see TaskFamily.generate)."""
    return get_family(family).generate(n, split=split, seed=seed, noise=noise)
