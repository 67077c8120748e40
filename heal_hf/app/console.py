"""What a run shows on the terminal: one progress bar; everything else it prints goes to its log file.

`output_to(log)` sends a run's stdout, stderr (warnings, tqdm bars, TRL's per-step log
dicts) and the Python loggers' stream handlers (transformers', datasets') to `log`, and
yields the terminal's stream for the bar `step_bar` draws. A pool sampled by another
model (`OtherModelWarning`) is said on both. `heal-hf demo`,
`replicate` and `train` all run through it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, TextIO

from ..data.model_identity import OtherModelWarning


@contextlib.contextmanager
def output_to(log: TextIO) -> Iterator[TextIO]:
    """Send what the body prints to `log` (see the module doc); yield the terminal (stderr as it was)."""
    terminal = sys.stderr
    streams = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
    loggers = [logging.getLogger(), *[lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger)]]
    moved = [(h, h.stream) for lg in loggers for h in lg.handlers
             if type(h) is logging.StreamHandler and id(h.stream) in streams]
    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        text = warnings.formatwarning(message, category, filename, lineno, line)
        log.write(text)
        if issubclass(category, OtherModelWarning):  # it names a fix the user should see now
            terminal.write(f"warning: {message}\n")

    for handler, _ in moved:
        handler.setStream(log)
    warnings.showwarning = showwarning
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield terminal
    finally:
        warnings.showwarning = show
        for handler, stream in moved:
            handler.setStream(stream)


def step_bar(name: str, total: int, stream: Any, after: str | None = "evaluating on the held-out problems") -> Any:
    """A TrainerCallback drawing one tqdm bar for a run's optimizer steps on `stream`; `after` is its last note."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class StepBar(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = tqdm(total=total, initial=state.global_step, desc=f"{name:<8}", unit="step", file=stream,
                            dynamic_ncols=True)

        def on_step_end(self, args, state, control, **kwargs):
            self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args, state, control, **kwargs):
            if after:
                self.bar.set_postfix_str(after)
            self.bar.close()

    return StepBar()


class RunLog(io.TextIOBase):
    """A run's log: holds what is written until its file can be opened (a run's folder is made after its checks)."""

    def __init__(self) -> None:
        self._held: io.StringIO | None = io.StringIO()
        self._file: TextIO | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        (self._file or self._held).write(text)
        return len(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def open_file(self, path: str | Path) -> None:
        """Append to `path` from now on, starting with what was held."""
        self._file = open(path, "a", encoding="utf-8")
        self._file.write(self._held.getvalue())
        self._held = None

    def held(self) -> str:
        """What was written before any file was opened ("" once one is)."""
        return "" if self._held is None else self._held.getvalue()

    def close(self) -> None:
        super().close()  # flushes first
        if self._file is not None:
            self._file.close()
