"""How right a world-explore reasoner's checks are: arithmetic, verdicts and answers, per family.

    nice -n 15 python benchmarks/results/world-explore/verdicts.py MODEL_DIR [--out NAME]

On the same samples as `measure_base.py` (its `test_samples`: each family's test split, 200
problems x 8 at T = 1, seed 0, <= 48 tokens; general families 150), every try/check step (`working vs goal yes|no`, or `working yes|no` before H1) is read
against the problem's goal (the number the candidate must make: the value after `=` in the
question, or the target of `make T from ...`):
- arithmetic right: the working's written value is the true value of its expression;
- goal restated right (H1 on): the goal a try restates is the problem's goal; and the verdict consistent
  with the two numbers the try compares (`yes` exactly when the written value is the restated goal);
- verdict consistent: `yes` exactly when the *written* value is the goal (the comparison step);
- verdict right: `yes` exactly when the *true* value is the goal (what the check is for);
  false yes (a wrong candidate accepted) and false no (the right one rejected) split it;
- the answer is the accepted candidate: a sample whose last try says yes answers with that try's
  candidate (its expression's numbers and operator appear in the working);
and, among the samples that try, the pass rate of those whose every verdict is right against
those with a wrong one. Writes NAME.json and NAME.md beside this script.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

from measure_base import load, test_samples  # this folder's: the same test samples, drawn the same way

from heal_hf.toy import explore, tasks

HERE = Path(__file__).parent
_WRITTEN = re.compile(r"=\s*(-?\d+)$")
_INTEGERS = re.compile(r"-?\d+")


def goal(prompt: str) -> int | None:
    """The number a candidate must make: a goal stated before its numbers (`make 1 from 2 2 3`, G1-G5's countdown;
    `make 94 with 93+1?`, G5's check), else the question's last number."""
    question = prompt.removeprefix("Q:").split("\n")[0]
    made = re.search(r"make (-?\d+) (?:from|with) ", question)
    if made:
        return int(made.group(1))
    numbers = _INTEGERS.findall(question.split("=")[-1]) if "=" in question else _INTEGERS.findall(question)
    return int(numbers[-1]) if numbers else None


def tries(text: str) -> list[dict]:
    """Each try/check step of a completion whose working ends in a value: written value, true value, verdict."""
    out = []
    for working, restated, accepted in explore.checked_steps(text):
        written = _WRITTEN.search(working)
        if written:
            out.append({"working": working, "written": int(written.group(1)), "restated": restated,
                        "true": explore.arithmetic_value(working.split("=")[0]), "yes": accepted})
    return out


def answer_of(text: str) -> str:
    parts = re.split(r"answer\s*:", text, flags=re.IGNORECASE)
    return parts[-1].strip().rstrip(".").strip() if len(parts) > 1 else ""


def follows(answer: str, working: str) -> bool:
    """Whether the answer is the candidate a working tried: its expression (countdown), its operator
    (missing_operator), its digits (pair_sum: both) or its number (the searches, gym_equation)."""
    first = working.split("=")[0].replace(" ", "")
    if not answer:
        return False
    if answer in ("+", "-", "*"):
        return answer in first[1:]
    tokens = answer.split()
    return all(re.search(rf"(?<!\d){re.escape(t)}(?!\d)", first) for t in tokens) or answer.replace(" ", "") == first


def family_verdicts(model, tokenizer, name: str, problems: int, samples: int, seed: int) -> dict:
    family, prompts, answers, sampled = test_samples(model, tokenizer, name, problems, samples, seed)
    steps, goals, samples_out = [], [], []
    for prompt, texts, ref in zip(prompts, sampled.texts, answers):
        g = goal(prompt)
        for text in texts:
            ts = [dict(t, right_value=(t["true"] == g), written_goal=(t["written"] == g)) for t in tries(text) if t["true"] is not None]
            if not ts or g is None:
                continue
            steps += ts
            goals += [g] * len(ts)
            last = ts[-1]
            samples_out.append({"pass": family.verify(text, ref),
                                "all_right": all(t["yes"] == t["right_value"] for t in ts),
                                "ends_yes": last["yes"],
                                "answer_follows": last["yes"] and follows(answer_of(text), last["working"])})
    rate = lambda xs: statistics.mean(xs) if xs else None  # noqa: E731
    wrong_candidates = [t for t in steps if not t["right_value"]]
    right_candidates = [t for t in steps if t["right_value"]]
    return {
        "domain": family.domain, "tries": len(steps), "trying_samples": len(samples_out),
        "arithmetic_right": rate([float(t["written"] == t["true"]) for t in steps]),
        "goal_restated_right": rate([float(t["restated"] == g) for t, g in zip(steps, goals) if t["restated"] is not None]),
        "verdict_consistent": rate([float(t["yes"] == t["written_goal"]) for t in steps]),
        "verdict_consistent_with_restated": rate([float(t["yes"] == (t["written"] == t["restated"]))
                                                  for t in steps if t["restated"] is not None]),
        "verdict_right": rate([float(t["yes"] == t["right_value"]) for t in steps]),
        "false_yes": rate([float(t["yes"]) for t in wrong_candidates]),
        "false_no": rate([float(not t["yes"]) for t in right_candidates]),
        "right_candidate_share": rate([float(t["right_value"]) for t in steps]),
        "yes_when_written_not_goal": rate([float(t["yes"]) for t in steps if not t["written_goal"]]),
        "written_goal_when_value_wrong": rate([float(t["written_goal"]) for t in wrong_candidates]),
        "answer_follows_accepted": rate([float(s["answer_follows"]) for s in samples_out if s["ends_yes"]]),
        "pass_all_verdicts_right": rate([s["pass"] for s in samples_out if s["all_right"]]),
        "pass_some_verdict_wrong": rate([s["pass"] for s in samples_out if not s["all_right"]]),
        "samples_all_verdicts_right": rate([float(s["all_right"]) for s in samples_out]),
    }


COLUMNS = [("tries", "tries"), ("arithmetic_right", "arithmetic right"), ("goal_restated_right", "goal restated right"),
           ("verdict_consistent", "verdict consistent with written value"),
           ("verdict_consistent_with_restated", "verdict consistent with written vs restated"),
           ("verdict_right", "verdict right"), ("false_yes", "false yes (wrong candidate accepted)"),
           ("false_no", "false no (right one rejected)"), ("yes_when_written_not_goal", "yes though written value is not the goal"),
           ("written_goal_when_value_wrong", "wrong candidate written as the goal"),
           ("answer_follows_accepted", "answer = accepted candidate"), ("samples_all_verdicts_right", "trying samples with every verdict right"),
           ("pass_all_verdicts_right", "pass: every verdict right"), ("pass_some_verdict_wrong", "pass: a verdict wrong")]


def markdown(model_dir: str, numbers: dict, problems: int, samples: int) -> str:
    lines = [f"# Checks and verdicts of `{model_dir}`", "",
             f"Every try/check step of the test samples ({problems} problems x {samples} at T = 1, seed 0; general 150), "
             "read against the problem's goal (`verdicts.py`).", "",
             "| family | domain | " + " | ".join(label for _, label in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    fmt = lambda v: "-" if v is None else (str(v) if isinstance(v, int) else f"{v:.3f}")  # noqa: E731
    for name, r in numbers.items():
        lines.append(f"| {name} | {r['domain']} | " + " | ".join(fmt(r[key]) for key, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a world-explore reasoner folder")
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--out", default="verdicts", help="file stem written beside this script (default verdicts)")
    args = parser.parse_args(argv)
    model, tokenizer = load(args.model)
    numbers = {name: family_verdicts(model, tokenizer, name, args.problems, args.samples, 0)
               for name in tasks.world_families("explore") if name not in ("addition", "multiplication")}
    (HERE / f"{args.out}.json").write_text(json.dumps({"model": args.model, "problems": args.problems, "samples": args.samples,
                                                       "families": numbers}, indent=2) + "\n")
    text = markdown(args.model, numbers, args.problems, args.samples)
    (HERE / f"{args.out}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
