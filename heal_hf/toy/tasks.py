"""Seeded, verifiable toy reasoning tasks: the toy reasoner's world.

Every problem is a prompt `Q: <question>\\nA:` whose response works step by step and
ends in `Answer: <answer>`, which `heal_hf.verifiers` reads. Families come in two
domains:

- general (the pool's source): arithmetic and number reasoning, numeric answers:
  `addition`, `multiplication`, `word_problem`, `sequence`;
- target (the few-shot domains): symbol and string manipulation and calendar
  reasoning, exact answers: `sort_digits`, `reverse_word`, `weekday`.

Train and test splits are disjoint by construction: a problem belongs to the test
split when a hash of its prompt says so (one in five), whatever the seed, so no seed
can leak test problems into training. `generate(family, n, split, seed)` draws `n`
distinct problems of one split, the same ones for the same seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Callable

from .. import verifiers

GENERAL = "general"
TARGET = "target"
SPLITS = ("train", "test")
TEST_SHARE = 5  # one problem in TEST_SHARE is a test problem
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NAMES = ("Ann", "Bob", "Cy", "Dee", "Eli", "Fay", "Gus", "Ida")
ITEMS = ("pens", "apples", "cards", "stones", "books", "coins")

Problem = tuple[str, str, str]  # question, worked steps, answer


def _addition(rng: random.Random) -> Problem:
    a, b = rng.randint(10, 999), rng.randint(10, 999)
    xs, ys, steps, carry = str(a)[::-1], str(b)[::-1], [], 0
    for i in range(max(len(xs), len(ys))):
        x, y = int(xs[i]) if i < len(xs) else 0, int(ys[i]) if i < len(ys) else 0
        s = x + y + carry
        steps.append(f"{x}+{y}{'+1' if carry else ''}={s}")
        carry = s // 10
    return f"{a}+{b}=?", ", ".join(steps), str(a + b)


def _multiplication(rng: random.Random) -> Problem:
    a, b = rng.randint(10, 999), rng.randint(2, 9)
    steps, carry = [], 0
    for d in str(a)[::-1]:
        p = int(d) * b + carry
        steps.append(f"{d}*{b}{f'+{carry}' if carry else ''}={p}")
        carry = p // 10
    return f"{a}*{b}=?", ", ".join(steps), str(a * b)


def _word_problem(rng: random.Random) -> Problem:
    name, item, kind = rng.choice(NAMES), rng.choice(ITEMS), rng.randrange(3)
    if kind == 0:
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        return f"{name} has {a} {item} and gets {b} more. How many now?", f"{a}+{b}={a + b}", str(a + b)
    if kind == 1:
        a = rng.randint(5, 60)
        b = rng.randint(1, a - 1)
        return f"{name} has {a} {item} and gives away {b}. How many left?", f"{a}-{b}={a - b}", str(a - b)
    a, b = rng.randint(2, 9), rng.randint(2, 12)
    return f"{name} has {a} bags of {b} {item}. How many {item}?", f"{a}*{b}={a * b}", str(a * b)


def _sequence(rng: random.Random) -> Problem:
    start, step = rng.randint(1, 199), rng.randint(2, 29)
    terms = [start + i * step for i in range(4)]
    steps = f"{terms[1]}-{terms[0]}={step}, {terms[3]}+{step}={terms[3] + step}"
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


def _weekday(rng: random.Random) -> Problem:
    day, offset = rng.randrange(7), rng.randint(1, 199)
    end = WEEKDAYS[(day + offset) % 7]
    return (f"{WEEKDAYS[day]} + {offset} days = ?",
            f"{offset} mod 7 = {offset % 7}, {WEEKDAYS[day]}+{offset % 7} = {end}", end)


@dataclass(frozen=True)
class TaskFamily:
    """One task family: its domain, a seeded problem maker and the verifier of its answers."""

    name: str
    domain: str  # GENERAL | TARGET
    make: Callable[[random.Random], Problem]
    verifier: str  # a heal_hf.verifiers name: numeric | exact
    about: str

    def verify(self, completion: object, answer: object) -> float:
        """1.0 when the completion's final answer is right, else 0.0 (never raises on model output)."""
        return verifiers.get_verifier(self.verifier)(completion, answer)

    def generate(self, n: int, split: str = "train", seed: int = 0) -> list[dict[str, str]]:
        """`n` distinct problems of `split`: rows with prompt, response (worked steps), answer, family, domain."""
        if split not in SPLITS:
            raise ValueError(f"split: {split!r} is not a toy task split; use one of {SPLITS}")
        if n < 0:
            raise ValueError(f"n: {n} problems asked for; pass a count >= 0")
        digest = hashlib.sha256(f"{self.name}/{split}/{seed}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        rows: list[dict[str, str]] = []
        seen: set[str] = set()
        misses = 0  # draws in a row that found nothing new: many means the split is used up
        while len(rows) < n:
            question, steps, answer = self.make(rng)
            prompt = format_prompt(question)
            if prompt in seen or problem_split(prompt) != split:
                misses += 1
                if misses > 20_000:
                    raise ValueError(
                        f"n: the {split} split of {self.name!r} has fewer than {n} distinct problems "
                        f"(found {len(rows)}); ask for fewer"
                    )
                continue
            seen.add(prompt)
            misses = 0
            rows.append({"prompt": prompt, "response": format_response(steps, answer), "answer": answer,
                         "family": self.name, "domain": self.domain})
        return rows


def format_prompt(question: str) -> str:
    """The prompt the toy reasoner reads: `Q: <question>\\nA:`."""
    return f"Q: {question}\nA:"


def format_response(steps: str, answer: str) -> str:
    """A worked response: ` <steps>. Answer: <answer>` (the end-of-text token follows in training)."""
    return f" {steps}. Answer: {answer}"


def problem_split(prompt: str) -> str:
    """'test' for one prompt in TEST_SHARE (by hash, independent of any seed), else 'train'."""
    return "test" if hashlib.sha256(prompt.encode()).digest()[0] % TEST_SHARE == 0 else "train"


FAMILIES: dict[str, TaskFamily] = {
    f.name: f
    for f in (
        TaskFamily("addition", GENERAL, _addition, "numeric", "add two numbers column by column, with carries"),
        TaskFamily("multiplication", GENERAL, _multiplication, "numeric", "a two- or three-digit number times a digit"),
        TaskFamily("word_problem", GENERAL, _word_problem, "numeric", "one-step word problems: more, fewer, bags of"),
        TaskFamily("sequence", GENERAL, _sequence, "numeric", "the next term of an arithmetic progression"),
        TaskFamily("sort_digits", TARGET, _sort_digits, "exact", "sort 3 to 6 digits in ascending order"),
        TaskFamily("reverse_word", TARGET, _reverse_word, "exact", "spell a 3- to 5-letter word backwards"),
        TaskFamily("weekday", TARGET, _weekday, "exact", "the weekday 1 to 199 days after a given one"),
    )
}
GENERAL_FAMILIES = tuple(name for name, f in FAMILIES.items() if f.domain == GENERAL)
TARGET_FAMILIES = tuple(name for name, f in FAMILIES.items() if f.domain == TARGET)


def get_family(name: str) -> TaskFamily:
    """The family called `name`; a ValueError listing the families otherwise."""
    if name not in FAMILIES:
        raise ValueError(
            f"family: unknown toy task family {name!r}; choose a target family {list(TARGET_FAMILIES)} "
            f"or a general one {list(GENERAL_FAMILIES)}"
        )
    return FAMILIES[name]


def generate(family: str, n: int, split: str = "train", seed: int = 0) -> list[dict[str, str]]:
    """`n` distinct problems of one family and split (see TaskFamily.generate)."""
    return get_family(family).generate(n, split=split, seed=seed)
