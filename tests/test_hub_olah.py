"""The staged repos through a real Hub-compatible server (olah) and the unmodified clients."""

from __future__ import annotations

import shutil

import pytest
import torch

from conftest import require
from hub_mirror import file_hashes, mirror_staged, olah_server, run_clients, staged_repo_folders
from heal_hf import EDAReward
from heal_hf.hub import explorer_space_dir, stage_hub, toy_reasoner_dir
from heal_hf.metrics import ENTROPY_DYNAMICS_PATH
from heal_hf.pool import POOL_FEATURES, load_pool, pool_reference

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_git() -> None:
    require(shutil.which("git") is not None, "olah serves git repositories: needs git")


def test_load_dataset_evaluate_and_snapshot_download_through_olah(built_pool, tiny_model_dir, tmp_path):
    # The bundled toy reasoner and the Entropy Explorer Space when this checkout has them, else stand-ins
    # (a saved tiny model, a one-file Space), so every kind of repo goes through the server.
    toy = None if (toy_reasoner_dir() / "config.json").exists() else tiny_model_dir
    explorer = None
    if not (explorer_space_dir() / "app.py").exists():
        explorer = tmp_path / "explorer"
        explorer.mkdir()
        (explorer / "README.md").write_text("---\nsdk: gradio\napp_file: app.py\n---\n")
        (explorer / "app.py").write_text("print('entropy explorer')\n")
    staged, _ = stage_hub(tmp_path / "stage", pool_dir=built_pool, toy_dir=toy, explorer_dir=explorer)
    assert {(r.repo_type, r.repo_id) for r in staged} == {
        ("dataset", "heal/general-entropy-pool"), ("space", "heal/eda"), ("space", "heal/entropy_dynamics"),
        ("model", "heal/toy-reasoner"), ("space", "heal/entropy-explorer"),
    }
    mirror_staged(tmp_path / "stage", tmp_path / "mirrors")
    g = torch.Generator().manual_seed(0)
    references = [(torch.rand(int(n), generator=g) * 3).tolist() for n in torch.randint(4, 30, (12,), generator=g)]
    predictions = [(torch.rand(int(n), generator=g)).tolist() for n in torch.randint(4, 30, (5,), generator=g)]
    spec = {"namespace": "heal", "bins": 8, "references": references, "predictions": predictions,
            "repos": [[r.repo_type, r.repo_id] for r in staged]}
    (tmp_path / "olah").mkdir()
    with olah_server(tmp_path / "mirrors", tmp_path / "olah") as endpoint:
        got = run_clients(endpoint, tmp_path, spec)

    # load_dataset("heal/general-entropy-pool"): the pool's rows, with its declared features.
    local = load_pool(built_pool)
    assert got["pool_features"] == POOL_FEATURES.to_dict()
    assert got["pool_rows"] == local.to_list()
    assert got["load_pool_rows"] == len(local)

    # evaluate.load("heal/eda"): the core's numbers, from raw references and from the Hub pool.
    core = EDAReward(references, bins=8).score(predictions)
    assert got["eda_references"]["eda_reward"] == pytest.approx(core.reward.tolist(), rel=1e-6)
    assert got["eda_references"]["dynamics_gap"] == pytest.approx(core.dynamics_gap.tolist(), rel=1e-6)
    from_pool = EDAReward(pool_reference(local)).score(predictions)
    assert got["eda_pool"]["eda_reward"] == pytest.approx(from_pool.reward.tolist(), rel=1e-6)
    assert got["eda_pool"]["magnitude_z"] == pytest.approx(from_pool.magnitude_z.tolist(), rel=1e-6)

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
