import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heal_hf.core.verifiers import (
    check_reference_answers,
    exact_match,
    extract_answer,
    get_verifier,
    math_match,
    numeric_match,
    one_of_match,
    parse_number,
    reference_answer_problem,
    verifier_reward,
)


@pytest.mark.parametrize("completion, answer, want", [
    ("step 1\nAnswer: Paris.", "paris", 1.0),
    ("step 1\nAnswer: Lyon", "paris", 0.0),
    ("#### yes", "Yes", 1.0),
    ("\\boxed{b}", "b", 1.0),
    ([{"role": "assistant", "content": "Answer: 7"}], 7, 1.0),
    ("", "x", 0.0),
])
def test_exact(completion, answer, want):
    assert exact_match(completion, answer) == want


@pytest.mark.parametrize("completion, answer, want", [
    (" 4+5=9 vs 9 yes. Answer: 4 5", "7 2|4 5|1 8", 1.0),
    ("Answer: 1  8.", "7 2|4 5|1 8", 1.0),  # exact's normalisation, per answer
    ("Answer: 5 4", "7 2|4 5|1 8", 0.0),
    ("Answer: 7 2|4 5", "7 2|4 5|1 8", 0.0),  # the whole list is no answer
    ("Answer: Paris", "paris", 1.0),  # one answer: exact
    ("Answer: ", "a|", 0.0),
    ("", None, 0.0),
])
def test_one_of(completion, answer, want):
    assert one_of_match(completion, answer) == want
    assert get_verifier("one_of") is one_of_match


@pytest.mark.parametrize("completion, answer, want", [
    ("so 1,234 apples\n#### 1,234", 1234, 1.0),
    ("Answer: 3/4", "0.75", 1.0),
    ("Answer: -2.5e1", "-25", 1.0),
    ("Answer: 12", "13", 0.0),
    ("Answer: twelve", "12", 0.0),
    ("Answer: 0.3334", "1/3", 0.0),
])
def test_numeric(completion, answer, want):
    assert numeric_match(completion, answer) == want
    assert numeric_match("Answer: 0.33333334", "1/3", rel_tol=1e-6) == 1.0


@pytest.mark.parametrize("completion, answer, want", [
    ("The result is \\boxed{\\frac{1}{2}}", "0.5", 1.0),
    ("Answer: 2x+1", "1+2*x", 1.0),
    ("so x = $\\sqrt{4}$", "2", 1.0),
    ("Answer: 3", "4", 0.0),
    ("garbage {{{ \\frac", "3", 0.0),
])
def test_math(completion, answer, want):
    assert math_match(completion, answer) == want


def test_math_off_the_main_thread():
    out = []
    t = threading.Thread(target=lambda: out.append(math_match("\\boxed{3}", "3")))
    t.start()
    t.join()
    assert out == [1.0]


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=200), st.none(), st.integers(), st.lists(st.text(max_size=5), max_size=3),
                 st.lists(st.dictionaries(st.sampled_from(["role", "content"]), st.text(max_size=20)), max_size=2)))
def test_never_raise_on_malformed_model_output(completion):
    for check in (exact_match, one_of_match, numeric_match):
        assert check(completion, "42") in (0.0, 1.0)


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet="\\{}$^_0123456789+-*/=()abcx ", max_size=60))
def test_math_never_raises_on_latex_noise(completion):
    assert math_match(completion, "3") in (0.0, 1.0)


def test_unusable_gold_scores_zero_and_is_reported_up_front():
    # The verifiers never raise, even on a bad reference answer: TRL calls them mid-training.
    for check in (exact_match, numeric_match, math_match):
        assert check("Answer: 1", None) == 0.0
        assert check("Answer: ", "") == 0.0
    assert numeric_match("Answer: 1", "abc") == 0.0
    # The data error is found before anything runs, naming the rows and the fix.
    with pytest.raises(ValueError, match=r"target: t\.jsonl: 2 of 4 .* numeric verifier: row 1 \('abc' holds no number\), "
                       r"row 3 \(missing\); .*--verifier exact"):
        check_reference_answers("numeric", ["1", "abc", "2.5", None], "target: t.jsonl")
    with pytest.raises(ValueError, match="row 0 \\(missing\\); give every row a reference answer"):
        check_reference_answers("exact", ["  ", "x"], "eval")
    check_reference_answers("exact", ["abc", "x"], "eval")
    check_reference_answers(numeric_match, ["3/4", "-1e3"], "eval")
    assert reference_answer_problem("math", "\\frac{1}{2}") is None


def test_helpers_and_registry():
    assert extract_answer("a\n\\boxed{x{y}z}\nmore") == "x{y}z"
    assert extract_answer("line1\n\nlast line\n") == "last line"
    assert parse_number("no digits") is None and parse_number("1/0") is None
    assert get_verifier("numeric") is numeric_match
    with pytest.raises(ValueError, match="verifier"):
        get_verifier("fuzzy")
    reward = verifier_reward("numeric")
    assert reward(["p", "p"], ["Answer: 4", "Answer: 5"], answer=["4", "4"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="answer_column|column"):
        reward(["p"], ["Answer: 4"], solution=["4"])
    # A mixed set's per-row checker: a row naming one is checked by it, the others (or no column) by the default.
    per_row = verifier_reward("numeric", verifier_column="verifier")
    completions, answers = ["Answer: 4.0", "Answer: 4.0", "Answer: 4.0"], ["4", "4", "4"]
    assert per_row(["p"] * 3, completions, answer=answers, verifier=["exact", "numeric", None]) == [0.0, 1.0, 1.0]
    assert per_row(["p"] * 3, completions, answer=answers) == [1.0, 1.0, 1.0]
