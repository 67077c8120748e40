"""The staged repos through a real Hub-compatible server (olah) and the unmodified clients."""

from __future__ import annotations

import io
import json
import shutil

import pytest
import torch
from conftest import require
from hub_mirror import (
    RecordingApi,
    file_hashes,
    mirror_staged,
    olah_server,
    run_clients,
    staged_repo_folders,
)

from heal_hf import EDAReward
from heal_hf.data.pool import POOL_FEATURES, load_pool, pool_reference
from heal_hf.hub.stage import explorer_space_dir, publish, stage_hub
from heal_hf.metrics import ENTROPY_DYNAMICS_PATH

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_git() -> None:
    require(shutil.which("git") is not None, "olah serves git repositories: needs git")


def test_load_dataset_evaluate_and_snapshot_download_through_olah(built_pool, tiny_model_dir, tmp_path):
    # The bundled toy reasoner, and the Entropy Explorer Space when this checkout has it, else a one-file stand-in,
    # so every kind of repo goes through the server.
    toy = None
    explorer = None
    if not (explorer_space_dir() / "app.py").exists():
        explorer = tmp_path / "explorer"
        explorer.mkdir()
        (explorer / "README.md").write_text("---\nsdk: gradio\napp_file: app.py\n---\n")
        (explorer / "app.py").write_text("print('entropy explorer')\n")
    # The pool dataset: the bundled toy reasoner's pool as the default config, then the tiny model's added beside it.
    stage_hub(tmp_path / "stage", toy_dir=toy, explorer_dir=explorer)
    pool_folder = tmp_path / "stage/datasets/heal/general-entropy-pool"
    first = file_hashes(pool_folder / "toy-reasoner")
    staged, _ = stage_hub(tmp_path / "stage", toy_dir=toy, explorer_dir=explorer, add_pools=[("tiny", built_pool)])
    assert file_hashes(pool_folder / "toy-reasoner") == first  # adding a config leaves the other's files byte-identical
    assert sorted(p.name for p in pool_folder.iterdir()) == ["README.md", "tiny", "toy-reasoner"]
    assert {(r.repo_type, r.repo_id) for r in staged} == {
        ("dataset", "heal/general-entropy-pool"), ("space", "heal/eda"), ("space", "heal/entropy_dynamics"),
        ("model", "heal/toy-reasoner"), ("space", "heal/entropy-explorer"),
    }
    mirror_staged(tmp_path / "stage", tmp_path / "mirrors")
    g = torch.Generator().manual_seed(0)
    references = [(torch.rand(int(n), generator=g) * 3).tolist() for n in torch.randint(4, 30, (12,), generator=g)]
    predictions = [(torch.rand(int(n), generator=g)).tolist() for n in torch.randint(4, 30, (5,), generator=g)]
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"prompt": f"Q: {i} + 5 = ?\nA:", "answer": str(i + 5)}) + "\n"
                              for i in range(4)))
    (tmp_path / "train.yaml").write_text("eda_bins: 8\n")  # the tiny pool's K
    train = {"output_dir": str(tmp_path / "run"), "args": [
        "--model", str(tiny_model_dir), "--target", str(target), "--config", str(tmp_path / "train.yaml"),
        "--max-steps", "1", "--per-device-train-batch-size", "16", "--num-generations", "4",
        "--max-completion-length", "8", "--save-steps", "1"]}
    spec = {"namespace": "heal", "bins": 8, "references": references, "predictions": predictions,
            "pool_config": "tiny", "train": train, "repos": [[r.repo_type, r.repo_id] for r in staged]}
    (tmp_path / "olah").mkdir()
    with olah_server(tmp_path / "mirrors", tmp_path / "olah") as endpoint:
        got = run_clients(endpoint, tmp_path, spec)
        # publish reads the Hub's configs first: a staged folder without `tiny` would drop it from the card.
        api = RecordingApi(endpoint)
        with pytest.raises(ValueError, match=r"has pool configs tiny that are not staged here.*--add-pool tiny=D/tiny"):
            publish(toy_dir=toy, explorer_dir=explorer, staged_dir=tmp_path / "default-only", api=api, stream=io.StringIO())
        assert api.calls == []
        publish(toy_dir=toy, explorer_dir=explorer, staged_dir=tmp_path / "stage", api=api, stream=io.StringIO())
        uploads = {c[1]: c[2] for c in api.calls if c[0] == "upload_folder"}
        assert uploads["heal/general-entropy-pool"]["files"] == file_hashes(pool_folder)

    # load_dataset("heal/general-entropy-pool"): the default config, the bundled pool's rows with its features;
    # load_dataset(..., "tiny") and load_pool(..., config="tiny"): the tiny model's pool.
    local, tiny = load_pool("bundled"), load_pool(built_pool)
    assert got["pool_features"] == POOL_FEATURES.to_dict()
    assert got["pool_rows"] == local.to_list()
    assert got["load_pool_rows"] == len(local)
    assert got["config_rows"] == tiny.to_list()
    assert got["load_pool_config_rows"] == tiny.to_list()
    assert got["unknown_config"] == (
        "config: heal/general-entropy-pool has no config 'no-such-model'; its configs are toy-reasoner, tiny "
        "(pass one of them)")

    # The EDA reference and heal-hf train with REPO:CONFIG: the tiny pool, recorded as such.
    assert got["reference"] == pool_reference(tiny).to_dict()
    assert got["train_code"] == 0
    # A pool loaded from the Hub knows its model's fingerprint (from the repo's toy-reasoner/pool_build.json).
    assert len(got["pool_model_warnings"]) == 1, got["pool_model_warnings"]
    toy = json.loads((pool_folder / "toy-reasoner" / "pool_build.json").read_text())["model_fingerprint"]
    assert f"(fingerprint {toy}) but used with 'heal/toy-reasoner' (fingerprint {'0' * 16})" in got["pool_model_warnings"][0]
    assert got["train_general"]["source"] == "heal/general-entropy-pool:tiny"
    assert got["train_general"]["hub_id"] == "heal/general-entropy-pool"
    assert got["train_general"]["pool_rows"] == 13 and got["train_general"]["pool_model_id"] == "tiny-llama"

    # evaluate.load("heal/eda"): the core's numbers, from raw references and from the Hub pool.
    core = EDAReward(references, bins=8).score(predictions)
    assert got["eda_references"]["eda_reward"] == pytest.approx(core.reward.tolist(), rel=1e-6)
    assert got["eda_references"]["dynamics_gap"] == pytest.approx(core.dynamics_gap.tolist(), rel=1e-6)
    from_pool = EDAReward(pool_reference(local)).score(predictions)
    assert got["eda_pool"]["eda_reward"] == pytest.approx(from_pool.reward.tolist(), rel=1e-6)
    assert got["eda_pool"]["magnitude_z"] == pytest.approx(from_pool.magnitude_z.tolist(), rel=1e-6)
    from_tiny = EDAReward(pool_reference(tiny)).score(predictions)
    assert got["eda_pool_config"]["eda_reward"] == pytest.approx(from_tiny.reward.tolist(), rel=1e-6)

    # evaluate.load("heal/entropy_dynamics"): the same as the packaged module offline.
    import evaluate

    offline = evaluate.load(ENTROPY_DYNAMICS_PATH, module_type="measurement").compute(data=references, bins=8)
    assert got["dynamics"].keys() == offline.keys()
    for key, value in offline.items():
        assert got["dynamics"][key] == pytest.approx(value, rel=1e-6), key

    # snapshot_download of every repo: exactly the files stage-hub wrote.
    folders = staged_repo_folders(tmp_path / "stage")
    for repo in staged:
        assert got["snapshots"][f"{repo.repo_type}:{repo.repo_id}"] == file_hashes(folders[(repo.repo_type, repo.repo_id)])
