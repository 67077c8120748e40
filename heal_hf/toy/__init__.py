"""The bundled toy reasoner, its task families (`heal_hf.toy.tasks`) and tiny in-process models.

The toy reasoner ships inside the package (`TOY_REASONER_PATH`, made by
`datasets_scripts/train_toy_reasoner.py`); its MANIFEST.json pins the sha256 of every
file, and `load_toy_reasoner` checks them so that a missing or corrupted file is a
clear error, not a silently different model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data.files import sha256_of, write_json_atomic

ASSETS = Path(__file__).parent / "assets"
TOY_REASONER_PATH = ASSETS / "toy-reasoner"
TOY_POOL_PATH = ASSETS / "general-entropy-pool"
TOY_REASONER_ID = "heal/toy-reasoner"
"""The Hub id the bundled toy reasoner is published under (what adapters and cards name as their base)."""
MANIFEST = "MANIFEST.json"


def write_manifest(folder: str | Path) -> Path:
    """Write MANIFEST.json: the sha256 of every other file in `folder` (written atomically)."""
    folder = Path(folder)
    files = {p.name: sha256_of(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    write_json_atomic(folder / MANIFEST, {"sha256": files})
    return folder / MANIFEST


def check_toy_reasoner(folder: str | Path = TOY_REASONER_PATH) -> Path:
    """Raise a ValueError naming the file and the fix when a bundled file is missing or corrupted."""
    folder = Path(folder)
    fix = "reinstall heal-hf (pip install --force-reinstall heal-hf) or rebuild it with datasets_scripts/train_toy_reasoner.py"
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise ValueError(f"toy reasoner: {manifest} is missing; {fix}")
    try:
        expected = json.loads(manifest.read_text())["sha256"]
    except (ValueError, KeyError) as err:
        raise ValueError(f"toy reasoner: {manifest} is corrupted ({err}); {fix}") from None
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise ValueError(f"toy reasoner: the bundled file {path} is missing; {fix}")
        if sha256_of(path) != digest:
            raise ValueError(f"toy reasoner: the bundled file {path} is corrupted (sha256 mismatch); {fix}")
    return folder


def load_toy_reasoner(folder: str | Path = TOY_REASONER_PATH, device: str | None = None) -> tuple[Any, Any]:
    """The bundled toy reasoner (a transformers LlamaForCausalLM, float32, eval mode) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = check_toy_reasoner(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer


# The explore world's verifier ("reasoning_gym") and rollout metric ("try_check") are registered on import,
# so that `heal-hf train --verifier reasoning_gym` and HEALConfig(rollout_metrics=["try_check"]) find them.
from . import gym as _gym  # noqa: E402,F401  (reasoning-gym itself loads on first use)
