"""Entropy collapse of an RL run: fit its entropy retention over training steps, forecast, judge.

Retention r_t = H_t / H_0: the mean token entropy (nats) of step t's completions over
step 0's, the number HEAL logs per domain. Early in RLVR, entropy falls roughly
exponentially in the step ("The Entropy Mechanism of Reinforcement Learning for
Reasoning Language Models", Cui et al. 2025), so the forecast fits

    log r_t = a + b t

by Theil-Sen (the median of the pairwise slopes, then the median intercept): one step's
entropy comes from a few prompts and is noisy, and a median shrugs off single outliers.
It predicts r(t) = exp(a + b t), which crosses the threshold theta at
t* = (log theta - a) / b when b < 0. The run "has collapsed" once its smoothed retention
(the median of the last SMOOTHING points) is at or below theta, "is collapsing" when the
line reaches theta by the run's last step and the fall is significant (the upper end of
Sen's 95% confidence interval of b is below 0), so that a noisy flat start does not
raise an alarm. A monitor warns once, when CONFIRM_LOGS consecutive logged steps say
collapsing or collapsed (`CollapseAlarm`).

The same paper finds reward and entropy tied by R = -a_R exp(H) + b_R; fitted by least
squares over the logged steps, b_R - a_R is the reward the run tends to when its
entropy is spent (H -> 0): the ceiling that more of the same training buys.

Numbers only (numpy): the TRL callback, `heal-hf diagnose` and the Space all call
`collapse_report`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

RETENTION_THRESHOLD = 0.6
"""Retention at or below which a run counts as collapsed (the replication's criterion)."""
MIN_POINTS = 10
"""Logged steps needed before the forecast says anything."""
SMOOTHING = 5
"""Points in the running median behind "retention now" and "collapsed since"."""
HYSTERESIS = 0.1
"""After the first step at or below the threshold, rises of less than this (relative) above it do not end a collapse."""
MAX_FIT_POINTS = 100
"""Theil-Sen costs O(n^2): longer histories are thinned to this many evenly spaced points."""
ZERO_STD_ALERT = 0.5
"""Share of GRPO groups with one reward for every completion above which the report says so."""
FIT_R2_MIN = 0.3
"""R^2 below which the reward-entropy fit is reported as no clear relation."""
STATUSES = ("too early", "stable", "collapsing", "collapsed")
ALARM_STATUSES = ("collapsing", "collapsed")
CONFIRM_LOGS = 3
"""Consecutive logged steps with an alarm status before the one warning: one noisy forecast does not warn."""

_Z95 = 1.959964  # two-sided 95% normal quantile
_TINY = 1e-12  # retention floor before the log: an all-zero-entropy step stays finite


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(intercept, slope, slope_high) of the Theil-Sen line through (x, y).

    The slope is the median pairwise slope, the intercept the median of y - slope * x;
    slope_high is the upper end of Sen's 95% confidence interval of the slope (from
    Kendall's statistic; ties ignored).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) > MAX_FIT_POINTS:
        keep = np.unique(np.linspace(0, len(x) - 1, MAX_FIT_POINTS).round().astype(int))
        x, y = x[keep], y[keep]
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    distinct = dx != 0
    if not distinct.any():
        return float(np.median(y)), 0.0, 0.0
    slopes = np.sort((y[j] - y[i])[distinct] / dx[distinct])
    n, pairs = len(x), len(slopes)
    half_width = _Z95 * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    slope = float(np.median(slopes))
    high = float(slopes[min(pairs - 1, int(math.ceil((pairs + half_width) / 2)))])
    return float(np.median(y - slope * x)), slope, high


def running_median(values: np.ndarray, window: int = SMOOTHING) -> np.ndarray:
    """Median of each point and the window - 1 before it (fewer at the start)."""
    values = np.asarray(values, float)
    head = [np.median(values[: k + 1]) for k in range(min(window - 1, len(values)))]
    if len(values) < window:
        return np.array(head)
    return np.concatenate([head, np.median(np.lib.stride_tricks.sliding_window_view(values, window), axis=1)])


@dataclass(frozen=True)
class CollapseForecast:
    """The fitted retention trajectory of one run: log r = intercept + slope * step.

    `slope_high` is the upper end of the slope's 95% confidence interval (below 0: the
    fall is real). `retention_now` is the running median at the last point;
    `collapsed_since` the first step at or below the threshold of the final stretch
    where the running median stays under threshold * (1 + HYSTERESIS) (None: not
    collapsed now); `crossing_step` the step where the fitted line reaches the
    threshold (None when the line does not fall).
    """

    threshold: float
    points: int
    first_step: int
    last_step: int
    intercept: float
    slope: float
    slope_high: float
    retention_now: float
    collapsed_since: int | None
    crossing_step: float | None

    def retention_at(self, step: float) -> float:
        """The fitted retention at `step` (a forecast beyond `last_step`)."""
        return math.exp(min(self.intercept + self.slope * step, 700.0))

    @property
    def percent_per_step(self) -> float:
        """The fitted change of entropy per step, in percent (negative: falling)."""
        return 100.0 * math.expm1(self.slope)


def forecast_collapse(
    steps: Sequence[float],
    retention: Sequence[float],
    threshold: float = RETENTION_THRESHOLD,
    min_points: int = MIN_POINTS,
) -> CollapseForecast | None:
    """Fit log retention against step (Theil-Sen); None with fewer than `min_points` finite points.

    Args:
        steps: (n,) optimizer steps of the logged points, increasing.
        retention: (n,) entropy retention at those steps (entropy / step-0 entropy).
        threshold: retention counted as collapsed.
        min_points: fewest finite points that give a forecast.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: expected a retention in (0, 1), got {threshold!r}")
    t, r = _floats(steps), _floats(retention)
    if t.shape != r.shape or t.ndim != 1:
        raise ValueError(f"steps, retention: expected two 1-D sequences of one length, got {t.shape} and {r.shape}")
    finite = np.isfinite(t) & np.isfinite(r)
    t, r = t[finite], r[finite]
    if len(t) < max(2, min_points):
        return None
    intercept, slope, slope_high = theil_sen(t, np.log(np.maximum(r, _TINY)))
    smooth = running_median(r)
    collapsed_since = None
    if smooth[-1] <= threshold:
        above = np.nonzero(smooth > threshold * (1 + HYSTERESIS))[0]
        after = np.arange(len(smooth)) > (above[-1] if len(above) else -1)
        collapsed_since = int(t[np.nonzero(after & (smooth <= threshold))[0][0]])
    crossing = None
    if slope < 0:
        crossing = max((math.log(threshold) - intercept) / slope, float(t[0]))
    return CollapseForecast(
        threshold=threshold, points=len(t), first_step=int(t[0]), last_step=int(t[-1]), intercept=intercept,
        slope=slope, slope_high=slope_high, retention_now=float(smooth[-1]), collapsed_since=collapsed_since,
        crossing_step=crossing,
    )


@dataclass(frozen=True)
class RewardEntropyFit:
    """Least-squares R = -a exp(H) + b over the logged steps (H in nats); r2 is its R^2."""

    a: float
    b: float
    r2: float
    points: int

    @property
    def reward_at_zero_entropy(self) -> float:
        """The reward the fit predicts once entropy is spent (H = 0): b - a."""
        return self.b - self.a


def fit_reward_entropy(
    entropy: Sequence[float], reward: Sequence[float], min_points: int = MIN_POINTS
) -> RewardEntropyFit | None:
    """Fit R = -a exp(H) + b; None with fewer than `min_points` finite pairs or no spread in H."""
    h, r = np.asarray(entropy, float), np.asarray(reward, float)
    finite = np.isfinite(h) & np.isfinite(r)
    h, r = h[finite], r[finite]
    if len(h) < max(3, min_points):
        return None
    x = np.exp(np.minimum(h, 700.0))
    if np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        return None
    dx = x - x.mean()
    slope = float((dx * (r - r.mean())).sum() / (dx * dx).sum())
    b = float(r.mean() - slope * x.mean())
    residual = float(((r - (slope * x + b)) ** 2).sum())
    total = float(((r - r.mean()) ** 2).sum())
    return RewardEntropyFit(a=float(-slope), b=float(b), r2=1.0 - residual / total if total > 0 else 0.0,
                            points=len(h))


@dataclass(frozen=True)
class CollapseReport:
    """What the monitor, diagnose and the Space say about a run: a status and the numbers behind it.

    `status` is one of STATUSES; `end_step` the step the forecast looks ahead to (the
    run's max_steps when known, else its last logged step); `zero_std` the mean share
    of zero-variance GRPO groups over the last SMOOTHING logged steps (None: not logged).
    """

    status: str
    threshold: float
    end_step: int
    forecast: CollapseForecast | None
    reward_fit: RewardEntropyFit | None
    zero_std: float | None

    @property
    def retention_at_end(self) -> float | None:
        return None if self.forecast is None else self.forecast.retention_at(self.end_step)

    def lines(self) -> list[str]:
        """The verdict in a few short lines: status, since when, forecast, zero-variance groups, reward fit."""
        f, theta = self.forecast, self.threshold
        if f is None:
            out = [f"too early: fewer than {MIN_POINTS} logged steps with an entropy; no forecast yet"]
        else:
            if self.status == "collapsed":
                head = f"collapsed: entropy retention {f.retention_now:.2f} <= {theta:g} since step {f.collapsed_since}"
            elif self.status == "collapsing":
                head = (f"collapsing: entropy retention {f.retention_now:.2f} now, forecast {self.retention_at_end:.2f} "
                        f"at step {self.end_step} (crosses {theta:g} at step {f.crossing_step:.0f})")
            else:
                head = (f"not collapsing: entropy retention {f.retention_now:.2f} now, forecast "
                        f"{self.retention_at_end:.2f} at step {self.end_step} (threshold {theta:g})")
            out = [head, f"fit: entropy {f.percent_per_step:+.2f}% per step over {f.points} logged steps "
                         f"(steps {f.first_step}-{f.last_step}, Theil-Sen on log retention)"]
        if self.zero_std is not None:
            note = " (most groups give GRPO no signal)" if self.zero_std > ZERO_STD_ALERT else ""
            out.append(f"zero-variance groups: {100 * self.zero_std:.0f}% of recent GRPO groups had one reward "
                       f"for every completion{note}")
        fit = self.reward_fit
        if fit is not None and fit.r2 < FIT_R2_MIN:
            out.append(f"reward vs entropy: no clear R = -a exp(H) + b relation (R^2 {fit.r2:.2f})")
        elif fit is not None:
            out.append(f"reward vs entropy: R = {-fit.a:+.3g} exp(H) {fit.b:+.3g} (R^2 {fit.r2:.2f}): "
                       f"about {fit.reward_at_zero_entropy:.3g} once entropy is spent")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields, the fits as dicts, and the derived numbers."""
        out = asdict(self)
        out["retention_at_end"] = self.retention_at_end
        if self.forecast is not None:
            out["forecast"]["percent_per_step"] = self.forecast.percent_per_step
        if self.reward_fit is not None:
            out["reward_fit"]["reward_at_zero_entropy"] = self.reward_fit.reward_at_zero_entropy
        out["lines"] = self.lines()
        return out


def collapse_report(
    steps: Sequence[float],
    retention: Sequence[float],
    end_step: int | None = None,
    threshold: float = RETENTION_THRESHOLD,
    entropy: Sequence[float] | None = None,
    reward: Sequence[float] | None = None,
    zero_std: Sequence[float | None] | None = None,
    min_points: int = MIN_POINTS,
) -> CollapseReport:
    """Forecast, judge and summarize one run from its per-step numbers (all (n,), NaN or None = not logged).

    `end_step`: the step to forecast to (default: the last logged step); `entropy` and
    `reward` (nats, mean reward) feed the reward-entropy fit; `zero_std` is TRL's
    frac_reward_zero_std.
    """
    forecast = forecast_collapse(steps, retention, threshold, min_points)
    known = _floats(steps)
    last = int(np.nanmax(known)) if np.isfinite(known).any() else 0
    end = max(last, int(end_step)) if end_step is not None else last
    if forecast is None:
        status = "too early"
    elif forecast.collapsed_since is not None:
        status = "collapsed"
    elif forecast.retention_at(end) <= threshold and forecast.slope_high < 0:
        status = "collapsing"  # the line reaches the threshold, and its fall is no accident of the noise
    else:
        status = "stable"
    fit = None
    if entropy is not None and reward is not None:
        fit = fit_reward_entropy(_floats(entropy), _floats(reward), min_points)
    recent = None
    if zero_std is not None:
        known = _floats(zero_std)
        known = known[np.isfinite(known)][-SMOOTHING:]
        recent = float(known.mean()) if len(known) else None
    return CollapseReport(status=status, threshold=threshold, end_step=end, forecast=forecast, reward_fit=fit,
                          zero_std=recent)


class CollapseAlarm:
    """Raises once: at the first update that makes CONFIRM_LOGS consecutive alarm statuses."""

    def __init__(self, confirm: int = CONFIRM_LOGS) -> None:
        self.confirm, self.run, self.raised = confirm, 0, False

    def update(self, status: str) -> bool:
        """Feed one logged step's status; True exactly once, when the alarm goes off."""
        self.run = self.run + 1 if status in ALARM_STATUSES else 0
        if self.raised or self.run < self.confirm:
            return False
        self.raised = True
        return True


def _floats(values: Sequence[float | None]) -> np.ndarray:
    """A float array of `values`, None read as NaN."""
    try:
        return np.asarray(values, dtype=float)
    except TypeError:  # a None among them
        return np.array([math.nan if v is None else float(v) for v in values], dtype=float)
