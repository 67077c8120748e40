"""`heal-hf diagnose PATH`: is a GRPO run's entropy collapsing? A short verdict and a PNG of its dynamics.

PATH is a heal-hf train folder, any TRL / transformers Trainer output folder or
checkpoint-N inside one, or one of their files (trainer_state.json, metrics.json,
entropy_monitor.json); `heal_hf.data.run_logs` reads it. The verdict is
`heal_hf.core.collapse.collapse_report` (what EntropyMonitor says during training):
collapsed or not and since when, the forecast to the run's last step, the share of
zero-variance GRPO groups, the reward-entropy fit. The figure: entropy, retention with
the fitted forecast, and the zero-variance and high-entropy shares, per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.collapse import RETENTION_THRESHOLD, CollapseReport, collapse_report, running_median
from ..data.files import write_figure_atomic
from ..data.run_logs import RunLogs, read_run_logs

FIGURE_FILE = "entropy_dynamics.png"
"""The figure's default name: in the folder given, or beside the file given."""


@dataclass
class Diagnosis:
    """A run's logs, the report on them and where the figure went (None: not drawn)."""

    run: RunLogs
    report: CollapseReport
    figure: Path | None

    def text(self) -> str:
        """The printed verdict: which file was read, then the report's lines."""
        run = self.run
        of = f" of {run.max_steps}" if run.max_steps else ""
        head = f"run: {run.source} ({len(run.records)} logged steps with an entropy, last step {run.last_step}{of})"
        tail = [f"figure: {self.figure}"] if self.figure is not None else []
        return "\n".join([head, *self.report.lines(), *tail])


def report_for(run: RunLogs, threshold: float = RETENTION_THRESHOLD) -> CollapseReport:
    """The collapse report of a run's records, forecast to its max_steps when known."""
    return collapse_report(
        run.column("step"), run.column("retention"), end_step=run.max_steps, threshold=threshold,
        entropy=run.column("entropy"), reward=run.column("reward"), zero_std=run.column("frac_reward_zero_std"),
    )


def diagnose(path: str | Path, threshold: float = RETENTION_THRESHOLD, figure: str | Path | None = "") -> Diagnosis:
    """Read a run, judge it, draw it. `figure`: "" = FIGURE_FILE in the folder given (or beside the file), None = none."""
    run = read_run_logs(path)
    report = report_for(run, threshold)
    if figure == "":
        figure = (Path(path) if Path(path).is_dir() else run.source.parent) / FIGURE_FILE
    drawn = plot_dynamics(run, report, figure) if figure is not None else None
    return Diagnosis(run, report, drawn)


def _series(run: RunLogs, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one StepRecord field where it was logged."""
    pairs = np.array([(r.step, getattr(r, name)) for r in run.records if getattr(r, name) is not None], float)
    return (pairs[:, 0], pairs[:, 1]) if len(pairs) else (np.zeros(0), np.zeros(0))


def plot_dynamics(run: RunLogs, report: CollapseReport, path: str | Path) -> Path:
    """Save the dynamics figure (PNG or any matplotlib format by suffix) atomically; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = [(name, label) for name, label in (("frac_reward_zero_std", "zero-variance groups"),
                                                ("high_entropy_share", "high-entropy tokens"))
              if len(_series(run, name)[0])]
    fig, axes = plt.subplots(2 + bool(shares), 1, figsize=(9, 8 if shares else 5.5), sharex=True)
    domains = (("entropy", run.entropy_label, "tab:red"), ("general_entropy", "general", "tab:blue"))
    for name, label, color in domains:
        steps, values = _series(run, name)
        if len(steps):
            axes[0].plot(steps, values, color=color, alpha=0.3, lw=1)
            axes[0].plot(steps, running_median(values), color=color, lw=2, label=label)
    axes[0].set(title=f"{report.status}: mean token entropy per step", ylabel="nats")

    steps, retention = _series(run, "retention")
    ax = axes[1]
    ax.plot(steps, retention, color="tab:red", alpha=0.3, lw=1)
    ax.plot(steps, running_median(retention), color="tab:red", lw=2, label="retention (running median)")
    ax.axhline(report.threshold, color="black", ls=":", lw=1, label=f"threshold {report.threshold:g}")
    f = report.forecast
    if f is not None:
        line = np.linspace(f.first_step, report.end_step, 100)
        ax.plot(line, [f.retention_at(t) for t in line], "--", color="tab:purple",
                label=f"forecast: {f.percent_per_step:+.2f}%/step")
        marker = f.collapsed_since if f.collapsed_since is not None else f.crossing_step
        if marker is not None and marker <= report.end_step:
            ax.axvline(marker, color="tab:purple", lw=1, alpha=0.6)
    ax.set(title="Entropy retention (entropy / first step's)", ylabel="retention")
    for name, label in shares:
        axes[2].plot(*_series(run, name), lw=1.5, label=label)
    if shares:
        axes[2].set(title="Shares per step", ylabel="share", ylim=(-0.02, 1.02))
    axes[-1].set_xlabel("optimizer step")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    written = write_figure_atomic(fig, path)
    plt.close(fig)
    return written
