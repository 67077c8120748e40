"""The toy world explore: search families, the reasoning-gym adapter and the try/check counter."""

from __future__ import annotations

import json
import random

import pytest

from heal_hf.core.verifiers import get_verifier
from heal_hf.toy import explore, gym, tasks
from heal_hf.toy.tiny import char_tokenizer

EXPLORE = tasks.world_families("explore")
GYM = ("gym_countdown", "gym_equation")


def test_the_explore_world_and_v6_unchanged():
    assert tasks.world_families("explore", tasks.TARGET) == ("gym_countdown", "gym_equation", "pair_sum")
    assert tasks.world_families("explore", tasks.GENERAL) == ("addition", "multiplication", "missing_addend",
                                                              "missing_subtrahend", "missing_operator", "check", "pair_sums",
                                                              "missing_term")
    # v6 (the bundled reasoner's world) keeps its families, in its order.
    assert tasks.GENERAL_FAMILIES == ("addition", "multiplication", "word_problem", "sequence")
    assert tasks.TARGET_FAMILIES == ("sort_digits", "reverse_word", "letter_shift", "digit_sum", "countdown", "weekday")
    assert tasks.generate("countdown", 2, seed=7)[0]["response"] == tasks.generate("countdown", 2, seed=7)[0]["response"]
    with pytest.raises(ValueError, match="unknown toy world"):
        tasks.world_families("v9")


@pytest.mark.parametrize("name", EXPLORE)
def test_worked_solutions_are_right_by_their_own_verifier_and_fit_the_budget(name):
    family, tokenizer = tasks.get_family(name), char_tokenizer()
    rows = family.generate(60, split="train", seed=1)
    assert len({r["prompt"] for r in rows}) == 60
    for row in rows:
        ids = tokenizer(row["response"], add_special_tokens=False)["input_ids"]
        assert len(ids) + 1 <= explore.SOLUTION_BUDGET < explore.COMPLETION_BUDGET, row["response"]  # + end-of-text
        assert family.verify(row["response"], row["answer"]) == 1.0, row
        direct = explore.direct_response(row["response"])  # H10-H14: the accepted candidate, always right
        assert family.verify(direct, row["answer"]) == 1.0 and explore.try_check(direct).tries == 0
        if name != "check" and explore.checked_steps(row["response"]):  # H10: the accepted candidate, not worked out
            working, goal, _ = explore.checked_steps(row["response"])[-1]
            assert direct == f" guess {working.split('=')[0]} for {goal}. Answer: {row['response'].rsplit('Answer: ', 1)[-1]}"
            assert "=" not in direct.split(". Answer:")[0]
            assert explore.try_check(direct).steps == 2 and explore.try_check(direct).share == 0.0
        assert family.verify(" Answer: 0", row["answer"]) == 0.0
        assert family.verify("no answer at all", row["answer"]) == 0.0


@pytest.mark.parametrize("name", ("gym_equation", "pair_sum", "gym_countdown"))
def test_a_direct_answer_commits_to_the_searchs_first_try(name):
    # H15: a first try without its check, right only when that try was (about half the searches).
    family = tasks.get_family(name)
    rows = family.generate(300, split="train", seed=4)
    right = 0
    for row in rows:
        tries = explore.checked_steps(row["response"])
        assert family.tried_answer(tries[-1][0]) == row["response"].rsplit("Answer: ", 1)[-1]  # the accepted try's answer
        direct = explore.direct_response(row["response"], family.tried_answer)
        first, goal, accepted = tries[0]
        assert direct == f" guess {first.split('=')[0]} for {goal}. Answer: {family.tried_answer(first)}"
        assert family.verify(direct, row["answer"]) == float(accepted) and explore.try_check(direct).tries == 0
        right += accepted
    assert 0.35 <= right / len(rows) <= 0.65


@pytest.mark.parametrize("name", ("missing_addend", "missing_subtrahend", "missing_operator", "gym_equation", "pair_sum",
                                  "gym_countdown", "pair_sums", "missing_term"))
def test_search_families_are_worked_by_try_check_revise(name):
    rows = tasks.generate(name, 200, seed=2)
    counts = [explore.try_check(r["response"]) for r in rows]
    assert all(c.tries >= 1 and c.tries == c.rejected + 1 for c in counts)  # wrong tries, then the right one
    assert all(c.miscomputed == 0 for c in counts)  # every check in a worked solution is true
    assert all(r["response"].split(". Answer:")[0].endswith(" yes") for r in rows)
    # The first try is right in about half of the searches (H4's noisy nearest-first order), and every drawn try
    # fits the budget (H9): a seventh to a third of the searches in every family try three times.
    assert 50 < sum(c.revisions > 0 for c in counts) < 150
    assert 20 < sum(c.tries == 3 for c in counts) < 75
    assert all(explore.try_check(r["response"]).tries == 0 for r in tasks.generate("addition", 50, seed=2))


@pytest.mark.parametrize("name", EXPLORE)
def test_explore_generators_are_seeded_and_split_disjoint(name):
    drawn = {split: {r["prompt"] for seed in (0, 1) for r in tasks.generate(name, 60, split, seed)}
             for split in tasks.SPLITS}
    assert not drawn["train"] & drawn["validation"] and not drawn["train"] & drawn["test"]
    assert not drawn["validation"] & drawn["test"]
    for split, prompts in drawn.items():
        assert {tasks.problem_split(p) for p in prompts} == {split}
    assert tasks.generate(name, 5, seed=7) == tasks.generate(name, 5, seed=7)
    assert tasks.generate(name, 5, seed=7) != tasks.generate(name, 5, seed=8)


def test_a_missing_operator_is_the_only_one_that_makes_the_value():
    for row in tasks.generate("missing_operator", 300, seed=3):
        question = row["prompt"].removeprefix("Q: ").removesuffix("\nA:")
        expression, value = question.rsplit("=", 1)
        makes = [op for op in "+-*" if gym.value(expression.replace("?", op)) == int(value)]
        assert makes == [row["answer"]], row


def test_pair_sums_has_several_right_pairs_and_any_of_them_is_right():
    family, answered = tasks.get_family("pair_sums"), set()
    for row in tasks.generate("pair_sums", 300, seed=5):
        question = row["prompt"].removeprefix("Q: any two of ").removesuffix("\nA:")
        digits, target = [int(d) for d in question.split(" that add to ")[0].split()], int(question.rsplit(" ", 1)[1])
        right = {f"{a} {b}" for i, a in enumerate(digits) for b in digits[i + 1:] if a + b == target}
        assert len(digits) == len(set(digits)) == 6 and len(right) >= 3 and set(row["answer"].split("|")) == right
        assert all(family.verify(f" Answer: {pair}", row["answer"]) == 1.0 for pair in right)  # every right pair
        wrong = next(f"{a} {b}" for i, a in enumerate(digits) for b in digits[i + 1:] if a + b != target)
        assert family.verify(f" Answer: {wrong}", row["answer"]) == 0.0
        answered.add(row["response"].rsplit("Answer: ", 1)[1] == sorted(right)[0])
    assert answered == {True, False}  # the worked search does not always reach the same right pair


def test_enough_distinct_problems_for_the_1k_arm():
    for name in tasks.world_families("explore", tasks.TARGET):
        assert len(tasks.generate(name, 1000, "train", seed=0)) == 1000


def test_gym_problems_are_reasoning_gyms_own_and_stable():
    row = tasks.generate("gym_countdown", 1, split="test", seed=0)[0]
    ref = json.loads(row["answer"])
    assert ref["dataset"] == "countdown" and ref["config"] == gym.COUNTDOWN_CONFIG
    numbers, target = ref["entry"]["metadata"]["numbers"], ref["entry"]["metadata"]["target"]
    assert row["prompt"] == f"Q: from {' '.join(map(str, numbers))} make {target}\nA:"
    # The entry is exactly what reasoning-gym makes at its index (a version that changes it is a new world).
    index = ref["entry"]["metadata"]["source_index"]
    assert json.loads(json.dumps(gym.dataset("countdown", gym.COUNTDOWN_CONFIG)[index])) == ref["entry"]
    eq = json.loads(tasks.generate("gym_equation", 1, split="test", seed=0)[0]["answer"])
    assert eq["dataset"] == "simple_equations" and eq["entry"]["answer"].isdigit()


def test_the_gym_verifier_is_reasoning_gyms_judgement():
    verify = get_verifier("reasoning_gym")
    assert verify is gym.reasoning_gym_match
    ref = gym.reference("countdown", gym.COUNTDOWN_CONFIG,
                        {"question": "q", "answer": "3*8-5", "metadata": {"numbers": [3, 5, 8], "target": 19}})
    assert verify(" 3*8+5=29 no, 3*8-5=19 yes. Answer: 3*8-5", ref) == 1.0
    assert verify(" Answer: 8*3-5", ref) == 1.0  # any expression reasoning-gym accepts, not one string
    assert verify(" Answer: 3*8+5", ref) == 0.0  # wrong value: reasoning-gym's partial credit is not correctness
    assert gym.score(" Answer: 3*8+5", ref) == pytest.approx(0.05)
    assert verify(" Answer: 19", ref) == 0.0  # not using the numbers
    for malformed in ("", " Answer: ", " Answer: 3*(8-", " Answer: __import__('os')", None, 7, [{"content": 3}]):
        assert verify(malformed, ref) == 0.0
    for bad_ref in (None, "", "19", "{}", json.dumps({"dataset": "no_such_gym", "config": {}, "entry": {}})):
        assert verify(" Answer: 3*8-5", bad_ref) == 0.0
    eq = gym.reference("simple_equations", gym.EQUATION_CONFIG,
                       {"question": "q", "answer": "8", "metadata": {"equation": "3*x + 5 = 29"}})
    assert verify(" Answer: 8", eq) == 1.0 and verify(" Answer: 18", eq) == 0.0 and verify(" Answer: 7", eq) == 0.0


def test_try_check_counts_hand_made_rollouts():
    c = explore.try_check(" try 7: 7*3=21 no; try 8: 8*3=24 yes. Answer: 8")
    assert (c.steps, c.tries, c.rejected, c.revisions) == (3, 2, 1, 1) and c.share == pytest.approx(2 / 3)
    c = explore.try_check(" 6*8=48 no, 5*8=40 no, 7*8=56 yes. Answer: 7")
    assert (c.steps, c.tries, c.rejected, c.revisions) == (4, 3, 2, 2) and c.share == pytest.approx(0.75)
    assert explore.try_check(" Answer: 7").share == 0.0  # a direct guess
    assert explore.try_check(" 5+7=12, 1+4+8=13. Answer: 132") == explore.TryCheckCount(3, 0, 0, 0)
    # A try that is accepted then wrongly followed by more work still counts its tries.
    c = explore.try_check(" 3*7+5=26 yes, 3*8+5=29 no")
    assert (c.steps, c.tries, c.rejected, c.revisions) == (2, 2, 1, 0) and c.share == 1.0
    assert explore.try_check("").share == 0.0 and explore.try_check(None).steps == 0
    # A faked check: the working is false arithmetic (the target copied into the accepted step).
    assert explore.try_check(" 280+1=281 no, 280+2=287 yes. Answer: 2").miscomputed == 1
    assert explore.try_check(" 2-3*2=-4 no, (2+2)*3=12 yes. Answer: (2+2)*3").miscomputed == 0
    assert explore.try_check(" 9**99999=1 no, 1/0=1 no, x=3 yes").miscomputed == 0  # not checkable arithmetic
    assert explore.try_check(" Notes: nothing. Answer: yes").tries == 0  # an answer "yes" is no verdict step
    assert explore.try_check_share([" Answer: 7", " 6*8=48 no, 7*8=56 yes. Answer: 7"]) == pytest.approx(1 / 3)
    assert explore.try_check_share([]) != explore.try_check_share([])  # nan for no rollouts


def test_tries_restate_their_goal_and_the_counters_read_either_form():
    # Every worked try compares the value it wrote with its problem's goal, the question's last number.
    for name in ("missing_addend", "missing_subtrahend", "missing_operator", "check", "gym_countdown", "gym_equation", "pair_sum",
                 "pair_sums"):
        for row in tasks.generate(name, 40, seed=3):
            goal = int(row["prompt"].split("\n")[0].rstrip("?").replace("=", " ").split()[-1])
            steps = explore.checked_steps(row["response"])
            assert steps and all(restated == goal for _, restated, _ in steps), row
            assert [ok for *_, ok in steps] == [False] * (len(steps) - 1) + [name != "check" or row["answer"] == "yes"]
    assert explore.checked_steps(" 21+6=27 vs 30 no, 21+9=30 vs 30 yes. Answer: 9") == [("21+6=27", 30, False), ("21+9=30", 30, True)]
    assert explore.checked_steps(" 21+6=27 no. Answer: 9") == [("21+6=27", None, False)]  # a try without its goal
    with_goal = explore.try_check(" 6*8=48 vs 56 no, 5*8=40 vs 56 no, 7*8=56 vs 56 yes. Answer: 7")
    assert with_goal == explore.try_check(" 6*8=48 no, 5*8=40 no, 7*8=56 yes. Answer: 7")
    assert explore.try_check(" 280+2=287 vs 287 yes. Answer: 2").miscomputed == 1  # the working is read without the goal
    assert explore.try_check(" 280+7=287 vs 280 no. Answer: 2").miscomputed == 0  # a wrong goal copy is no faked check


def test_a_worked_search_tries_near_misses_first_and_stops_at_the_first_right_candidate():
    import random
    import statistics

    rng = random.Random(0)
    places, gaps, random_gaps = [], [], []
    for _ in range(1000):
        answer, goal = rng.randint(1, 9), rng.randint(20, 80)
        value = lambda t, answer=answer, goal=goal: goal + t - answer  # noqa: E731 - a missing addend's values
        tried = explore.tried_until_right(rng, range(1, 10), value, goal)
        assert tried[-1] == answer and answer not in tried[:-1] and len(set(tried)) == len(tried) <= explore.MOST_TRIES
        places.append(len(tried))
        gaps += [abs(t - answer) for t in tried[:-1]]
        random_gaps += [abs(t - answer) for t in rng.sample([t for t in range(1, 10) if t != answer], len(tried) - 1)]
    share = [places.count(k) / len(places) for k in (1, 2, 3)]
    assert 0.44 < share[0] < 0.58 and 0.25 < share[1] < 0.36 and 0.14 < share[2] < 0.25, share  # not always last
    assert statistics.mean(gaps) < statistics.mean(random_gaps) - 1  # near misses the solver thought likely, not decoys
    # Candidates of one value count once; an order that cannot reach the answer in `most` tries puts it last.
    assert len(explore.guessed_order(rng, ["1+2", "2+1", "3*1", "5"], lambda e: eval(e), 5)) == 2
    assert explore.tried_until_right(rng, list(range(1, 10)), lambda t: t, 9, most=1) == [9]


def test_checks_are_chains_of_single_operations_and_a_false_link_is_a_faked_check():
    assert explore.reduced("2*8+9") == "2*8+9=16+9=25" and explore.reduced("38+5") == "38+5=43"
    assert explore.reduced("(2+3)*2") == "(2+3)*2=5*2=10" and explore.reduced("8-6*5") == "8-6*5=8-30=-22"
    assert explore.reduced("1-7-2") == "1-7-2=-6-2=-8"  # left to right without products
    for expression in ("2-3*2", "(4-6)*3", "9*6-9", "7+2*8", "3*4*5"):
        chain = explore.reduced(expression)
        assert all(eval(link) == eval(expression) for link in chain.split("="))  # every link holds the value
        assert explore.try_check(f" {chain} yes. Answer: 1").miscomputed == 0
    assert explore.try_check(" 2*8+9=17+9=26 no. Answer: 7").miscomputed == 1  # 2*8 is not 17
    assert explore.try_check(" 2*8+9=16+9=26 no. Answer: 7").miscomputed == 1  # 16+9 is not 26
    assert explore.try_check(" 2*8+9=16+9=25 no. Answer: 7").miscomputed == 0


def test_check_problems_are_balanced_near_misses_judged_by_the_working():
    rows = tasks.generate("check", 400, seed=4)
    verdicts = [r["answer"] for r in rows]
    assert set(verdicts) == {"yes", "no"} and 160 <= verdicts.count("yes") <= 240  # half of each
    three_operands = 0
    for row in rows:
        question = row["prompt"].removeprefix("Q: ").split("?")[0]
        expression, claimed = question.rsplit("=", 1)
        value = gym.value(expression)
        assert (row["answer"] == "yes") == (value == int(claimed))
        assert int(claimed) != value or row["answer"] == "yes"
        assert abs(int(claimed) - value) <= 9  # a wrong claim is a near miss
        assert row["response"] == f" {explore.reduced(expression)} vs {claimed} {row['answer']}. Answer: {row['answer']}"
        count = explore.try_check(row["response"])
        assert (count.tries, count.miscomputed) == (1, 0)
        three_operands += len([c for c in expression if c in "+-*"]) == 2
    assert 160 <= three_operands <= 240


def test_golden_problems_catch_a_generator_that_changed():
    # A reasoning-gym (or toy) release that changes these makes a different world: pin it again knowingly.
    golden = {
        "gym_countdown": ("Q: from 2 6 1 make 5\nA:", " 6+1-2=7-2=5 vs 5 yes. Answer: 6+1-2"),  # + and - only from H30
        "gym_equation": ("Q: solve 6*b - 2 = 52\nA:", " 6*6-2=36-2=34 vs 52 no, 6*9-2=54-2=52 vs 52 yes. Answer: 9"),
        "pair_sum": ("Q: two of 8 9 2 7 make 10\nA:", " 2+7=9 vs 10 no, 8+2=10 vs 10 yes. Answer: 8 2"),
        "missing_addend": ("Q: 75+?=80\nA:", " 75+6=81 vs 80 no, 75+5=80 vs 80 yes. Answer: 5"),
        "missing_operator": ("Q: 6-9?5=-8\nA:", " 6-9*5=6-45=-39 vs -8 no, 6-9+5=-3+5=2 vs -8 no, 6-9-5=-3-5=-8 vs -8 yes. "
                             "Answer: -"),
        "check": ("Q: 61+1=65?\nA:", " 61+1=62 vs 65 no. Answer: no"),
        "pair_sums": ("Q: any two of 7 4 2 1 8 5 that add to 9\nA:", " 4+5=9 vs 9 yes. Answer: 4 5"),
    }
    for name, (prompt, response) in golden.items():
        row = tasks.generate(name, 1, split="test", seed=0)[0]
        assert (row["prompt"], row["response"]) == (prompt, response)


def _training_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "datasets_scripts" / "train_toy_reasoner.py"
    spec = importlib.util.spec_from_file_location("train_toy_reasoner", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reasoners_mix_has_the_behaviour_in_general_and_less_in_the_target():
    script = _training_script()
    rows = script.training_rows(40, {"gym_countdown": 40, "gym_equation": 40, "pair_sum": 40}, 0, "explore", 0.25)
    assert {r["family"] for r in rows} == set(EXPLORE) and all(explore.fits(r["response"]) for r in rows)
    share = {d: explore.try_check_share(r["response"] for r in rows if r["domain"] == d) for d in (tasks.GENERAL, tasks.TARGET)}
    assert share[tasks.GENERAL] > 2 * share[tasks.TARGET] > 0
    for r in rows:  # search problems: worked by try/check (right), or (target only) a direct first try (H15)
        family = tasks.get_family(r["family"])
        assert family.verify(r["response"], r["answer"]) == 1.0 or r["response"].startswith(" guess ")
        if r["family"] in ("missing_addend", "missing_subtrahend"):
            assert explore.try_check(r["response"]).tries >= 1
    direct = [r for r in rows if r["domain"] == tasks.TARGET and explore.try_check(r["response"]).tries == 0]
    # H10: a direct answer is a guess not worked out, one step without a verdict, then the answer.
    assert 60 <= len(direct) <= 110 and all(explore.try_check(r["response"]).steps == 2 and r["response"].startswith(" guess ") and "=" not in r["response"] for r in direct)
    wrong = sum(tasks.get_family(r["family"]).verify(r["response"], r["answer"]) == 0.0 for r in direct)
    assert 0.25 * len(direct) <= wrong <= 0.75 * len(direct)
    targets = {"gym_countdown": 40, "gym_equation": 40, "pair_sum": 40}
    accepted = script.training_rows(40, targets, 0, "explore", 0.25, direct_first_try=0.0)  # H10-H14's mix
    assert all(tasks.get_family(r["family"]).verify(r["response"], r["answer"]) == 1.0 for r in accepted)
    # H16: half the direct answers commit to the first try, the rest to the accepted candidate; nothing else moves.
    half = script.training_rows(40, targets, 0, "explore", 0.25, direct_first_try=0.5)
    assert [r["prompt"] for r in half] == [r["prompt"] for r in rows] == [r["prompt"] for r in accepted]
    differ = [(h, r) for h, r, a in zip(half, rows, accepted) if r["response"] != a["response"]]
    assert all(h["response"] in (r["response"], a["response"]) for h, r, a in zip(half, rows, accepted))
    assert 0.25 <= sum(h["response"] == r["response"] for h, r in differ) / len(differ) <= 0.75
    # H17: one probability per family, `P` for all then `NAME=P` overrides.
    per_family = script.parse_direct_first_try(["0.5", "pair_sum=0.75"])
    assert per_family == {"gym_countdown": 0.5, "gym_equation": 0.5, "pair_sum": 0.75}
    assert script.training_rows(40, targets, 0, "explore", 0.25, direct_first_try=dict.fromkeys(targets, 0.5)) == half
    for bad in (["pair_sums=0.5"], ["1.5"], ["pair_sum=x"]):
        with pytest.raises(SystemExit, match="--direct-first-try: expected P or NAME=P"):
            script.parse_direct_first_try(bad)
    # H20: the try share per family; a uniform dict is the single share, and one family's share moves only its rows.
    assert script.parse_target_try_share(["pair_sum=0.5"]) == {"gym_countdown": 0.2, "gym_equation": 0.2, "pair_sum": 0.5}
    assert script.training_rows(40, targets, 0, "explore", dict.fromkeys(targets, 0.25)) == rows
    more = script.training_rows(40, targets, 0, "explore", {**dict.fromkeys(targets, 0.25), "pair_sum": 1.0})
    worked = lambda rs, f: sum(r["family"] == f and explore.try_check(r["response"]).tries > 0 for r in rs)  # noqa: E731
    assert worked(more, "pair_sum") == 40 > worked(rows, "pair_sum")
    assert [r for r in more if r["family"] != "pair_sum"] == [r for r in rows if r["family"] != "pair_sum"]
    with pytest.raises(SystemExit, match="--target-try-share: expected P or NAME=P"):
        script.parse_target_try_share(["pair_sum=2"])
    # World v6's mix is what it was before the explore world (its hash, taken from the v6 code).
    import hashlib

    v6 = script.training_rows(30, {k: 10 for k in script.TARGET_EXAMPLES}, 3)
    assert hashlib.sha256(json.dumps(v6).encode()).hexdigest() == "c9aea709ffda6447f40008518e95b1afe614e765ff93d08f37e0d2e1cab9e07f"


def test_general_examples_set_one_familys_count_and_bad_names_are_refused():
    script = _training_script()
    targets = {"gym_countdown": 0, "gym_equation": 0, "pair_sum": 0}
    rows = script.training_rows(12, targets, 0, "explore", 0.2, {"addition": 3, "check": 30})
    counts = {name: sum(r["family"] == name for r in rows) for name in {r["family"] for r in rows}}
    assert counts["addition"] == 3 and counts["check"] == 30 and counts["multiplication"] == 12
    assert script.parse_general_examples(["check=7500"], "explore") == {"check": 7500}
    with pytest.raises(SystemExit, match="--general-examples: expected NAME=COUNT"):
        script.parse_general_examples(["gym_countdown=5"], "explore")


def test_the_completion_budget_holds_one_more_try_than_any_worked_solution(monkeypatch):
    # H3's rule: a model whose third try fails searches on, so samples and RL completions get the longest worked
    # solution with all its drawn tries kept, plus the longest try once more, rounded up to a multiple of 16.
    monkeypatch.setattr(explore, "SOLUTION_BUDGET", 10**6)
    rows = [r for name in EXPLORE for r in tasks.generate(name, 400, seed=0)]
    longest = max(len(r["response"]) + 1 for r in rows)
    longest_try = max(len(explore.checked(w, g, False)) + len(", ") for r in rows for w, g, _ in explore.checked_steps(r["response"]))
    assert (longest, longest_try) == (92, 27)  # H3's worked solutions: (94, 27); H4-H11 (94, 26); H12 (missing_term)
    # has tries of 27 again; H30 (countdown over + and -) has no 94-token search left: the same 128
    assert explore.COMPLETION_BUDGET == -(-(longest + longest_try) // 16) * 16 == 128


def test_micro_batches_give_the_whole_batchs_gradient():
    # --micro-batches: the batch's rows in parts of similar length, weighted so that the gradient is the batch's.
    import torch

    from heal_hf.toy.tiny import tiny_causal_lm

    script = _training_script()
    rows = script.training_rows(4, {"gym_countdown": 4, "gym_equation": 4, "pair_sum": 4}, 0, "explore", 0.5)
    model, tokenizer = tiny_causal_lm(seed=0, hidden_size=32, num_layers=2, num_heads=2, max_positions=256)
    ids, starts = script.encode(rows, tokenizer)
    lengths = [len(seq) for seq in ids]
    pick = random.Random(0).sample(range(len(ids)), 24)
    assert script.micro_batches(pick, lengths, starts, 1) == [(pick, 1.0)]  # off: the batch as it came
    parts = script.micro_batches(pick, lengths, starts, 4)
    assert sorted(i for run, _ in parts for i in run) == sorted(pick) and abs(sum(w for _, w in parts) - 1) < 1e-12
    assert [len(run) for run, _ in parts] == [6, 6, 6, 6] and len({lengths[i] for i in parts[0][0]}) < len(set(lengths))

    def gradient(split):
        model.zero_grad()
        for run, weight in split:
            batch = script.batch_tensors([ids[i] for i in run], [starts[i] for i in run], tokenizer.pad_token_id)
            (model(**batch).loss * weight).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    whole = gradient([(pick, 1.0)])
    assert torch.allclose(gradient(parts), whole, rtol=1e-4, atol=1e-6)
    wrong = [(run, 1 / len(parts)) for run, _ in parts]  # equal weights: not the batch's token mean
    assert not torch.allclose(gradient(wrong), whole, rtol=1e-4, atol=1e-6)


def test_target_draws_repeat_a_small_familys_problems_with_other_searches():
    # H31: gym_countdown over + and - has 1,487 train problems; --target-draws NAME=K draws its count as K draws.
    script = _training_script()
    assert script.parse_target_draws(["gym_countdown=4"]) == {"gym_countdown": 4}
    for bad in (["gym_countdown=0"], ["addition=2"], ["gym_countdown=x"]):
        with pytest.raises(SystemExit, match="--target-draws"):
            script.parse_target_draws(bad)
    targets = {"gym_countdown": 10, "gym_equation": 0, "pair_sum": 0}
    one = script.training_rows(0, targets, 0, "explore", 1.0)
    assert script.training_rows(0, targets, 0, "explore", 1.0, target_draws={"gym_countdown": 1}) == one  # as before H31
    three = [r for r in script.training_rows(0, targets, 0, "explore", 1.0, target_draws={"gym_countdown": 3})
             if r["family"] == "gym_countdown"]
    assert len(three) == 10
    first = tasks.generate("gym_countdown", 4, split="train", seed=10_000)  # draw 0 is the one-draw mix's first rows
    assert {r["prompt"] for r in first} <= {r["prompt"] for r in three}


@pytest.mark.parametrize("name", ("gym_countdown", "pair_sum"))
def test_a_search_drawn_again_uninformed_keeps_its_problems_and_forgets_the_answer(name):
    # H36: the same problems, searched again in an order that knows nothing of the goal; still right and within budget.
    family = tasks.get_family(name)
    informed = family.generate(400, split="train", seed=5)
    again = family.generate(400, split="train", seed=5, noise=explore.UNINFORMED_NOISE)
    assert [r["prompt"] for r in again] == [r["prompt"] for r in informed]
    assert [r["answer"] for r in again] == [r["answer"] for r in informed]
    assert again == family.generate(400, split="train", seed=5, noise=explore.UNINFORMED_NOISE)  # seeded
    for row in again:
        tries = explore.checked_steps(row["response"])
        assert [accepted for _, _, accepted in tries] == [False] * (len(tries) - 1) + [True]
        assert len(tries) <= explore.MOST_TRIES and explore.fits(row["response"])
        assert family.verify(row["response"], row["answer"]) == 1.0
    first_right = lambda rows: sum(explore.checked_steps(r["response"])[0][2] for r in rows) / len(rows)  # noqa: E731
    assert first_right(informed) > 0.42 and first_right(again) < 0.38  # near misses first (about half), against any order
    with pytest.raises(ValueError, match="noise"):
        tasks.generate("gym_equation", 3, noise=explore.UNINFORMED_NOISE)  # no candidates to draw again from


def test_candidates_are_read_from_the_question_and_an_uninformed_guess_has_no_mode():
    workings = gym.countdown_candidates("Q: from 2 6 1 make 5\nA:")
    assert "6+1-2=7-2=5" in workings[5] and "6-2+1=4+1=5" in workings[5]
    assert set(workings) == {9, 7, 5, 3, -3, -5, -7} and all(gym.value(w.split("=")[0]) == v for v, ws in workings.items() for w in ws)
    pairs = tasks.get_family("pair_sum").candidates("Q: two of 5 4 7 1 make 8\nA:")
    assert pairs[8] == ["7+1=8"] and sorted(pairs) == [5, 6, 8, 9, 11, 12]
    for bad, family in (("Q: solve 3*x + 2 = 11\nA:", "gym_countdown"), ("Q: from 2 6 1 make 5\nA:", "pair_sum")):
        with pytest.raises(ValueError, match="prompt"):
            tasks.get_family(family).candidates(bad)
    rng = random.Random(0)
    drawn = [explore.uninformed_guess(rng, workings) for _ in range(3000)]
    values = [gym.value(w.split("=")[0]) for w in drawn]
    assert set(values) == {9, 7, 5, 3}  # positive values only, every one of them
    assert all(abs(values.count(v) / len(values) - 0.25) < 0.03 for v in (9, 7, 5, 3))  # uniform: the answer is no mode
    with pytest.raises(ValueError, match="positive"):
        explore.uninformed_guess(rng, {-3: ["1-4=-3"]})


def test_a_direct_answer_can_name_a_guess_drawn_apart_from_the_search():
    response = " 6+1-2=7-2=5 vs 5 yes. Answer: 6+1-2"
    guessed = explore.direct_response(response, gym.countdown_tried, "2+6+1=8+1=9")
    assert guessed == " guess 2+6+1 for 5. Answer: 2+6+1" and explore.try_check(guessed).tries == 0
    with pytest.raises(ValueError, match="tried_answer"):
        explore.direct_response(response, None, "2+6+1=8+1=9")


def test_uninformed_families_change_only_their_own_rows():
    script = _training_script()
    first_try = script.parse_direct_first_try(["1.0", "gym_equation=0.75"])
    assert script.parse_uninformed(["pair_sum", "gym_countdown", "pair_sum"], "explore", first_try) == ["pair_sum", "gym_countdown"]
    for bad, match in ((["gym_equation"], "not a target search"), (["addition"], "not a target search"),
                       (["gym_countdown"], "direct-first-try")):
        with pytest.raises(SystemExit, match=match):
            script.parse_uninformed(bad, "explore", script.parse_direct_first_try(["gym_countdown=0.5"]) if match ==
                                    "direct-first-try" else first_try)
    targets = {"gym_countdown": 300, "gym_equation": 30, "pair_sum": 300}
    informed = script.training_rows(5, targets, 2, "explore", 0.1, None, first_try)
    uninformed = script.training_rows(5, targets, 2, "explore", 0.1, None, first_try, None, ["gym_countdown", "pair_sum"])
    assert script.training_rows(5, targets, 2, "explore", 0.1, None, first_try, None, []) == informed  # as before H36
    assert len(uninformed) == len(informed)
    assert [r for r in uninformed if r["family"] not in targets or r["family"] == "gym_equation"] == \
        [r for r in informed if r["family"] not in targets or r["family"] == "gym_equation"]
    for name in ("gym_countdown", "pair_sum"):
        family = tasks.get_family(name)
        rows = [r for r in uninformed if r["family"] == name]
        assert sorted(r["prompt"] for r in rows) == sorted(r["prompt"] for r in informed if r["family"] == name)
        direct = [r for r in rows if explore.try_check(r["response"]).tries == 0]
        right = sum(family.verify(r["response"], r["answer"]) for r in direct) / len(direct)
        informed_right = sum(family.verify(r["response"], r["answer"]) for r in informed
                             if r["family"] == name and explore.try_check(r["response"]).tries == 0) / len(direct)
        assert right < 0.36 < informed_right  # a uniform guess (countdown about 0.3, pair_sum 0.17) against a first try


@pytest.mark.slow  # about 20 s: the refusal comes after 20,000 draws that find no new problem
def test_a_target_draw_larger_than_its_split_is_refused_with_the_fix():
    # gym_countdown's train split holds 1,487 distinct problems (H40's first command asked for 1,600 in one draw).
    script = _training_script()
    with pytest.raises(SystemExit, match=r"--target-examples gym_countdown=1600: .*fewer than 1600 distinct problems "
                                         r".*--target-draws gym_countdown=K"):
        script.training_rows(0, {"gym_countdown": 1600, "gym_equation": 0, "pair_sum": 0}, 0, "explore", 1.0)
