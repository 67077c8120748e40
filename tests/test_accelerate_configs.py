"""examples/accelerate: the launch configs parse, and DDP runs the TRL example in 2 CPU processes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from heal_hf.toy.tiny import tiny_causal_lm

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "examples" / "accelerate"


@pytest.mark.parametrize("name, kind, detail", [
    ("ddp", "MULTI_GPU", None),
    ("deepspeed_zero2", "DEEPSPEED", 2),
    ("deepspeed_zero3", "DEEPSPEED", 3),
    ("fsdp", "FSDP", 2),
])
def test_launch_configs_parse_as_accelerate_configs(name, kind, detail):
    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type.value == kind
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == detail
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_version"] == detail
    assert name in (REPO / "README.md").read_text()  # each config has its README command


@pytest.mark.slow
def test_ddp_config_runs_the_trl_example_in_two_cpu_processes(tmp_path):
    model, tok = tiny_causal_lm(seed=0)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    launch = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", str(CONFIGS / "ddp.yaml"),
              "--num_processes", "2", "--mixed_precision", "no", str(REPO / "examples" / "trl_grpo_with_eda.py"),
              "--model", str(tmp_path / "model"), "--max-steps", "2", "--output-dir", str(tmp_path / "out")]
    done = subprocess.run(launch, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = re.findall(r"step 2: reward [\d.]+, EDA reward 0\.\d+, .* (\d+) process\(es\)", done.stdout)
    assert lines == ["2"], done.stdout[-2000:]  # one line, from the main process of 2
