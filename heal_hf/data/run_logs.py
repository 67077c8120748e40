"""A training run's entropy dynamics, read from what it logged.

Sources, all holding the same per-step log dicts:
- TRL / transformers `trainer_state.json` (`log_history`), in an output folder or a
  checkpoint-N inside one: TRL's GRPOTrainer logs `entropy` (mean token entropy of the
  step's completions, nats), `reward`, `frac_reward_zero_std`, ...; HEALGRPOTrainer adds
  `heal/entropy/<domain>`, `heal/entropy_retention/<domain>` and `heal/eda_distance`;
  `EntropyMonitor` adds the MONITOR_KEYS below;
- a heal-hf run's `metrics.json` (`history`, see run_folder.history_from_logs);
- `EntropyMonitor`'s own `entropy_monitor.json` (`steps`, already records).

`records_from_logs` turns log dicts into one `StepRecord` per logged training step;
`read_run_logs` finds and reads a source, each failure a one-line ValueError.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from .files import error_line
from .run_folder import METRICS_FILE, RUN_FILE

MONITOR_FILE = "entropy_monitor.json"
"""The file `EntropyMonitor` writes into the run's output_dir."""
MONITOR_FORMAT = "heal-hf entropy monitor v1"
TRAINER_STATE_FILE = "trainer_state.json"
HIGH_ENTROPY_KEY = "entropy_monitor/high_entropy_share"
EDA_DISTANCE_KEY = "entropy_monitor/eda_distance"
MONITOR_KEYS = (HIGH_ENTROPY_KEY, EDA_DISTANCE_KEY)
"""Keys `EntropyMonitor` adds to the trainer's log history."""
TARGET_ENTROPY_KEY = "heal/entropy/target"
ENTROPY_KEYS = (TARGET_ENTROPY_KEY, "entropy")


@dataclass(frozen=True)
class StepRecord:
    """The entropy dynamics of one logged training step (None: not logged).

    `entropy`: mean token entropy (nats) of the target-domain completions when the
    trainer logs domains (HEAL), else of all completions (TRL's `entropy`);
    `retention`: `entropy` over the run's first logged one (HEAL's own retention when
    logged); `high_entropy_share`: share of completion tokens above the monitor's
    high-entropy threshold; `frac_reward_zero_std`: share of GRPO groups whose
    completions all got one reward; `eda_distance`: EDA's mean distance D of the
    target completions to the general-domain reference.
    """

    step: int
    entropy: float | None
    retention: float | None
    general_entropy: float | None = None
    general_retention: float | None = None
    high_entropy_share: float | None = None
    frac_reward_zero_std: float | None = None
    reward: float | None = None
    eda_distance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def entropy_key(log_history: Sequence[dict[str, Any]]) -> str | None:
    """The key of the per-step entropy: HEAL's target-domain one when logged, else TRL's; None: neither."""
    for key in ENTROPY_KEYS:
        if any(_number(e.get(key)) is not None for e in log_history):
            return key
    return None


class RecordBuilder:
    """Turns training log entries, one at a time in step order, into StepRecords (retention needs the first).

    `key` is the entropy key (see `entropy_key`); None: the first entry with an entropy decides.
    """

    def __init__(self, key: str | None = None) -> None:
        self.key = key
        self._first: dict[str, float] = {}

    def add(self, entry: dict[str, Any]) -> StepRecord | None:
        """The record of one log entry; None for entries without a step or without this run's entropy."""
        if "step" not in entry:
            return None
        if self.key is None:
            self.key = next((k for k in ENTROPY_KEYS if _number(entry.get(k)) is not None), None)
        entropy = _number(entry.get(self.key)) if self.key is not None else None
        if entropy is None:
            return None
        general = _number(entry.get("heal/entropy/general"))
        self._first.setdefault("target", entropy)
        if general is not None:
            self._first.setdefault("general", general)
        return StepRecord(
            step=int(entry["step"]),
            entropy=entropy,
            retention=self._retention(entry, "target", entropy),
            general_entropy=general,
            general_retention=self._retention(entry, "general", general),
            high_entropy_share=_number(entry.get(HIGH_ENTROPY_KEY)),
            frac_reward_zero_std=_number(entry.get("frac_reward_zero_std")),
            reward=_number(entry.get("reward")),
            eda_distance=_number(entry.get("heal/eda_distance", entry.get(EDA_DISTANCE_KEY))),
        )

    def _retention(self, entry: dict[str, Any], domain: str, value: float | None) -> float | None:
        logged = _number(entry.get(f"heal/entropy_retention/{domain}")) if self.key == TARGET_ENTROPY_KEY else None
        if logged is not None:
            return logged  # HEAL's own, against its step-0 entropies (kept across --resume)
        start = self._first.get(domain)
        return None if value is None or not start else value / start


def records_from_logs(log_history: Sequence[dict[str, Any]]) -> list[StepRecord]:
    """One StepRecord per training log entry with an entropy, in step order.

    Evaluation entries (`eval_*` keys) and the end-of-training summary carry no
    entropy and are skipped; so are HEAL steps whose batch had no target rows.
    """
    builder = RecordBuilder(entropy_key(log_history))
    if builder.key is None:
        return []
    entries = sorted((e for e in log_history if "step" in e), key=lambda e: e["step"])
    return [r for r in map(builder.add, entries) if r is not None]


@dataclass
class RunLogs:
    """A run's records and where they came from: `kind` is "trainer_state", "metrics" or "monitor";
    `entropy_key` the log key its entropies came from (see `entropy_key`)."""

    source: Path
    kind: str
    records: list[StepRecord]
    max_steps: int | None
    entropy_key: str | None = None

    @property
    def entropy_label(self) -> str:
        """What `StepRecord.entropy` averages over: "target" (HEAL's domains) or "all completions"."""
        return "target" if self.entropy_key == TARGET_ENTROPY_KEY else "all completions"

    @property
    def last_step(self) -> int:
        return self.records[-1].step if self.records else 0

    def column(self, name: str) -> list[float | None]:
        """One StepRecord field over the records."""
        return [getattr(r, name) for r in self.records]


def parse_run_file(path: Path, data: Any, what: str = "run") -> RunLogs:
    """RunLogs from a parsed trainer_state.json, metrics.json or entropy_monitor.json (told apart by content)."""
    if not isinstance(data, dict):
        raise ValueError(f"{what}: {path} holds a JSON {type(data).__name__}, not an object; expected a "
                         f"{TRAINER_STATE_FILE}, {METRICS_FILE} or {MONITOR_FILE}")
    if isinstance(data.get("log_history"), list):
        kind, logs, max_steps = "trainer_state", data["log_history"], _number(data.get("max_steps"))
    elif isinstance(data.get("history"), list):
        kind, logs, max_steps = "metrics", data["history"], _run_max_steps(path.parent)
    elif data.get("format") == MONITOR_FORMAT and isinstance(data.get("steps"), list):
        try:
            records = [StepRecord(**row) for row in data["steps"]]
        except TypeError as err:
            raise ValueError(f"{what}: {path} has malformed steps ({err}); rewrite it with EntropyMonitor") from None
        max_steps = _number(data.get("max_steps"))
        return RunLogs(path, "monitor", records, None if max_steps is None else int(max_steps), data.get("entropy_key"))
    else:
        raise ValueError(f"{what}: {path} has neither a log_history list ({TRAINER_STATE_FILE}) nor a history "
                         f"list ({METRICS_FILE}); pass a file a Trainer or heal-hf train wrote")
    entries = [e for e in logs if isinstance(e, dict)]
    records = records_from_logs(entries)
    if not records:
        raise ValueError(f"{what}: {path} logs no entropy: none of its {len(entries)} log entries has "
                         f"{' or '.join(repr(k) for k in ENTROPY_KEYS)}; train with TRL's GRPOTrainer (it logs "
                         "'entropy') or HEALGRPOTrainer")
    return RunLogs(path, kind, records, None if max_steps is None else int(max_steps), entropy_key(entries))


def _run_max_steps(folder: Path) -> int | None:
    """max_steps of the heal-hf run whose heal_run.json sits in `folder`, if any."""
    try:
        return int(json.loads((folder / RUN_FILE).read_text())["training"]["max_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_json(path: Path, what: str = "run") -> Any:
    """The parsed JSON of `path`; a one-line ValueError naming the file when it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{what}: {path} is not a text file; pass a {TRAINER_STATE_FILE} or {METRICS_FILE}") from None
    except ValueError as err:
        raise ValueError(f"{what}: {path} is not valid JSON ({error_line(err)}); the file is corrupt or cut "
                         "short (was the run killed while writing it?)") from None


def run_sources(folder: Path) -> list[Path]:
    """Files in an output folder that hold its logs: trainer_state.json, metrics.json, the newest checkpoint's state, the monitor's."""
    checkpoints = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
                   and (p / TRAINER_STATE_FILE).is_file()]
    found = [folder / TRAINER_STATE_FILE, folder / METRICS_FILE]
    if checkpoints:
        found.append(max(checkpoints, key=lambda p: int(p.name.split("-")[-1])) / TRAINER_STATE_FILE)
    found.append(folder / MONITOR_FILE)
    return [p for p in found if p.is_file()]


def read_run_logs(path: str | Path, what: str = "run") -> RunLogs:
    """The entropy dynamics of a run: a file (trainer_state.json, metrics.json, entropy_monitor.json) or an output folder.

    In a folder, of the files that read, the one reaching the latest step wins (on a
    tie, a trainer state, which has every logged key, before metrics.json, before the
    monitor's file); when none reads, the first one's error.
    """
    path = Path(path)
    if path.is_file():
        return parse_run_file(path, read_json(path, what), what)
    if not path.is_dir():
        raise ValueError(f"{what}: no such file or folder {path}; check the path")
    sources = run_sources(path)
    if not sources:
        raise ValueError(f"{what}: {path} has no {TRAINER_STATE_FILE}, {METRICS_FILE} or checkpoint-*/"
                         f"{TRAINER_STATE_FILE}; pass a Trainer output folder, a checkpoint-N folder or a heal-hf "
                         "train folder")
    runs, errors = [], []
    for source in sources:
        try:
            runs.append(parse_run_file(source, read_json(source, what), what))
        except ValueError as err:  # another file of the folder may still hold the logs
            errors.append(err)
    if not runs:
        raise errors[0]
    order = {"trainer_state": 0, "metrics": 1, "monitor": 2}
    return max(runs, key=lambda r: (r.last_step, -order[r.kind]))
