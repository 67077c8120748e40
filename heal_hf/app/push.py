"""Pushing a `heal-hf train` run to the Hub: the token, what is uploaded, and a staged copy whose
card and adapter config name the base model by its Hub id and carry no machine path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..data.files import (
    write_json_atomic,
    write_text_atomic,
)
from ..data.run_folder import (
    RUN_FILE,
)

PUSH_IGNORE = ["checkpoint-*", "checkpoint-*/**", ".*", "**/.*", "training_args.bin", "*.log"]
"""Not uploaded by push: checkpoints, hidden files (the run's own temporaries), and what names this machine's
paths: TrainingArguments pickled by the Trainer, the run's log (heal_run.json records the settings)."""
ADAPTER_CONFIG = "adapter_config.json"


def hub_token() -> str:
    """The Hub token (HF_TOKEN or `hf auth login`); ValueError when there is none. Never printed."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise ValueError(
            "push_to_hub: no Hugging Face token found; set HF_TOKEN or run `hf auth login` before training"
        )
    return token


def files_to_push(output_dir: str | Path) -> list[str]:
    """Relative paths `push_run` uploads: everything but checkpoints and hidden files."""
    from huggingface_hub.utils import filter_repo_objects

    root = Path(output_dir)
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return list(filter_repo_objects(paths, ignore_patterns=PUSH_IGNORE))


def name_adapter_base(folder: str | Path, base_model_id: str | None) -> bool:
    """Point a saved adapter's adapter_config.json at its base model's Hub id (what loads it anywhere).

    Returns whether `folder` holds an adapter named so; with no Hub id known it is left as PEFT wrote it.
    """
    path = Path(folder) / ADAPTER_CONFIG
    if not path.is_file() or not base_model_id:
        return False
    config = json.loads(path.read_text())
    if config.get("base_model_name_or_path") != base_model_id:
        config["base_model_name_or_path"] = base_model_id
        write_text_atomic(path, json.dumps(config, indent=2, sort_keys=True))  # PEFT's own layout
    return True


def write_card(folder: str | Path, repo_id: str | None = None) -> Path:
    """The model card of a run or checkpoint folder for `repo_id`, and its adapter named by the same base model id."""
    from ..data.run_folder import run_record
    from ..hub.cards import write_model_card

    run, _ = run_record(folder)
    name_adapter_base(folder, run["model"].get("base_model_id"))
    return write_model_card(folder, repo_id=repo_id)


def portable_record(run: dict[str, Any]) -> dict[str, Any]:
    """heal_run.json as pushed: every local path as its file or folder name, the model as its Hub id when known."""
    settings = run["settings"]
    local = {str(settings["model"]): run["model"].get("base_model_id") or Path(str(settings["model"])).name}
    for key in ("output_dir", "target", "eval", "pool"):
        value = settings.get(key)
        if isinstance(value, str) and (Path(value).exists() or Path(value).is_absolute()):
            local[value] = Path(value).name
    for path in list(local):  # the same folders written out in full
        local.setdefault(str(Path(path).resolve()), local[path])
    package = str(Path(__file__).resolve().parents[1])

    def portable(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: portable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [portable(v) for v in value]
        if not isinstance(value, str):
            return value
        if value in local:
            return local[value]
        for path in sorted(local, key=len, reverse=True):
            if len(path) > 1 and path in value and Path(path).is_absolute():
                value = value.replace(path, local[path])
        if package in value:
            value = value.replace(package, "heal_hf")
        return Path(value).name if Path(value).is_absolute() else value

    return portable(run)


def stage_push(output_dir: str | Path, repo_id: str, folder: str | Path) -> Path:
    """Write into `folder` exactly what `push_run` uploads to `repo_id`: the run's files but checkpoints, its card
    for `repo_id` (rewritten in the run folder too, with adapter_config.json naming the base model's Hub id), and a
    heal_run.json without this machine's paths (`portable_record`)."""

    from ..data.run_folder import run_record

    run, _ = run_record(output_dir)
    if run["model"].get("adapter") and not run["model"].get("base_model_id"):
        raise ValueError(f"push_to_hub: the adapter's base model is the local folder {Path(run['settings']['model']).name!r}, "
                         "which has no Hub id; pass --base-model-id with its Hub id")
    write_card(output_dir, repo_id=repo_id)
    folder = Path(folder)
    for name in files_to_push(output_dir):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if name != RUN_FILE:
            shutil.copy2(Path(output_dir) / name, folder / name)
    write_json_atomic(folder / RUN_FILE, portable_record(run))
    return folder


def push_run(output_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Stage the run for `repo_id` (`stage_push`), then create the repo and upload that folder. Returns the commit URL."""
    import tempfile

    from huggingface_hub import HfApi

    token = token or hub_token()
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="heal-hf-push-") as staged:
        stage_push(output_dir, repo_id, staged)
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=staged,
                                 commit_message="Upload HEAL few-shot RLVR run (heal-hf)")
    return info.commit_url


# --- The pipeline -----------------------------------------------------------------
