"""The layout of a `heal-hf train` output folder, and reading its records back.

    heal_run.json            settings, data, versions, status ("training" | "complete")
    metrics.json             evaluation, history of logged metrics, entropy curves
    entropy_curves.png       the figure of the model card
    heal_train_set.parquet   the hybrid training set the run started with
    train.log                what the run printed (TRL's per-step log dicts, warnings, bars); not pushed
    checkpoint-N/            TRL checkpoints, each with heal_state.json written last

The trainer writes these files; the model card and `--resume` read them through
this module, so neither needs the code that wrote them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

RUN_FILE = "heal_run.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "entropy_curves.png"
TRAIN_SET_FILE = "heal_train_set.parquet"
LOG_FILE = "train.log"
STATE_FILE = "heal_state.json"
"""Per-checkpoint EDA state (step-0 entropies, EMA reference), so `--resume` continues them."""


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest checkpoint-N that was fully written (its heal_state.json comes last), or None.

    A run killed while saving leaves a partial folder; resuming skips it.
    """
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    complete = [p for p in found if (p / STATE_FILE).is_file() and (p / "trainer_state.json").is_file()]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def history_from_logs(log_history: Sequence[dict[str, Any]]) -> list[dict[str, float]]:
    """Per logged step: HEAL's metrics, the total reward, per-function mean rewards and TRL's entropy.

    A value that is not a finite number (TRL logs None for a reward no row of the batch
    received, e.g. `rewards/eda/mean` in a batch without target rows) is left out of its
    step, so readers only ever see numbers (`key in entry` says whether a step has one).
    """

    def keep(key: str) -> bool:
        return key.startswith("heal/") or key in ("reward", "entropy") or (key.startswith("rewards/") and key.endswith("/mean"))

    return [
        {"step": entry["step"], **{k: float(v) for k, v in entry.items() if keep(k) and _finite(v)}}
        for entry in log_history
        if "step" in entry and any(k.startswith("heal/") for k in entry)
    ]


def clean_history(history: Any) -> list[dict[str, Any]]:
    """A stored history (metrics.json) as `history_from_logs` gives it: entries without non-numeric values."""
    if not isinstance(history, list):
        return []
    return [
        {k: v for k, v in entry.items() if k == "step" or _finite(v)}
        for entry in history
        if isinstance(entry, dict) and "step" in entry
    ]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_record(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(heal_run.json, metrics) of a `heal-hf train` output folder or of a checkpoint-N folder inside one.

    A checkpoint's metrics come from its trainer_state.json and heal_state.json
    (history and entropy curves up to that step; it has no evaluation).
    """
    folder = Path(folder)
    if (folder / RUN_FILE).is_file():
        run = json.loads((folder / RUN_FILE).read_text())
        metrics_path = folder / METRICS_FILE
        if not metrics_path.is_file():
            raise ValueError(f"checkpoint: {folder} has no {METRICS_FILE}: the run has not finished; resume it first")
        metrics = json.loads(metrics_path.read_text())
        metrics["history"] = clean_history(metrics.get("history"))
        return run, metrics
    if (folder.parent / RUN_FILE).is_file() and (folder / "trainer_state.json").is_file():
        run = json.loads((folder.parent / RUN_FILE).read_text())
        logs = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        state = json.loads((folder / STATE_FILE).read_text()) if (folder / STATE_FILE).is_file() else {}
        metrics = {
            "history": history_from_logs(logs),
            "curves": {"initial": state.get("initial", {}), "latest": state.get("latest", {})},
            "train": {"global_step": max((e.get("step", 0) for e in logs), default=0)},
        }
        return run, metrics
    raise ValueError(
        f"checkpoint: {folder} is neither a heal-hf train output folder ({RUN_FILE}) nor a checkpoint inside one"
    )
