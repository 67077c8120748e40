"""How well EntropyMonitor's forecast, made at 25% of a run, predicts the run's end: measured on replication runs.

    python benchmarks/monitor_forecast.py RESULTS_DIR [RESULTS_DIR ...] [--cut 0.25]
        [--older RESULTS_DIR ...] [--out benchmarks/results/monitor-forecast]

Each RESULTS_DIR holds `heal-hf replicate` results.json files (searched recursively);
it is one group of the cross-validation (a results folder is one toy world / config).
Every run's logged target entropy (`entropy_curve`, (step, nats)) is cut at `--cut` of
its steps; from that history alone, with the monitor's own code
(`heal_hf.core.collapse.collapse_report`, retention = entropy / first logged entropy, as
HEAL logs it), each rule predicts two outcomes of the finished run:
(a) collapsed: its train retention (mean of the last 10% of logged retentions) <= 0.6;
(b) below base: its held-out greedy accuracy < the base model's.

Rules:
- monitor's warning: what EntropyMonitor does with its defaults, nothing fitted: it
  warns once, when 3 logged steps in a row have the verdict collapsing (the line reaches
  0.6 by the last step, with a significant fall) or collapsed (the smoothed retention is
  <= 0.6); the rule is "it warned at some step up to the cut";
- forecast, fitted: forecast retention at the last step <= t (for (b): <= lo or >= hi,
  i.e. collapse or runaway entropy), t / lo / hi fitted;
- naive: retention at the cut (running median of the last 5 points) < x, x fitted;
- majority: the training groups' majority outcome.
Fitted numbers maximize accuracy on the other groups only (leave one group out), so each
run is predicted by parameters not fitted on it; a second table leaves one task family
out instead. Runs with identical entropy curves (the same run in two folders, or arms
that ran bit-identically) count once, in the first folder given. `--older` folders
(other model sizes / step budgets) form extra groups for an "all runs" table.
A last table says how the warning does when it may come later (by 10%, 25%, 50% or the
end of the run). Writes README-ready tables to stdout and, with --out, `forecast.md` and
`runs.json` (every run's outcomes, warning step and forecast).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heal_hf.core.collapse import MIN_POINTS, RETENTION_THRESHOLD, CollapseAlarm, collapse_report
from heal_hf.data.files import write_json_atomic, write_text_atomic

COLLAPSED = "collapsed"
BELOW = "below base"


@dataclass
class Run:
    group: str
    family: str
    arm: str
    seed: int
    steps: int
    outcome: dict[str, bool]
    warned_at: int | None  # the step at which the monitor, fed the whole run log by log, warned (None: never)
    retention_at_end: float  # forecast made at the cut for the last step (nan: too few points)
    retention_now: float  # running median of the retention at the cut


def warning_step(steps: np.ndarray, retention: np.ndarray, end_step: int) -> int | None:
    """The step at which EntropyMonitor (defaults) would warn, fed these logs one by one; None: never."""
    alarm = CollapseAlarm()
    for n in range(MIN_POINTS, len(steps) + 1):
        if alarm.update(collapse_report(steps[:n], retention[:n], end_step=end_step).status):
            return int(steps[n - 1])
    return None


def load_runs(folders: list[Path], cut: float) -> list[Run]:
    seen: set[tuple] = set()
    runs = []
    for folder in folders:
        files = sorted(folder.rglob("results.json"))
        if not files:
            sys.exit(f"monitor_forecast: no results.json under {folder}")
        for path in files:
            data = json.loads(path.read_text())
            for r in data["runs"]:
                curve = np.array(r["entropy_curve"], float)
                key = tuple(np.round(curve[:, 1], 9))
                if key in seen or len(curve) == 0:
                    continue
                seen.add(key)
                steps, retention = curve[:, 0], curve[:, 1] / curve[0, 1]  # retention as HEAL logs it
                seen_by_cut = steps <= cut * r["steps"]
                report = collapse_report(steps[seen_by_cut], retention[seen_by_cut], end_step=r["steps"])
                f = report.forecast
                runs.append(Run(
                    group=folder.name, family=r["family"], arm=r["arm"], seed=r["seed"], steps=r["steps"],
                    outcome={COLLAPSED: r["train_entropy_retention"] <= RETENTION_THRESHOLD,
                             BELOW: r["greedy_accuracy"] < data["base"][r["family"]]["greedy_accuracy"]},
                    warned_at=warning_step(steps, retention, r["steps"]),
                    retention_at_end=np.nan if f is None else report.retention_at_end,
                    retention_now=np.nan if f is None else f.retention_now,
                ))
    return runs


def _candidates(x: np.ndarray) -> np.ndarray:
    x = x[np.isfinite(x)]
    mids = (np.sort(x)[1:] + np.sort(x)[:-1]) / 2
    return np.unique(np.concatenate([[-np.inf, np.inf], mids]))


def fit_below(x: np.ndarray, y: np.ndarray) -> float:
    """The t maximizing the accuracy of "x < t" (ties: the smallest such t)."""
    cands = _candidates(x)
    return float(cands[int(np.argmax([np.mean((x < t) == y) for t in cands]))])


def fit_band(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(lo, hi) maximizing the accuracy of "x <= lo or x >= hi"."""
    cands = _candidates(x)
    best, pick = -1.0, (-np.inf, np.inf)
    for lo in cands:
        for hi in cands[cands >= lo]:
            acc = np.mean(((x <= lo) | (x >= hi)) == y)
            if acc > best:
                best, pick = acc, (float(lo), float(hi))
    return pick


def predictions(runs: list[Run], outcome: str, by: str, cut: float) -> dict[str, np.ndarray]:
    """Out-of-group predictions of every rule for one outcome; groups by results folder or family."""
    groups = np.array([getattr(r, by) for r in runs])
    y = np.array([r.outcome[outcome] for r in runs])
    end = np.array([r.retention_at_end for r in runs])
    now = np.array([r.retention_now for r in runs])
    out = {"monitor's warning": np.array([r.warned_at is not None and r.warned_at <= cut * r.steps for r in runs]),
           "forecast, fitted": np.zeros(len(runs), bool), "naive": np.zeros(len(runs), bool),
           "majority": np.zeros(len(runs), bool)}
    for g in np.unique(groups):
        train, test = groups != g, groups == g
        if outcome == COLLAPSED:
            out["forecast, fitted"][test] = end[test] < fit_below(end[train], y[train])
        else:
            lo, hi = fit_band(end[train], y[train])
            out["forecast, fitted"][test] = (end[test] <= lo) | (end[test] >= hi)
        out["naive"][test] = now[test] < fit_below(now[train], y[train])
        out["majority"][test] = y[train].mean() >= 0.5
    return out


def scores(pred: np.ndarray, y: np.ndarray) -> str:
    tp = int((pred & y).sum())
    precision = f"{tp / pred.sum():.2f}" if pred.sum() else "n/a"
    return f"{np.mean(pred == y):.2f} | {precision} | {tp / y.sum():.2f}" if y.sum() else "n/a"


def table(runs: list[Run], by: str, cut: float) -> str:
    rows = ["| outcome | positives | rule | accuracy | precision | recall |", "|---|---|---|---|---|---|"]
    for outcome in (COLLAPSED, BELOW):
        y = np.array([r.outcome[outcome] for r in runs])
        for rule, pred in predictions(runs, outcome, by, cut).items():
            rows.append(f"| {outcome} | {int(y.sum())}/{len(y)} | {rule} | {scores(pred, y)} |")
    return "\n".join(rows)


def warning_table(runs: list[Run]) -> str:
    """The monitor's one warning as a predictor of collapse, by how far into the run it came."""
    y = np.array([r.outcome[COLLAPSED] for r in runs])
    rows = ["| warned by | accuracy | precision | recall | false alarms (runs that did not collapse) |",
            "|---|---|---|---|---|"]
    for share in (0.1, 0.25, 0.5, 1.0):
        pred = np.array([r.warned_at is not None and r.warned_at <= share * r.steps for r in runs])
        rows.append(f"| {share:.0%} of the steps | {scores(pred, y)} | {int((pred & ~y).sum())} of {int((~y).sum())} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path, help="results folders, one cross-validation group each")
    ap.add_argument("--older", nargs="*", type=Path, default=[], help="extra folders for the all-runs table")
    ap.add_argument("--cut", type=float, default=0.25, help="share of each run's steps the forecast sees")
    ap.add_argument("--out", type=Path, default=None, help="write forecast.md and runs.json here")
    args = ap.parse_args()

    main_runs = load_runs(args.folders, args.cut)
    all_runs = load_runs(args.folders + args.older, args.cut)
    text = []
    for name, runs in (("main", main_runs), ("all", all_runs)):
        if name == "all" and not args.older:
            continue
        counts = ", ".join(f"{g} {sum(r.group == g for r in runs)}" for g in dict.fromkeys(r.group for r in runs))
        text += [f"### {name} runs ({len(runs)}: {counts}), history cut at {args.cut:.0%} of each run's steps",
                 "", "Leave one results folder out:", "", table(runs, "group", args.cut), "",
                 "Leave one task family out:", "", table(runs, "family", args.cut), "",
                 "The monitor's warning (nothing fitted) over the whole run, outcome collapsed:", "",
                 warning_table(runs), ""]
    print("\n".join(text))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out / "forecast.md", "\n".join(text))
        write_json_atomic(args.out / "runs.json", [r.__dict__ for r in all_runs])


if __name__ == "__main__":
    main()
