"""Hub calls with no Hub (a closed loopback port as HF_ENDPOINT): one line naming the endpoint and the fix."""
# ruff: noqa: F811  (test_train's module fixture `assets` is imported, then requested by name)

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port
from test_train import assets, cli_args, run_cli, write_jsonl  # noqa: F401 (assets is a fixture)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def closed_hub(monkeypatch, tmp_path):
    """The Hub clients pointed at a loopback port nothing listens on, online mode, an empty cache, a token."""
    import huggingface_hub.constants as constants

    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return endpoint


def one_line(code: int, err: str, command: str, *messages: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"heal-hf {command}: error:")]
    assert code == 2 and len(lines) == 1 and all(m in lines[0] for m in messages), err[-3000:]
    assert "Traceback" not in err and "Retrying in" not in err  # one line, not the client's retry log
    return lines[0]


@pytest.mark.slow  # huggingface_hub retries a refused connection for ~25 s per call
def test_hub_ids_without_a_hub_give_one_line_naming_the_endpoint(closed_hub, assets, tmp_path):
    reach = f"the Hugging Face Hub at {closed_hub} could not be reached"
    code, _, err = run_cli(["publish", "--namespace", "someone", "--staged", str(tmp_path / "staged")])
    one_line(code, err, "publish", reach, "HF_ENDPOINT")
    code, _, err = run_cli(cli_args(assets, tmp_path / "a", "--model", "someone/tiny-model"))
    one_line(code, err, "train", "model: cannot load 'someone/tiny-model'", reach)
    code, _, err = run_cli(cli_args(assets, tmp_path / "b", "--target", "someone/problems"))
    one_line(code, err, "train", "target: cannot load 'someone/problems'", reach)
    code, _, err = run_cli(cli_args(assets, tmp_path / "c", "--pool", "someone/pool"))
    one_line(code, err, "train", "pool", reach)
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q: 1 + 1 = ?\nA:", "answer": "2"}])
    code, _, err = run_cli(["build-pool", "--model", "someone/tiny-model", "--dataset", str(prompts),
                            "--out", str(tmp_path / "d")])
    one_line(code, err, "build-pool", reach)
    for name in "abcd":
        assert not (tmp_path / name).exists()


def test_push_without_a_hub_keeps_the_run_and_says_so(closed_hub, assets, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(cli_args(assets, out, "--max-steps", "1", "--save-steps", "1", "--no-eval-baseline",
                                    "--push-to-hub", "someone/heal-tiny"))
    one_line(code, err, "train", f"push_to_hub: the run is saved in {out} but was not pushed",
             f"the Hugging Face Hub at {closed_hub} could not be reached", "--resume")
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


@pytest.mark.slow
def test_publish_reads_hf_endpoint_from_the_environment(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(PYTHONPATH=str(REPO), HF_ENDPOINT=endpoint, HF_TOKEN="hf_" + "x" * 34, HF_HOME=str(tmp_path / "hf"),
               HF_HUB_DISABLE_XET="1")
    done = subprocess.run([sys.executable, "-m", "heal_hf.cli", "publish", "--namespace", "someone"], env=env,
                          capture_output=True, text=True, timeout=600)
    one_line(done.returncode, done.stderr, "publish", f"the Hugging Face Hub at {endpoint} could not be reached")
