"""EntropyMonitor: see entropy collapse coming in any GRPO run, from what the trainer already computes.

    trainer.add_callback(EntropyMonitor())      # or GRPOTrainer(..., callbacks=[EntropyMonitor()])

A transformers TrainerCallback for TRL's GRPOTrainer, HEALGRPOTrainer or any subclass,
with any generator (transformers, paged, vLLM): it reads the numbers from the trainer's
logs, never from the generator. Per logged step (a `heal_hf.data.run_logs.StepRecord`):
target and general entropy (HEAL's `heal/entropy/<domain>`; on plain GRPO, TRL's
`entropy`, the mean over every completion token), retention against the first logged
step, `frac_reward_zero_std`, the reward, EDA's distance (HEAL's `heal/eda_distance`, or
the monitor's own against `reference=`), and the share of high-entropy tokens.

TRL logs only the mean entropy, but its training forward already computes every
completion token's entropy (the fused LM head returns `entropy` and `label_mask`). A
forward hook on the model reads them off that output during the gradient forward of
each micro-batch (no extra forward, no logits), counts the tokens above a threshold on
the device and syncs once per log. The threshold is the `high_entropy_quantile` (80th
percentile) of the first batch's tokens, or `reference.forking_threshold` with a
reference, or `high_entropy_threshold` nats; the share therefore starts near 0.2 and
falls as the policy sharpens. A model whose forward returns no `entropy` (not patched by
TRL) leaves it None. Counts are this process's tokens.

Forecast and verdict are `heal_hf.core.collapse.collapse_report`: Theil-Sen on log
retention vs step, extrapolated to `max_steps`. Once the run has collapsed or is
forecast to by its last step, on CONFIRM_LOGS (3) logged steps in a row, one warning
line with advice, once per run (a resumed run remembers it). The records
and the report go to `<output_dir>/entropy_monitor.json` (atomic write) at every
checkpoint save, at the end, when the warning fires, and at most every
`write_every_s` seconds between; the hook's numbers also go into the trainer's log
history (MONITOR_KEYS), so trainer_state.json and `heal-hf diagnose` have them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from ..core.collapse import (
    CONFIRM_LOGS,
    MIN_POINTS,
    RETENTION_THRESHOLD,
    CollapseAlarm,
    CollapseReport,
    collapse_report,
)
from ..core.eda import EDAReference, EDAReward
from ..core.profiles import DEFAULT_BINS, FORKING_QUANTILE
from ..data.files import write_json_atomic
from ..data.run_logs import (
    EDA_DISTANCE_KEY,
    ENTROPY_KEYS,
    HIGH_ENTROPY_KEY,
    MONITOR_FILE,
    MONITOR_FORMAT,
    RecordBuilder,
    StepRecord,
    entropy_key,
)
from .reward import as_pool_reference

logger = logging.getLogger(__name__)

ADVICE = (
    "lower the learning rate, mix general-domain problems into the training set, train with HEAL "
    "(heal_hf.trl.HEALGRPOTrainer: hybrid data + the EDA reward), or restrict the policy gradient to "
    "high-entropy tokens with TRL's top_entropy_quantile=0.2"
)
_SERIES = ("step", "retention", "entropy", "reward", "frac_reward_zero_std")
_QUANTILE_SAMPLE = 1_000_000  # torch.quantile's input limit is 16M; a million tokens pin a percentile


class EntropyMonitor(TrainerCallback):
    """Records entropy dynamics per logged step, forecasts collapse, warns once, writes entropy_monitor.json.

    Args:
        threshold: retention (entropy / step-0 entropy) at or below which the run counts as collapsed.
        min_points: logged steps before the first forecast.
        high_entropy_quantile: quantile of the first batch's token entropies above which a
            token is "high-entropy" (when neither `high_entropy_threshold` nor `reference` is given).
        high_entropy_threshold: a fixed threshold in nats instead.
        reference: a general-domain reference for EDA's distance: an `EDAReference`, a
            general-entropy pool (Dataset, folder, Hub id, "bundled"). Not needed with
            HEALGRPOTrainer, which logs its own distance. Costs a device-to-CPU copy of the
            micro-batch's entropies and a profile per completion.
        warn: log the one warning line.
        confirm: consecutive logged steps that must say collapsing or collapsed before it warns.
        write_every_s: most seconds between two writes of the JSON file while training.
        file_name: the JSON file's name in `args.output_dir`.

    After training, `records` (list of StepRecord) and `report` (CollapseReport) hold the result.
    """

    def __init__(
        self,
        threshold: float = RETENTION_THRESHOLD,
        min_points: int = MIN_POINTS,
        high_entropy_quantile: float = FORKING_QUANTILE,
        high_entropy_threshold: float | None = None,
        reference: Any = None,
        warn: bool = True,
        confirm: int = CONFIRM_LOGS,
        write_every_s: float = 30.0,
        file_name: str = MONITOR_FILE,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold: expected a retention in (0, 1), got {threshold!r}")
        if not 0.0 < high_entropy_quantile < 1.0:
            raise ValueError(f"high_entropy_quantile: expected a number in (0, 1), got {high_entropy_quantile!r}")
        if high_entropy_threshold is not None and high_entropy_threshold < 0:
            raise ValueError(f"high_entropy_threshold: expected nats >= 0, got {high_entropy_threshold!r}")
        if confirm < 1:
            raise ValueError(f"confirm: expected at least 1 logged step, got {confirm!r}")
        self.threshold, self.min_points, self.warn, self.confirm = threshold, min_points, warn, confirm
        self.high_entropy_quantile, self.write_every_s, self.file_name = high_entropy_quantile, write_every_s, file_name
        self._fixed_threshold = high_entropy_threshold
        self._reference_source = reference
        self.records: list[StepRecord] = []
        self._columns = np.zeros((0, len(_SERIES)))
        self.report: CollapseReport | None = None
        self.warned_at_step: int | None = None
        self._reset_run()

    def _reset_run(self) -> None:
        self.high_entropy_threshold = self._fixed_threshold
        self._eda: EDAReward | None = None
        self._own_eda = True  # off once the trainer logs its own EDA distance
        self._hook = None
        self._above: torch.Tensor | None = None
        self._tokens: torch.Tensor | None = None
        self._eda_sum, self._eda_count = 0.0, 0
        self._builder = RecordBuilder()
        self._alarm = CollapseAlarm(self.confirm)
        self._last_write = 0.0

    # --- the hook: per-token entropies of TRL's own training forward ------------------

    def _on_forward(self, module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        entropy, mask = getattr(output, "entropy", None), getattr(output, "label_mask", None)
        # Only the gradient forward of training: not generation, not the no-grad scoring or reference passes.
        if entropy is None or mask is None or not module.training or not torch.is_grad_enabled():
            return
        with torch.no_grad():
            entropy, mask = entropy.detach(), mask.bool()
            if self.high_entropy_threshold is None:
                tokens = entropy[mask].float()
                if tokens.numel() == 0:
                    return
                if tokens.numel() > _QUANTILE_SAMPLE:
                    tokens = tokens[torch.linspace(0, tokens.numel() - 1, _QUANTILE_SAMPLE, device=tokens.device).long()]
                self.high_entropy_threshold = float(torch.quantile(tokens, self.high_entropy_quantile))
            above = ((entropy > self.high_entropy_threshold) & mask).sum()
            count = mask.sum()
            self._above = above if self._above is None else self._above + above
            self._tokens = count if self._tokens is None else self._tokens + count
            if self._eda is not None and self._own_eda:
                distance = self._eda.score(entropy.float().cpu(), mask.cpu()).distance
                self._eda_sum += float(distance.sum())
                self._eda_count += len(distance)

    def _take_hook_numbers(self) -> dict[str, float]:
        """The hook's numbers since the last log, as log keys; resets them."""
        out = {}
        if self._tokens is not None and int(self._tokens) > 0:
            out[HIGH_ENTROPY_KEY] = float(self._above) / float(self._tokens)
        if self._eda_count:
            out[EDA_DISTANCE_KEY] = self._eda_sum / self._eda_count
        self._above = self._tokens = None
        self._eda_sum, self._eda_count = 0.0, 0
        return out

    # --- callback events ---------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        self._remove_hook()  # a train() that raised left it attached
        self._reset_run()
        previous = self._previous_file(args) if state.global_step > 0 else {}
        warned = previous.get("warned_at_step")
        self.warned_at_step = warned if isinstance(warned, int) and warned <= state.global_step else None
        if self.high_entropy_threshold is None:
            self.high_entropy_threshold = previous.get("settings", {}).get("high_entropy_threshold")
        if self._reference_source is not None:
            ref = self._reference_source
            bins = ref.bins if isinstance(ref, EDAReference) else DEFAULT_BINS
            tokenizer = getattr(processing_class, "tokenizer", processing_class)  # a processor wraps one
            self._eda = EDAReward(as_pool_reference(ref, bins=bins, tokenizer=tokenizer))
            if self._fixed_threshold is None:
                self.high_entropy_threshold = self._eda.reference.forking_threshold
        # A resumed run: the records so far come back from the restored log history.
        self._builder = RecordBuilder(entropy_key(state.log_history))
        self.records = []
        self._columns = np.zeros((0, len(_SERIES)))
        for record in map(self._builder.add, state.log_history):
            if record is not None:
                self._add(record)
        if isinstance(model, torch.nn.Module):
            self._hook = model.register_forward_hook(self._on_forward, with_kwargs=True)
        if self.records:
            self._update(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not any(k in logs for k in ENTROPY_KEYS):
            return  # evaluation logs, the end-of-training summary
        extra = self._take_hook_numbers()
        if "heal/eda_distance" in logs:
            self._own_eda = False
        if extra:
            logs.update(extra)  # later callbacks (printers, trackers) see them
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(extra)  # so trainer_state.json keeps them
        record = self._builder.add({**logs, "step": state.global_step})
        if record is None:
            return
        self._add(record)
        self._update(state)
        alarm = self._alarm.update(self.report.status)
        if alarm and self.warn and self.warned_at_step is None and state.is_world_process_zero:
            self.warned_at_step = state.global_step
            logger.warning(f"EntropyMonitor: step {state.global_step}: {self.report.lines()[0]}; {ADVICE} "
                           f"(details: {Path(args.output_dir) / self.file_name})")
            self._write(args, state)
        elif time.monotonic() - self._last_write >= self.write_every_s:
            self._write(args, state)

    def on_save(self, args, state, control, **kwargs):
        self._write(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self._remove_hook()
        self._write(args, state)

    def _remove_hook(self) -> None:
        if getattr(self, "_hook", None) is not None:
            self._hook.remove()
        self._hook = None

    # --- forecast and file ---------------------------------------------------------

    def _add(self, record: StepRecord) -> None:
        self.records.append(record)
        n = len(self.records)
        if n > len(self._columns):  # float columns (NaN = not logged), grown by doubling: O(1) per log
            grown = np.full((2 * n, len(_SERIES)), np.nan)
            grown[: n - 1] = self._columns[: n - 1]
            self._columns = grown
        self._columns[n - 1] = [math.nan if getattr(record, name) is None else getattr(record, name) for name in _SERIES]

    def _update(self, state) -> None:
        s = dict(zip(_SERIES, self._columns[: len(self.records)].T))
        self.report = collapse_report(
            s["step"], s["retention"], end_step=state.max_steps or None, threshold=self.threshold,
            entropy=s["entropy"], reward=s["reward"], zero_std=s["frac_reward_zero_std"], min_points=self.min_points,
        )

    def to_dict(self, max_steps: int | None = None, global_step: int | None = None) -> dict[str, Any]:
        """The JSON file's content (schema in docs/monitor.md)."""
        return {
            "format": MONITOR_FORMAT,
            "settings": {
                "threshold": self.threshold, "min_points": self.min_points, "confirm": self.confirm,
                "high_entropy_quantile": self.high_entropy_quantile,
                "high_entropy_threshold": self.high_entropy_threshold,
                "reference": self._eda is not None,
            },
            "entropy_key": self._builder.key,
            "max_steps": max_steps,
            "global_step": global_step,
            "warned_at_step": self.warned_at_step,
            "steps": [r.to_dict() for r in self.records],
            "report": None if self.report is None else self.report.to_dict(),
        }

    def _write(self, args, state) -> None:
        if not state.is_world_process_zero or args.output_dir is None:
            return
        folder = Path(args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / self.file_name, self.to_dict(state.max_steps, state.global_step))
        self._last_write = time.monotonic()

    def _previous_file(self, args) -> dict[str, Any]:
        """The JSON a resumed run wrote before (its warning and threshold carry over); {} when unreadable."""
        try:
            data = json.loads((Path(args.output_dir) / self.file_name).read_text())
        except (OSError, ValueError, TypeError):
            return {}
        return data if isinstance(data, dict) and data.get("format") == MONITOR_FORMAT else {}
