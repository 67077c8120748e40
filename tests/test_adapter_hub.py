"""A LoRA run on the bundled toy reasoner, pushed and loaded on a clean cache with its base from a Hub mirror (olah)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import require
from hub_mirror import client_env, mirror_staged, olah_server
from huggingface_hub import ModelCard

import heal_hf
from heal_hf import cli
from heal_hf.app.push import files_to_push, stage_push
from heal_hf.app.train import train
from heal_hf.app.train_options import TrainSettings
from heal_hf.hub.stage import stage_hub
from heal_hf.toy import TOY_REASONER_ID, TOY_REASONER_PATH, load_toy_reasoner, tasks

pytestmark = pytest.mark.slow
REPO_ID = "someone/heal-toy-lora"
INPUT = "Q: sort 4 2 8 7\nA: min first: 2"

FETCH_BASE = """
import json, sys
from pathlib import Path
from huggingface_hub import snapshot_download
snapshot_download(json.loads((Path(sys.argv[1]) / "adapter_config.json").read_text())["base_model_name_or_path"])
"""
LOAD = """
import json, sys
from pathlib import Path
import torch
from peft import AutoPeftModelForCausalLM, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, ids, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
auto = AutoPeftModelForCausalLM.from_pretrained(folder).eval()
base = AutoModelForCausalLM.from_pretrained(json.loads((Path(folder) / "adapter_config.json").read_text())
                                            ["base_model_name_or_path"])
peft = PeftModel.from_pretrained(base, folder).eval()
tokenizer = AutoTokenizer.from_pretrained(folder)
with torch.no_grad():
    x = torch.tensor([ids])
    out.write_text(json.dumps({"auto": auto(x).logits.tolist(), "peft": peft(x).logits.tolist(),
                               "ids": tokenizer(sys.argv[4])["input_ids"]}))
"""


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A 2-step LoRA run on the bundled toy reasoner (the default --model), with the trainer that made it."""
    root = tmp_path_factory.mktemp("toy-lora")
    target = root / "target.jsonl"
    target.write_text("".join(json.dumps(r) + "\n" for r in tasks.generate("sort_digits", 8, seed=0)))
    settings = TrainSettings(target=str(target), output_dir=str(root / "run"), verifier="exact", lora=True,
                             lora_r=4, eval_baseline=False)
    # Completions long enough to reach an answer: rewards that differ within a group, so the adapter learns.
    overrides = dict(max_steps=2, per_device_train_batch_size=16, num_generations=4, max_completion_length=48,
                     learning_rate=5e-2, save_steps=2, eda_weight=1.0)
    return train(settings, overrides)


def test_the_pushed_adapter_loads_from_the_hub_id_of_its_base_on_a_clean_cache(lora_run, tmp_path):
    require(shutil.which("git") is not None, "olah serves git repositories: needs git")
    run = lora_run.output_dir
    assert json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"] == TOY_REASONER_ID
    assert ModelCard.load(run / "README.md").data.base_model == TOY_REASONER_ID

    # Exactly the folder push_run uploads: no path of this machine in any file.
    pushed = stage_push(run, REPO_ID, tmp_path / "push")
    assert sorted(p.relative_to(pushed).as_posix() for p in pushed.rglob("*") if p.is_file()) == [
        f for f in files_to_push(run)]
    assert "training_args.bin" not in files_to_push(run) and "train.log" not in files_to_push(run)
    local = {str(run), str(run.resolve()), str(TOY_REASONER_PATH), str(TOY_REASONER_PATH.resolve()),
             str(Path(heal_hf.__file__).resolve().parents[1]), str(tmp_path), str(run.parent)}
    for file in pushed.rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            for path in local:
                assert path.encode() not in content, (file.name, path)
    card = ModelCard.load(pushed / "README.md")
    assert card.data.base_model == TOY_REASONER_ID and card.data.library_name == "peft"
    assert f"from_pretrained('{REPO_ID}')" in card.text and "needs the base model at" not in card.text
    record = json.loads((pushed / "heal_run.json").read_text())
    assert record["settings"]["model"] == TOY_REASONER_ID and record["settings"]["output_dir"] == "run"
    assert record["settings"]["target"] == "target.jsonl"
    # The run folder's own card and adapter_config say the same as the pushed ones.
    assert (run / "README.md").read_bytes() == (pushed / "README.md").read_bytes()
    assert (run / "adapter_config.json").read_bytes() == (pushed / "adapter_config.json").read_bytes()

    # The trained model's logits, and the base model's (the adapter must change them for the check to mean anything).
    base, tokenizer = load_toy_reasoner()
    ids = tokenizer(INPUT)["input_ids"]
    model = lora_run.trainer.model.eval()
    with torch.no_grad():
        trained = model(torch.tensor([ids], device=model.device)).logits.cpu()
        untrained = base(torch.tensor([ids])).logits
    assert not torch.allclose(trained, untrained, atol=1e-4)

    # heal/toy-reasoner on a Hub mirror, as stage-hub writes it; the adapter loaded in a fresh process, clean HF_HOME.
    stage_hub(tmp_path / "stage")
    mirror_staged(tmp_path / "stage", tmp_path / "mirrors")
    (tmp_path / "olah").mkdir()
    result = tmp_path / "logits.json"
    # olah answers a file missing from a mirror with 401 "repository not found" where the Hub says 404, and
    # transformers' from_pretrained asks every model id for an adapter_config.json; so the clean cache first gets
    # the base by its Hub id through the mirror, then the adapter loads with the Hub marked offline.
    with olah_server(tmp_path / "mirrors", tmp_path / "olah") as endpoint:
        env = client_env(endpoint, tmp_path)
        fetch = subprocess.run([sys.executable, "-c", FETCH_BASE, str(pushed)], env=env, capture_output=True,
                               text=True, timeout=300, cwd=tmp_path)
        assert fetch.returncode == 0, fetch.stderr[-3000:]
    proc = subprocess.run([sys.executable, "-c", LOAD, str(pushed), json.dumps(ids), str(result), INPUT],
                          env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(result.read_text())
    assert got["ids"] == ids
    assert (tmp_path / "hf-home" / "hub" / "models--heal--toy-reasoner").is_dir()  # the base came from the mirror
    for key in ("auto", "peft"):
        assert torch.allclose(torch.tensor(got[key]), trained, atol=1e-5), key


def test_card_with_repo_id_rewrites_the_card_and_the_adapter_base_together(lora_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(lora_run.output_dir, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((run / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(TOY_REASONER_PATH)  # as PEFT writes it: the local --model
    (run / "adapter_config.json").write_text(json.dumps(config))
    assert cli.main(["card", str(run), "--repo-id", REPO_ID]) == 0
    assert json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"] == TOY_REASONER_ID
    card = ModelCard.load(run / "README.md")
    assert card.data.base_model == TOY_REASONER_ID and f"from_pretrained('{REPO_ID}')" in card.text
    assert str(TOY_REASONER_PATH) not in card.text
