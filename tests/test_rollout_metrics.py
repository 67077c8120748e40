import pytest

from heal_hf.core.rollout_metrics import ROLLOUT_METRICS, register_rollout_metric, rollout_metric_means
from heal_hf.toy import explore
from heal_hf.trl import HEALConfig


def test_means_over_texts_and_chat_messages_and_clear_errors(tmp_path):
    register_rollout_metric("says_wait", lambda text: float("wait" in text))
    try:
        completions = ["no", [{"role": "assistant", "content": "wait, yes"}], "wait"]
        means = rollout_metric_means(["says_wait", "length"], completions)
        assert means == {"says_wait": pytest.approx(2 / 3), "length": pytest.approx((2 + 9 + 4) / 3)}
        assert rollout_metric_means(["says_wait"], []) == {}
        with pytest.raises(ValueError, match=r"unknown \['nope'\].*register_rollout_metric"):
            rollout_metric_means(["nope"], ["x"])
        with pytest.raises(ValueError, match="letters, digits and _"):
            register_rollout_metric("a/b", len)
        with pytest.raises(ValueError, match=r"rollout_metrics: unknown \['nope'\]"):
            HEALConfig(output_dir=str(tmp_path), rollout_metrics=["nope"], report_to="none")
    finally:
        ROLLOUT_METRICS.pop("says_wait", None)


def test_the_toy_registers_try_check_on_import():
    text = " 6*8=48 no, 7*8=56 yes. Answer: 7"
    assert rollout_metric_means([explore.TRY_CHECK], [text, " Answer: 7"]) == {
        "try_check": pytest.approx((explore.try_check(text).share + 0.0) / 2)}
    assert explore.try_check(text).share == pytest.approx(2 / 3)
