"""Verifiable rewards: exact, one-of, numeric and math answers, 1.0 or 0.0, never raising.

Every verifier takes the model's completion (free text, or a chat completion as TRL
passes it) and the reference answer. The final answer is read from the completion as
the last `\\boxed{...}`, else what follows the last `Answer:` / `####`, else the last
non-empty line. Verifiers never raise: malformed model output scores 0.0, and so does
a reference answer the verifier cannot use (missing, or holding no number for
`numeric`). `one_of` is `exact` against any of a reference's `|`-separated answers (`2 9|4 7`),
for problems with several right answers. Such answers are data errors: `check_reference_answers` finds them up
front, before training or sampling starts.
"""

from __future__ import annotations

import math
import re
import threading
from fractions import Fraction
from typing import Any, Callable, Sequence

_MARKER = re.compile(r"(?:answer\s*[:=]|####)\s*(.*)", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?:\s*/\s*[-+]?\d+(?:\.\d+)?)?")


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or TRL's conversational list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, (list, tuple)):
        return "".join(completion_text(m) for m in completion if isinstance(m, (dict, str)))
    return "" if completion is None else str(completion)


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(completion: Any) -> str:
    """The final answer in a completion (see module doc); '' when there is none."""
    text = completion_text(completion)
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    found = _MARKER.findall(text)
    if found:
        return found[-1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _normalize(text: str) -> str:
    return " ".join(text.strip().rstrip(".").split()).lower()


def _gold(answer: Any) -> str | None:
    """The reference answer as text, or None when it is missing."""
    if answer is None or (isinstance(answer, float) and math.isnan(answer)) or not str(answer).strip():
        return None
    return str(answer)


def exact_match(completion: Any, answer: Any) -> float:
    """1.0 when the extracted answer equals `answer` up to case, spacing and a final period."""
    gold = _gold(answer)
    try:
        return float(gold is not None and _normalize(extract_answer(completion)) == _normalize(gold))
    except Exception:  # malformed model output is a wrong answer, not a crash
        return 0.0


ALTERNATIVES = "|"
"""What separates the right answers of a `one_of` reference (`2 9|4 7|5 6`)."""


def one_of_match(completion: Any, answer: Any) -> float:
    """1.0 when the extracted answer equals one of `answer`'s `|`-separated answers, as `exact` compares them
    (a reference without `|` is one answer: then this is `exact_match`)."""
    gold = _gold(answer)
    try:
        return float(gold is not None and _normalize(extract_answer(completion)) in
                     {_normalize(a) for a in gold.split(ALTERNATIVES)} - {""})  # an empty alternative is none
    except Exception:  # malformed model output is a wrong answer, not a crash
        return 0.0


def parse_number(text: str) -> float | None:
    """The last number in `text` ('1,234', '-3.5e2', '3/4'), or None."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    token = found[-1].replace(",", "").replace(" ", "")
    try:
        return float(Fraction(token)) if "/" in token else float(token)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def numeric_match(completion: Any, answer: Any, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> float:
    """1.0 when the extracted answer's last number is within tolerance of `answer`'s."""
    gold = parse_number(_gold(answer) or "")
    if gold is None:  # an unusable reference answer (check_reference_answers reports it up front)
        return 0.0
    try:
        pred = parse_number(extract_answer(completion))
        return float(pred is not None and math.isclose(pred, gold, rel_tol=rel_tol, abs_tol=abs_tol))
    except Exception:
        return 0.0


def math_match(completion: Any, answer: Any, timeout_seconds: int = 5) -> float:
    """1.0 when `math-verify` finds the completion's answer equivalent to `answer`.

    Off the main thread math-verify's signal-based timeout cannot run, so it is
    disabled there (as its authors advise).
    """
    from math_verify import parse, verify

    gold_text = _gold(answer)
    if gold_text is None:
        return 0.0
    timeout = timeout_seconds if threading.current_thread() is threading.main_thread() else None
    try:
        gold = parse(f"${gold_text}$" if "$" not in gold_text else gold_text, parsing_timeout=timeout)
        if not gold:
            return 0.0
        # The extracted final answer first, then math-verify's own search of the whole
        # text (it finds boxed and inline-math answers anywhere).
        text = completion_text(completion)
        final = extract_answer(text)
        for candidate in (final if "$" in final else f"${final}$", text):
            pred = parse(candidate, parsing_timeout=timeout)
            if pred and verify(gold, pred, timeout_seconds=timeout):
                return 1.0
        return 0.0
    except Exception:
        return 0.0


VERIFIERS: dict[str, Callable[..., float]] = {
    "exact": exact_match,
    "one_of": one_of_match,
    "numeric": numeric_match,
    "math": math_match,
}


def get_verifier(name: str | Callable[..., float]) -> Callable[..., float]:
    """A verifier by registry name ('exact', 'one_of', 'numeric', 'math') or a callable passed through."""
    if callable(name):
        return name
    try:
        return VERIFIERS[name]
    except KeyError:
        raise ValueError(f"verifier: unknown name {name!r}; expected one of {sorted(VERIFIERS)}") from None


def reference_answer_problem(verifier: str | Callable[..., float], answer: Any) -> str | None:
    """Why `answer` cannot be a reference answer for `verifier`, or None when it can."""
    if _gold(answer) is None:
        return "missing"
    if get_verifier(verifier) is numeric_match and parse_number(str(answer)) is None:
        return f"{str(answer)[:40]!r} holds no number"
    return None


def check_reference_answers(verifier: str | Callable[..., float], answers: Sequence[Any], what: str) -> None:
    """Raise one ValueError, starting with `what` (e.g. the file), naming the rows whose answers
    `verifier` cannot check and the fix; do nothing when every answer is usable."""
    bad = [(i, why) for i, a in enumerate(answers) if (why := reference_answer_problem(verifier, a)) is not None]
    if bad:
        name = verifier if isinstance(verifier, str) else getattr(verifier, "__name__", "the")
        rows = ", ".join(f"row {i} ({why})" for i, why in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        fix = ("fix those answers, or pick the exact or math verifier (--verifier exact) for non-numeric answers"
               if get_verifier(verifier) is numeric_match else "give every row a reference answer")
        raise ValueError(f"{what}: {len(bad)} of {len(answers)} reference answers cannot be checked by the "
                         f"{name} verifier: {rows}; {fix}")


def verifier_reward(verifier: str | Callable[..., float] = "numeric", answer_column: str = "answer",
                    verifier_column: str | None = None):
    """A TRL-style reward function `f(prompts, completions, **columns) -> list[float]`.

    The dataset's `answer_column` reaches it as a keyword argument, as TRL passes
    extra dataset columns to reward functions. With `verifier_column`, a row whose column
    names a verifier is checked by that one (a mixed set whose general rows need another
    checker than the target's); rows without it, or a dataset without the column, use `verifier`.
    """
    check = get_verifier(verifier)

    def reward(prompts: list, completions: list, **columns: Any) -> list[float]:
        if answer_column not in columns:
            raise ValueError(
                f"{answer_column!r}: the dataset has no such column (got {sorted(columns)}); "
                "set answer_column to the column that holds the reference answers"
            )
        names = columns.get(verifier_column) if verifier_column else None
        checks = [get_verifier(n) if n else check for n in names] if names is not None else [check] * len(completions)
        return [f(c, a) for f, c, a in zip(checks, completions, columns[answer_column])]

    reward.__name__ = f"{getattr(check, '__name__', 'verifier')}_reward"
    return reward
