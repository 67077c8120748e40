"""The Entropy Explorer served for real: gradio_client calls, a headless Chromium, and `heal-hf space`."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, require

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "spaces" / "entropy-explorer" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
PROMPT = "Q: 23+58=?\nA:"

pytestmark = pytest.mark.slow


def serve(command: list[str], log: Path, port: int, env: dict | None = None) -> subprocess.Popen:
    """Start an app server on 127.0.0.1:port and wait until it answers (offline: no Hub access)."""
    env = {
        **os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {}),
    }
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail(f"the app did not answer within 240 s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`python spaces/entropy-explorer/app.py`, placed by GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    port = free_port()
    log = tmp_path_factory.mktemp("space") / "app.log"
    env = {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    proc = serve([sys.executable, str(APP)], log, port, env)
    yield f"http://127.0.0.1:{port}/"
    stop(proc)


def test_api_answers_and_refuses_bad_input_without_stopping(app_url, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from transformers import T5Config

    client = Client(app_url, verbose=False, analytics_enabled=False)

    def explore(model="", prompt=PROMPT, samples=3, temperature=1.0, tokens=16, seed=0):
        return client.predict(model, prompt, samples, temperature, tokens, seed, api_name="/explore")

    first = explore()
    per_token, profiles, table, _, tokens_html, reference = first
    assert len(table["data"]) == 3 and table["headers"][:3] == ["#", "text", "tokens"]
    assert per_token["type"] == profiles["type"] == "plotly"
    assert "forking token" in tokens_html and "Reference R" in reference

    t5 = tmp_path / "t5"
    T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, vocab_size=50).save_pretrained(t5)
    bad = [
        (dict(prompt="   "), "The prompt is empty"),
        (dict(prompt="x" * 1001), "the limit is 1000"),
        (dict(samples=17), "greater than maximum value 16"),
        (dict(samples=0), "less than minimum value 1"),
        (dict(tokens=10_000), "greater than maximum value 256"),
        (dict(seed=-5), "Seed must be from 0"),
        # Not served: one sentence, whatever the id names (a folder that exists, one that does not, a Hub id).
        (dict(model="nobody/no-such-model"), "That model is not served here"),
        (dict(model=str(t5)), "That model is not served here"),
        (dict(model="/root"), "That model is not served here"),
        (dict(model="/nonexistent"), "That model is not served here"),
    ]
    for kwargs, message in bad:
        with pytest.raises(AppError, match=message) as caught:
            explore(**kwargs)
        assert "Traceback" not in str(caught.value)
        assert "Unrecognized" not in str(caught.value) and "Repo id" not in str(caught.value)
    # Still serving, with the same answer for the same seed.
    assert explore()[2]["data"] == table["data"]


def test_browser_shows_plots_table_and_tokens(app_url, tmp_path):
    require(CHROMIUM.exists(), "Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    samples = 6
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_url)
            page.locator("#prompt textarea").fill(PROMPT)
            page.locator("#num-samples input[type=number]").fill(str(samples))
            page.locator("#num-samples input[type=number]").press("Enter")
            page.locator("#run").click()
            expect(page.locator("#entropy-plot .js-plotly-plot")).to_be_visible(timeout=60_000)
            expect(page.locator("#profile-plot .js-plotly-plot")).to_be_visible(timeout=60_000)
            expect(page.locator("#samples [aria-rowcount]")).to_have_attribute(
                "aria-rowcount", str(samples + 1), timeout=60_000  # the header row and one per sample
            )
            expect(page.locator("#samples [role=row][data-index]")).to_have_count(samples)
            expect(page.locator("#tokens span[title^='H = ']").first).to_be_visible()
            assert page.locator("#entropy-plot .scatterlayer .trace").count() == samples + 1  # + threshold line
            shot = tmp_path / "entropy-explorer.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")

            # Bad input: a readable message in the page, no stack trace, and the app keeps working.
            page.locator("#prompt textarea").fill("")
            page.locator("#run").click()
            expect(page.get_by_text("The prompt is empty").first).to_be_visible(timeout=30_000)
            assert "Traceback" not in page.content()
        finally:
            browser.close()


def test_cli_serves_the_same_app(tmp_path):
    from gradio_client import Client

    port = free_port()
    cli = [sys.executable, "-m", "heal_hf.cli", "space", "--host", "127.0.0.1", "--port", str(port)]
    proc = serve(cli, tmp_path / "cli.log", port)
    try:
        out = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False).predict(
            "", PROMPT, 2, 1.0, 8, 1, api_name="/explore"
        )
        assert len(out[2]["data"]) == 2
    finally:
        stop(proc)
