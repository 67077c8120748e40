"""The Space's "Training run" tab: its logic in-process, then served (gradio_client and a headless Chromium)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port, require

from heal_hf.app.space import runs as space_runs
from heal_hf.core.eda import EDAReference

CHROMIUM = Path("/usr/bin/chromium")


def trainer_state(path: Path, steps: int = 80, rate: float = 0.01, max_steps: int = 200) -> Path:
    """A TRL trainer_state.json of a collapsing run: falling entropy, rising zero-variance share."""
    rng = np.random.default_rng(0)
    logs = [{"step": s, "loss": 0.0, "entropy": float(0.1 * np.exp(-rate * s + rng.normal(0, 0.05))),
             "reward": 0.5, "frac_reward_zero_std": min(1.0, 0.2 + s / 100)} for s in range(1, steps + 1)]
    path.write_text(json.dumps({"log_history": logs, "max_steps": max_steps, "global_step": steps}))
    return path


def heal_metrics(path: Path) -> Path:
    """A heal-hf metrics.json: history with both domains, and the first / last mean curves."""
    history = [{"step": s, "heal/entropy/target": 0.08 * 0.99**s, "heal/entropy/general": 0.07,
                "heal/entropy_retention/target": 0.99**s, "heal/entropy_retention/general": 1.0} for s in range(1, 31)]
    curve = {"entropy": 0.08, "curve": [0.1, 0.08, 0.06, 0.05]}
    path.write_text(json.dumps({"history": history, "curves": {"initial": {"target": curve, "general": curve},
                                                               "latest": {"target": curve}}}))
    return path


@pytest.fixture(scope="module")
def reference() -> EDAReference:
    rng = np.random.default_rng(0)
    return EDAReference.from_entropies([rng.random(20) * 0.2 for _ in range(12)], bins=8)


def traces(figure) -> list[str]:
    return [t.name for t in figure.data if t.name]


def test_a_trainer_state_gets_the_verdict_and_the_pools_band(tmp_path, reference):
    verdict, dynamics, curves = space_runs.analyse_upload(trainer_state(tmp_path / "trainer_state.json"), reference)
    assert verdict.startswith("- **collapsed** — 80 logged steps with an entropy (last step 80 of 200, read as trainer state)")
    assert "zero-variance groups: 98%" in verdict  # the mean of the last 5 steps
    names = traces(dynamics)
    assert "general-domain pool (mean ± std)" in names and "all completions (running median)" in names
    assert "collapse threshold 0.6" in names and any(n.startswith("forecast (-") for n in names)
    band = next(t for t in dynamics.data if t.name == "general-domain pool (mean)")
    assert list(band.y) == pytest.approx([reference.magnitude_mean] * 2) and list(band.x) == [1, 200]
    assert curves is None  # a trainer state has no within-response curves


def test_a_heal_metrics_file_adds_its_curves_against_the_pools(tmp_path, reference):
    verdict, dynamics, curves = space_runs.analyse_upload(heal_metrics(tmp_path / "metrics.json"), reference)
    assert "read as metrics" in verdict
    assert {"target (running median)", "general (running median)"} <= set(traces(dynamics))
    assert traces(curves) == ["general-domain pool (mean ± std)", "general-domain pool (mean)", "target, first step",
                              "general, first step", "target, last step"]
    mean = next(t for t in curves.data if t.name == "general-domain pool (mean)")
    assert list(mean.y) == pytest.approx(reference.curve_mean.tolist())
    _, no_pool, _ = space_runs.analyse_upload(tmp_path / "metrics.json", None)  # no reference: no band
    assert not any("pool" in n for n in traces(no_pool))


@pytest.mark.parametrize("content, message", [
    ("{not json", "upload: .* is not valid JSON"),
    ('{"history": [{"step": 1, "loss": 1.0}]}', "logs no entropy"),
    ('{"weights": 1}', "has neither a log_history list"),
])
def test_bad_uploads_are_refused_with_a_sentence(tmp_path, reference, content, message):
    path = tmp_path / "upload.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        space_runs.analyse_upload(path, reference)
    with pytest.raises(ValueError, match="upload a trainer_state.json"):
        space_runs.analyse_upload(None, reference)


# --- served --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from test_space_app import APP, serve, stop

    port = free_port()
    log = tmp_path_factory.mktemp("space-runs") / "app.log"
    proc = serve([sys.executable, str(APP)], log, port, {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)})
    yield f"http://127.0.0.1:{port}/"
    stop(proc)


@pytest.mark.slow
def test_the_served_app_diagnoses_an_upload_and_still_explores(app_url, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False, analytics_enabled=False)
    verdict, dynamics, curves = client.predict(handle_file(str(trainer_state(tmp_path / "trainer_state.json"))),
                                               api_name="/diagnose_run")
    assert "**collapsed**" in verdict and dynamics["type"] == "plotly" and curves["visible"] is False
    verdict, _, curves = client.predict(handle_file(str(heal_metrics(tmp_path / "metrics.json"))), api_name="/diagnose_run")
    assert "read as metrics" in verdict and curves["visible"] is True
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(AppError, match="is not valid JSON") as caught:
        client.predict(handle_file(str(tmp_path / "bad.json")), api_name="/diagnose_run")
    assert "Traceback" not in str(caught.value)
    explored = client.predict("", "Q: 23+58=?\nA:", 2, 1.0, 8, 0, api_name="/explore")  # the first tab still works
    assert len(explored[2]["data"]) == 2


@pytest.mark.slow
def test_browser_draws_an_uploaded_run_in_its_tab(app_url, tmp_path):
    require(CHROMIUM.exists(), "Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright
    from test_space_app import CHROMIUM_FLAGS

    upload = heal_metrics(tmp_path / "metrics.json")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_url)
            expect(page.locator("#prompt textarea")).to_be_visible(timeout=60_000)  # the explorer's tab first
            page.get_by_role("tab", name="Training run").click()
            page.locator("#run-file input[type=file]").set_input_files(str(upload))
            expect(page.locator("#run-verdict")).to_contain_text("30 logged steps with an entropy", timeout=60_000)
            expect(page.locator("#run-dynamics .js-plotly-plot")).to_be_visible(timeout=60_000)
            expect(page.locator("#run-curves .js-plotly-plot")).to_be_visible(timeout=60_000)
            assert page.locator("#run-dynamics .scatterlayer .trace").count() >= 6  # band (3), domains (4), threshold
            shot = tmp_path / "training-run-tab.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")

            (tmp_path / "bad.json").write_text("{nope")
            page.locator("#run-file").get_by_role("button", name="Clear").click()  # back to an empty upload box
            page.locator("#run-file input[type=file]").set_input_files(str(tmp_path / "bad.json"))
            expect(page.get_by_text("is not valid JSON").first).to_be_visible(timeout=30_000)
            assert "Traceback" not in page.content()
        finally:
            browser.close()
