"""stage-hub and publish: the exact repo folders, namespaces, overwrite protection, dry runs."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from hub_mirror import RecordingApi, file_hashes
from huggingface_hub import DatasetCard

from heal_hf.app.pool_build import build_pool
from heal_hf.cli import main
from heal_hf.data.model_identity import model_fingerprint
from heal_hf.data.pool import bundled_pool_path, load_pool
from heal_hf.data.pool_shards import PoolBuildConfig, config_name_for, split_pool_source
from heal_hf.hub import stage as hub
from heal_hf.hub.stage import STAGE_MANIFEST, publish, stage_hub
from heal_hf.metrics import EDA_METRIC_PATH, ENTROPY_DYNAMICS_PATH
from heal_hf.toy import TOY_REASONER_PATH
from heal_hf.toy.tiny import tiny_causal_lm


@pytest.fixture
def explorer_space(tmp_path) -> Path:
    """A minimal Gradio Space standing in for spaces/entropy-explorer, with a cache file to leave out."""
    folder = tmp_path / "entropy-explorer"
    (folder / "__pycache__").mkdir(parents=True)
    (folder / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0cache")
    (folder / "README.md").write_text("---\nsdk: gradio\napp_file: app.py\n---\nUses heal/general-entropy-pool.\n")
    (folder / "app.py").write_text('POOL = "heal/general-entropy-pool"  # heal_hf.data.pool loads it\n')
    return folder


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_stage_writes_the_exact_repo_folders(built_pool, tiny_model_dir, explorer_space, tmp_path):
    out = tmp_path / "out"
    staged, skipped = stage_hub(out, pool_dir=built_pool, toy_dir=tiny_model_dir, explorer_dir=explorer_space)
    assert skipped == []
    folders = {r.repo_id: r.folder for r in staged}
    assert folders == {
        "heal/general-entropy-pool": out / "datasets/heal/general-entropy-pool",
        "heal/eda": out / "spaces/heal/eda",
        "heal/entropy_dynamics": out / "spaces/heal/entropy_dynamics",
        "heal/toy-reasoner": out / "models/heal/toy-reasoner",
        "heal/entropy-explorer": out / "spaces/heal/entropy-explorer",
    }
    # The metric modules, the model and the Space are copied byte for byte (caches left out).
    assert file_hashes(out / "spaces/heal/eda") == file_hashes(Path(EDA_METRIC_PATH))
    assert file_hashes(out / "spaces/heal/entropy_dynamics") == file_hashes(Path(ENTROPY_DYNAMICS_PATH))
    assert file_hashes(out / "models/heal/toy-reasoner") == file_hashes(tiny_model_dir)
    assert sorted(file_hashes(out / "spaces/heal/entropy-explorer")) == ["README.md", "app.py"]
    # The pool: a card, and one config named after the pool's model holding its build manifest and shards
    # byte for byte; loadable as it stands, as the repo's default config and as a build folder of its own.
    pool_folder = out / "datasets/heal/general-entropy-pool"
    assert sorted(file_hashes(pool_folder)) == ["README.md"] + sorted(
        f"tiny-llama/{f}" for f in file_hashes(built_pool) if f != "README.md")
    assert file_hashes(pool_folder / "tiny-llama") == {
        f: h for f, h in file_hashes(built_pool).items() if f != "README.md"}
    rows = load_pool(built_pool).to_list()
    assert load_pool(pool_folder).to_list() == rows
    assert load_pool(pool_folder, config="tiny-llama").to_list() == rows
    assert load_pool(pool_folder / "tiny-llama").to_list() == rows
    assert DatasetCard.load(pool_folder / "README.md").data.configs == [
        {"config_name": "tiny-llama", "data_files": [{"split": "train", "path": "tiny-llama/data/train-*"}],
         "default": True}]
    assert {r.repo_id: r.files for r in staged}["heal/eda"] == ("README.md", "app.py", "eda.py", "requirements.txt")


def test_namespace_replaces_heal_in_ids_and_texts(built_pool, tiny_model_dir, explorer_space, tmp_path):
    out, toy = tmp_path / "out", tmp_path / "toy"
    shutil.copytree(tiny_model_dir, toy)
    (toy / "README.md").write_text("# heal/toy-reasoner\n")
    assert main(["stage-hub", str(out), "--namespace", "alice", "--pool", str(built_pool), "--toy",
                 str(toy), "--space", str(explorer_space)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/*/*")) == [
        "datasets/alice/general-entropy-pool", "models/alice/toy-reasoner", "spaces/alice/eda",
        "spaces/alice/entropy-explorer", "spaces/alice/entropy_dynamics"]
    card = DatasetCard.load(out / "datasets/alice/general-entropy-pool/README.md")
    assert 'load_dataset("alice/general-entropy-pool"' in card.text and "heal/general" not in card.text
    assert card.data.license == "apache-2.0"  # kept from the build's card
    eda_card = (out / "spaces/alice/eda/README.md").read_text()
    assert 'evaluate.load("alice/eda")' in eda_card and "heal_hf.metrics.EDA_METRIC_PATH" in eda_card
    assert (out / "spaces/alice/entropy-explorer/app.py").read_text() == (
        'POOL = "alice/general-entropy-pool"  # heal_hf.data.pool loads it\n')
    assert file_hashes(out / "models/alice/toy-reasoner") == file_hashes(toy)  # the toy's MANIFEST pins its bytes
    with pytest.raises(ValueError, match="namespace"):
        stage_hub(tmp_path / "bad", namespace="-bad/name", pool_dir=built_pool)


def test_only_the_explorer_space_is_optional(built_pool, tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "explorer_space_dir", lambda: tmp_path / "absent")  # an installed heal-hf: no spaces/
    staged, skipped = stage_hub(tmp_path / "out", pool_dir=built_pool, toy_dir=tiny_model_dir)
    assert [r.repo_id for r in staged] == ["heal/general-entropy-pool", "heal/eda", "heal/entropy_dynamics",
                                           "heal/toy-reasoner"]
    assert [line.split(":")[0] for line in skipped] == ["spaces/heal/entropy-explorer"]
    # The pool and the toy reasoner ship with heal-hf: a missing one is an error, not a skip.
    with pytest.raises(ValueError, match="no pool_build.json"):
        stage_hub(tmp_path / "out", pool_dir=tmp_path / "absent")
    monkeypatch.setattr(hub, "bundled_pool_path", lambda: tmp_path / "absent")
    with pytest.raises(ValueError, match=f"{tmp_path / 'absent'} holds no pool_build.json"):
        stage_hub(tmp_path / "out", toy_dir=tiny_model_dir)
    with pytest.raises(ValueError, match="holds no config.json"):
        stage_hub(tmp_path / "out", pool_dir=built_pool, toy_dir=tmp_path / "absent")


def test_restaging_replaces_its_own_files_only(built_pool, tmp_path):
    out = tmp_path / "out"
    stage_hub(out, pool_dir=built_pool)
    data = out / "datasets/heal/general-entropy-pool/tiny-llama/data"
    assert len(list(data.iterdir())) == 3
    # A rebuilt pool of the same model with one shard: the three old shards go, nothing else is touched.
    rebuilt = tmp_path / "rebuilt"
    model, tokenizer = tiny_causal_lm(seed=0)
    import datasets

    build_pool(model, tokenizer, datasets.Dataset.from_dict({"prompt": ["Q: 1 + 1 = ?\nA:"], "answer": ["2"]}),
               rebuilt, PoolBuildConfig(samples_per_prompt=2, bins=8, max_new_tokens=4), model_id="tiny-llama",
               progress=False)
    (out / "notes.txt").write_text("mine, outside the repo folders")
    stage_hub(out, pool_dir=rebuilt)
    assert [p.name for p in data.iterdir()] == ["train-00000-of-00001.parquet"]
    assert (out / "notes.txt").read_text() == "mine, outside the repo folders"
    assert len(load_pool(out / "datasets/heal/general-entropy-pool")) == 1


def test_unrelated_or_edited_files_stop_staging_and_nothing_changes(built_pool, tmp_path):
    out = tmp_path / "out"
    stage_hub(out, pool_dir=built_pool)
    (out / "spaces/heal/eda/secrets.env").write_text("mine")
    readme = out / "datasets/heal/general-entropy-pool/README.md"
    readme.write_text(readme.read_text() + "\nmy edit\n")
    before = _tree(out)
    expected = r"(?s)README.md: changed since stage-hub wrote it.*secrets.env: not written by stage-hub"
    with pytest.raises(ValueError, match=expected):
        stage_hub(out, pool_dir=built_pool)
    assert _tree(out) == before
    blocked = tmp_path / "blocked"
    (blocked / "spaces").mkdir(parents=True)
    (blocked / "spaces" / "heal").write_text("a file")
    with pytest.raises(ValueError, match="spaces/heal: a file where a folder belongs"):
        stage_hub(blocked, pool_dir=built_pool)
    assert not (blocked / STAGE_MANIFEST).exists()


def test_publish_dry_run_lists_uploads_and_never_prints_the_token(built_pool, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_secretTOKEN123")
    assert main(["publish", "--dry-run", "--private", "--namespace", "bob", "--pool", str(built_pool)]) == 0
    printed = capsys.readouterr().out
    assert "would create private dataset bob/general-entropy-pool and upload 5 files" in printed
    assert "would create private space bob/eda and upload 4 files" in printed
    assert "  tiny-llama/data/train-00002-of-00003.parquet" in printed and "hf_secretTOKEN123" not in printed


def test_publish_without_a_token_is_a_clear_error(built_pool, monkeypatch, tmp_path, capsys):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert main(["publish", "--pool", str(built_pool)]) == 2
    assert "no Hugging Face token found; set HF_TOKEN or run `hf auth login`" in capsys.readouterr().err


def test_publish_creates_each_repo_then_uploads_its_staged_folder(built_pool, tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "explorer_space_dir", lambda: tmp_path / "absent")  # the same repos in any checkout
    api, stream = RecordingApi(), io.StringIO()
    publish("carol", private=True, pool_dir=built_pool, toy_dir=tiny_model_dir, staged_dir=tmp_path / "staged",
            api=api, stream=stream)
    creates = [(c[1], c[2]["repo_type"], c[2]["private"], c[2]["space_sdk"]) for c in api.calls if c[0] == "create_repo"]
    assert creates == [("carol/general-entropy-pool", "dataset", True, None), ("carol/eda", "space", True, "gradio"),
                       ("carol/entropy_dynamics", "space", True, "gradio"), ("carol/toy-reasoner", "model", True, None)]
    uploads = {c[1]: c[2] for c in api.calls if c[0] == "upload_folder"}
    # No stale shards of the staged config on the Hub, nor a one-pool repo's; other configs' files stay.
    assert uploads["carol/general-entropy-pool"]["delete_patterns"] == ["data/*", "pool_build.json", "tiny-llama/data/*"]
    assert uploads["carol/general-entropy-pool"]["files"] == file_hashes(
        tmp_path / "staged/datasets/carol/general-entropy-pool")
    assert uploads["carol/eda"]["delete_patterns"] is None
    assert "published space carol/eda: 4 files" in stream.getvalue()
    shutil.rmtree(tmp_path / "staged")


def test_a_second_pool_adds_a_config_and_leaves_the_first_untouched(built_pool, tmp_path, capsys):
    out = tmp_path / "out"
    stage_hub(out)  # the bundled toy reasoner's pool: the default config
    folder = out / "datasets/heal/general-entropy-pool"
    first = file_hashes(folder / "toy-reasoner")
    first_times = _tree(folder / "toy-reasoner")
    assert main(["stage-hub", str(out), "--add-pool", str(built_pool)]) == 0  # named after its model: tiny-llama
    assert "staged dataset heal/general-entropy-pool: 19 files" in capsys.readouterr().out
    assert file_hashes(folder / "toy-reasoner") == first and _tree(folder / "toy-reasoner") == first_times
    assert file_hashes(folder / "tiny-llama") == {f: h for f, h in file_hashes(built_pool).items() if f != "README.md"}

    card = DatasetCard.load(folder / "README.md")
    assert card.data.configs == [
        {"config_name": "toy-reasoner", "data_files": [{"split": "train", "path": "toy-reasoner/data/train-*"}],
         "default": True},
        {"config_name": "tiny-llama", "data_files": [{"split": "train", "path": "tiny-llama/data/train-*"}]},
    ]
    assert [info["config_name"] for info in card.data.dataset_info] == ["tiny-llama", "toy-reasoner"]
    # One row per config: model (and its fingerprint when recorded), source, prompts, responses, k, temperature,
    # top-p / top-k, max new tokens, K.
    toy = model_fingerprint(TOY_REASONER_PATH)
    assert (f"| `toy-reasoner` (default) | `heal/toy-reasoner` (fingerprint `{toy}`) | `heal-hf toy general-domain tasks (train split)` "
            "| 800 | 6400 | 8 | 1.0 | 1.0 / 0 | 64 | 32 |") in card.text
    assert "| `tiny-llama` | `tiny-llama` | `toy-addition` | 13 | 39 | 3 | 1.0 | 1.0 / 0 | 12 | 8 |" in card.text
    assert 'load_dataset("heal/general-entropy-pool", "tiny-llama", split="train")' in card.text
    assert card.data.license == "apache-2.0"  # the default config's build card's

    assert load_pool(folder).to_list() == load_pool("bundled").to_list()
    assert load_pool(folder, config="tiny-llama").to_list() == load_pool(built_pool).to_list()
    assert len(load_pool(f"{folder}:tiny-llama")) == 13
    with pytest.raises(ValueError, match="has no config 'nope'; its configs are tiny-llama, toy-reasoner"):
        load_pool(folder, config="nope")

    # Staging the same sources again rewrites nothing; a file stage-hub did not write still stops it.
    before = _tree(folder)
    stage_hub(out, add_pools=[built_pool])
    assert _tree(folder) == before
    (folder / "tiny-llama/data/mine.parquet").write_bytes(b"not staged")
    with pytest.raises(ValueError, match="tiny-llama/data/mine.parquet: not written by stage-hub"):
        stage_hub(out, add_pools=[built_pool])


def test_pool_config_names_are_checked_before_anything_is_written(built_pool, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["stage-hub", str(out), "--add-pool", f"default={built_pool}"]) == 2
    assert "config: 'default' cannot name a pool config" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'twice' is given to two pools"):
        stage_hub(out, pool_dir=("twice", built_pool), add_pools=[("twice", bundled_pool_path())])
    assert not out.exists()
    stage_hub(out, pool_dir=("mine", built_pool))
    before = _tree(out)
    with pytest.raises(ValueError, match="'mine' is already staged with the pool of 'tiny-llama', not 'heal/toy-reasoner'"):
        stage_hub(out, pool_dir=("mine", bundled_pool_path()))
    assert _tree(out) == before
    with pytest.raises(ValueError, match="drop the config 'x'"):
        load_pool(built_pool, config="x")  # a build folder is one pool
    assert config_name_for("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen2.5-1.5B-Instruct"
    assert config_name_for("/runs/my model (v2)/") == "my-model-v2"
    assert split_pool_source("heal/general-entropy-pool:toy-reasoner") == ("heal/general-entropy-pool", "toy-reasoner")
    assert split_pool_source(str(built_pool)) == (str(built_pool), None)
