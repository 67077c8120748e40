"""The Entropy Explorer serves only its owner's models, says nothing about the server, and loads beside sampling."""

import socket
import threading
import time

import gradio as gr
import pytest
from conftest import free_port

from heal_hf.app.space import models, ui

PROMPT = "Q: 23+58=?\nA:"


def run_handler(cache, default=models.TINY_RANDOM):
    run, _ = ui._handlers(cache, default, {})
    return run


def refusal(run, model_id: str) -> str:
    with pytest.raises(gr.Error) as caught:
        run(model_id, PROMPT, 2, 1.0, 4, 0)
    return caught.value.message


def test_only_served_models_load_and_every_refusal_reads_the_same(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv(models.MODELS_VARIABLE, f" {tiny_model_dir} , ,someone/listed-model")
    served = models.served_models(models.TINY_RANDOM)
    assert served == [models.TOY_REASONER, models.TINY_RANDOM, str(tiny_model_dir), "someone/listed-model"]
    run = run_handler(models.ModelCache(served=served))
    (tmp_path / "config.json").write_text("{}")
    asked = ["/root", "/nonexistent", "/etc/passwd", "gpt2", "nobody/no-such-model", str(tmp_path), "../../..",
             str(tiny_model_dir) + "/", "bundled:other", "<img src=x>"]
    messages = {refusal(run, model_id) for model_id in asked}
    assert messages == {models.not_served_message(served)}  # one sentence, whatever was asked
    (message,) = messages
    assert not any(word in message for word in ("/root", "nonexistent", "Unrecognized", "Repo id", str(tmp_path)))
    # The listed folder and the bundled models do serve.
    for model_id in (str(tiny_model_dir), models.TINY_RANDOM, ""):
        assert len(run(model_id, PROMPT, 2, 1.0, 4, 0)[5].texts) == 2


def test_the_app_builds_its_allowlist_from_the_environment(monkeypatch, tiny_model_dir):
    monkeypatch.setenv(models.MODELS_VARIABLE, str(tiny_model_dir))
    demo = ui.build_app(models.TINY_RANDOM)
    explore_fn = next(fn for fn in demo.fns.values() if fn.api_name == "explore")
    assert explore_fn.concurrency_limit > 1  # a model's load does not queue every other visitor
    with pytest.raises(gr.Error, match="not served here"):
        explore_fn.fn("/root", PROMPT, 2, 1.0, 4, 0)
    assert explore_fn.fn(str(tiny_model_dir), PROMPT, 2, 1.0, 4, 0)


@pytest.fixture
def silent_hub(monkeypatch):
    """HF_ENDPOINT at a loopback port that accepts connections and never answers (a stalled download)."""
    import huggingface_hub.constants as constants

    port = free_port()
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(16)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")

    def hang_up():
        server.close()
        for conn in accepted:
            conn.close()

    yield hang_up
    hang_up()


@pytest.mark.slow
def test_a_stalled_hub_download_does_not_hold_up_other_visitors(silent_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    served = [models.TINY_RANDOM, "someone/stalled-model"]
    cache = models.ModelCache(served=served)
    run = run_handler(cache)
    run(models.TINY_RANDOM, PROMPT, 2, 1.0, 4, 0)  # loaded before the stalled download starts
    outcome = {}

    def slow():
        started = time.monotonic()
        try:
            run("someone/stalled-model", PROMPT, 2, 1.0, 4, 0)
        except gr.Error as err:
            outcome["error"] = err.message
        outcome["took"] = time.monotonic() - started

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    run(models.TINY_RANDOM, PROMPT, 2, 1.0, 4, 0)
    quick = time.monotonic() - started
    assert thread.is_alive() and quick < 3, (quick, outcome)  # served while the download still stalls
    silent_hub()  # the Hub hangs up: the stalled load ends with its one-line error
    thread.join(120)
    assert not thread.is_alive() and "cannot load 'someone/stalled-model'" in outcome["error"], outcome
