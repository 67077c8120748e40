"""Which model a thing describes: its Hub id, and a fingerprint of its config and weights.

A LoRA adapter names its base model by Hub id (`hub_model_id`), never by a path on the
machine that trained it; a general-entropy pool records the model that sampled it
(`model_identity` at build time) and is checked against the model it is used with
(`heal_hf.data.pool.load_pool(..., model=...)`).

    fingerprint = sha256 over [(file name, sha256 of the file)] for config.json and the
                  weight files (*.safetensors, else pytorch_model*.bin), first 16 hex digits

Files in a Hugging Face cache are not read again: an LFS blob is named by its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..toy import MANIFEST, TOY_REASONER_ID, TOY_REASONER_PATH
from .files import sha256_of

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9]")
_BLOB = re.compile(r"[0-9a-f]{64}")


class OtherModelWarning(UserWarning):
    """Something made from one model (a general-entropy pool) is used with another."""


@dataclass(frozen=True)
class ModelIdentity:
    """A model's name (its Hub id when it has one) and its fingerprint (None: no files to hash)."""

    name: str
    fingerprint: str | None = None

    def same_as(self, other: "ModelIdentity") -> bool:
        """Same fingerprint when both have one, else the same name."""
        if self.fingerprint and other.fingerprint:
            return self.fingerprint == other.fingerprint
        return self.name == other.name

    def __str__(self) -> str:
        return f"{self.name!r}" + (f" (fingerprint {self.fingerprint})" if self.fingerprint else "")


def is_hub_id(text: Any) -> bool:
    """Whether `text` reads as a Hub repo id (user/name) and is not a local path."""
    return isinstance(text, str) and bool(_HUB_ID.fullmatch(text)) and not Path(text).exists()


def is_bundled_toy(path: str | Path) -> bool:
    """Whether `path` is the bundled toy reasoner, or a copy of it (the same MANIFEST.json of sha256s)."""
    folder = Path(path)
    if not (folder / MANIFEST).is_file():
        return False
    if folder.resolve() == TOY_REASONER_PATH.resolve():
        return True
    return (folder / MANIFEST).read_bytes() == (TOY_REASONER_PATH / MANIFEST).read_bytes()


def hub_model_id(model: str | Path, base_model_id: str | None = None) -> str | None:
    """The Hub id of `model` (a folder or a Hub id), or None when it has none that is known.

    `base_model_id` when given; `heal/toy-reasoner` for the bundled toy reasoner; `model`
    itself when it is a Hub id; a folder's config.json `_name_or_path` when that is one.
    """
    if base_model_id:
        return base_model_id
    if is_bundled_toy(model):
        return TOY_REASONER_ID
    if is_hub_id(str(model)):
        return str(model)
    config = Path(model) / "config.json"
    try:
        named = json.loads(config.read_text()).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return named if is_hub_id(named) else None


def _file_digest(path: Path) -> str:
    target = Path(os.path.realpath(path))
    if target.parent.name == "blobs" and _BLOB.fullmatch(target.name):  # an LFS blob of the HF cache
        return target.name
    return sha256_of(target)


def _weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))


def _model_folder(model: str | Path) -> Path | None:
    """The local folder of `model`: itself, or a Hub id's snapshot in the local cache (nothing is downloaded)."""
    if Path(model).is_dir():
        return Path(model)
    if not is_hub_id(str(model)):
        return None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model), allow_patterns=["config.json", "*.safetensors", "*.bin"],
                                      local_files_only=True))
    except Exception:  # not in the cache (or no such repo): no fingerprint
        return None


def model_fingerprint(model: str | Path) -> str | None:
    """The fingerprint of a model folder or cached Hub id (see the module doc); None without config and weights."""
    folder = _model_folder(model)
    if folder is None or not (folder / "config.json").is_file() or not _weight_files(folder):
        return None
    files = [(p.name, _file_digest(p)) for p in [folder / "config.json", *_weight_files(folder)]]
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]


def model_identity(model: Any, base_model_id: str | None = None) -> ModelIdentity:
    """The identity of a model: a folder, a Hub id, or a loaded model (by its `name_or_path`).

    Its name is its Hub id (`hub_model_id`), else the folder's name, else the class name.
    """
    source = model if isinstance(model, (str, Path)) else getattr(model, "name_or_path", "") or ""
    name = hub_model_id(source, base_model_id) if source else base_model_id
    if not name:
        name = Path(str(source)).name if source else type(model).__name__
    return ModelIdentity(name, model_fingerprint(source) if source else None)
