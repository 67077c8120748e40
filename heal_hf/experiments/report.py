"""What a replication reports: the table, paired bootstrap intervals, and the curves with seed bands.

The intervals compare two arms on the same held-out problems and the same seeds (one
seed fixes the target draw, the selection and the sampling of both arms): a
two-level paired bootstrap resamples seeds, then problems, with replacement, and takes
the mean of the per-(seed, problem) differences. Three metrics per comparison:
sampled accuracy (the share of correct samples at the training temperature, the
headline), greedy accuracy and pass@k.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.files import atomic_write

METRICS = {"sample_accuracy": "sampled", "greedy_accuracy": "greedy", "pass_at_k": "pass"}
"""Row metric -> its per-problem vector in `per_problem` (pass@k: any sample correct)."""
BASELINES = ("grpo-32", "clip-higher-32", "entropy-mask-32", "entropy-bonus-32")
"""The few-shot arms a user would run instead of HEAL (HEAL's own ablations and variants are not among them)."""
BOOTSTRAP_SAMPLES = 10_000


def per_problem(row: dict[str, Any], metric: str) -> np.ndarray | None:
    """One run's per-problem scores for `metric`, or None for runs that did not store them."""
    vectors = row.get("per_problem")
    if not vectors:
        return None
    if METRICS[metric] == "pass":
        return (np.asarray(vectors["sampled"], dtype=float) > 0).astype(float)
    return np.asarray(vectors[METRICS[metric]], dtype=float)


def paired_interval(
    a: dict[int, np.ndarray], b: dict[int, np.ndarray], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any] | None:
    """Mean of A - B over the seeds both have, with a two-level paired bootstrap interval.

    `a`, `b`: seed -> per-problem scores (same problems, same order). None when they
    share no seed.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diff = np.stack([a[s] - b[s] for s in seeds])  # (seeds, problems)
    rng = np.random.default_rng(seed)
    n_seeds, n_problems = diff.shape
    pick_seeds = rng.integers(0, n_seeds, size=(samples, n_seeds))
    pick_problems = rng.integers(0, n_problems, size=(samples, n_problems))
    # Each bootstrap sample: its seeds' rows, each averaged over the sample's problems.
    rows = diff[:, pick_problems].mean(-1)  # (seeds, samples): problem-resampled means per seed
    means = np.take_along_axis(rows.T, pick_seeds, axis=1).mean(1)
    low, high = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high), "seeds": seeds,
            "problems": int(n_problems)}


def _runs_by_seed(rows: Sequence[dict[str, Any]], family: str, arm: str, metric: str) -> dict[int, np.ndarray]:
    out = {}
    for r in rows:
        if r["family"] == family and r["arm"] == arm:
            scores = per_problem(r, metric)
            if scores is not None:
                out[int(r["seed"])] = scores
    return out


def _arm_mean(rows: Sequence[dict[str, Any]], family: str, arm: str, metric: str) -> float:
    values = [r[metric] for r in rows if r["family"] == family and r["arm"] == arm]
    return statistics.mean(values) if values else -math.inf


def intervals(results: dict[str, Any], arm: str = "heal-32") -> dict[str, Any]:
    """Per family and metric: `arm` - GRPO-32, `arm` - the best baseline (by that metric's mean), `arm` - GRPO-1K."""
    rows = results["runs"]
    out: dict[str, Any] = {}
    for family in results["settings"]["families"]:
        per_metric = {}
        for metric in METRICS:
            others = [b for b in BASELINES if b != "grpo-32" and _arm_mean(rows, family, b, metric) > -math.inf]
            best = max(others, key=lambda b: _arm_mean(rows, family, b, metric)) if others else None
            mine = _runs_by_seed(rows, family, arm, metric)
            comparisons = {}
            for name, other in (("grpo-32", "grpo-32"), ("best-baseline", best), ("grpo-1k", "grpo-1k")):
                if other is None:
                    continue
                interval = paired_interval(mine, _runs_by_seed(rows, family, other, metric))
                if interval is not None:
                    comparisons[name] = {"against": other, **interval}
            per_metric[metric] = comparisons
        out[family] = per_metric
    return out


INTERVAL_ORDER = ("grpo-1k", "grpo-32", "best-baseline")
"""The order the intervals are reported in: against GRPO-1K (the paper's claim) first."""


def intervals_table(results: dict[str, Any], arm: str = "heal-32") -> str:
    """Markdown: each interval as mean [low, high], against GRPO-1K first; a bold cell is one whose interval
    excludes zero."""
    found = results.get("intervals") or {}
    k = results["settings"]["eval_samples"]
    labels = {"sample_accuracy": "sampled accuracy (T = 1)", "greedy_accuracy": "greedy accuracy", "pass_at_k": f"pass@{k}"}
    lines = [f"| family | metric | {arm} - grpo-1k | {arm} - grpo-32 | {arm} - best other few-shot arm |",
             "|---|---|---|---|---|"]
    for family, per_metric in found.items():
        for metric, comparisons in per_metric.items():
            cells = []
            for name in INTERVAL_ORDER:
                c = comparisons.get(name)
                if c is None:
                    cells.append("n/a")
                    continue
                text = f"{c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
                text = f"**{text}**" if c["low"] > 0 or c["high"] < 0 else text
                cells.append(text + (f" ({c['against']})" if name == "best-baseline" else ""))
            lines.append(f"| {family} | {labels.get(metric, metric)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_markdown(results: dict[str, Any], arm: str = "heal-32") -> str:
    """results.md: the intervals first (what the replication concludes), then the per-arm table."""
    seeds = sorted({s for per_metric in (results.get("intervals") or {}).values() for c in per_metric.values()
                    for i in c.values() for s in i["seeds"]})
    k = results["settings"]["eval_samples"]
    head = [f"# {arm} against the arms a user would run instead", "",
            f"Differences in accuracy on the {results['settings']['eval_problems']} held-out "
            f"{results['settings'].get('eval_split', 'test')} problems of each family, {arm} minus the other arm, "
            f"with 95% paired bootstrap intervals over seeds and problems ({BOOTSTRAP_SAMPLES:,} resamples; "
            f"seeds {', '.join(map(str, seeds)) or 'none'}, each interval over the seeds both arms ran). Sampled "
            f"accuracy at T = 1 is the headline; greedy accuracy and pass@{k} beside it. A bold interval excludes "
            "zero; any other is no result. The best other few-shot arm is the baseline (Clip-Higher, the entropy "
            "mask, the entropy bonus) with the highest mean on that metric.", "",
            intervals_table(results, arm), "", "## Every arm", ""]
    return "\n".join(head) + "\n" + results_table(results) + "\n"


def missing_summary(missing: Sequence[str], families: Sequence[str]) -> str:
    """`family/seedN/arm` entries, grouped: `hybrid-32, eda-32 at seeds 3, 4 (every family)`, one group per arm set."""
    by_arm: dict[str, dict[int, set[str]]] = {}
    for entry in missing:
        family, seed, arm = entry.split("/")
        by_arm.setdefault(arm, {}).setdefault(int(seed.removeprefix("seed")), set()).add(family)
    groups: dict[tuple, list[str]] = {}
    for arm, seeds in by_arm.items():
        key = tuple(sorted((s, tuple(sorted(f))) for s, f in seeds.items()))
        groups.setdefault(key, []).append(arm)
    parts = []
    for key, arms in groups.items():
        seeds = ", ".join(str(s) for s, _ in key)
        where = {f for _, fs in key for f in fs}
        scope = "every family" if where == set(families) else ", ".join(sorted(where))
        parts.append(f"{', '.join(arms)} at seed{'s' if len(key) > 1 else ''} {seeds} ({scope})")
    return "; ".join(parts)


def _mean_std(values: Sequence[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def results_table(results: dict[str, Any]) -> str:
    """Markdown: per family, the base model and each arm (mean ± std over seeds)."""
    k = results["settings"]["eval_samples"]
    lines = [
        f"| family | arm | runs | sampled accuracy | greedy accuracy | pass@{k} | entropy retention (eval) "
        "| entropy retention (train, target) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family in results["settings"]["families"]:
        b = results["base"][family]
        lines.append(f"| {family} | base model | | {b['sample_accuracy']:.3f} | {b['greedy_accuracy']:.3f} "
                     f"| {b[f'pass@{k}']:.3f} | 1 | |")
        for arm in results["settings"]["arms"]:
            runs = [r for r in results["runs"] if r["family"] == family and r["arm"] == arm]
            cells = [_mean_std([r[key] for r in runs]) for key in
                     ("sample_accuracy", "greedy_accuracy", "pass_at_k", "entropy_retention", "train_entropy_retention")]
            lines.append(f"| {family} | {arm} | {len(runs)} | " + " | ".join(cells) + " |")
    seeds = len(results["settings"]["seeds"])
    grpo = results["grpo"]
    lines.append("")
    lines.append(f"Mean ± std over up to {seeds} seed(s); {grpo['max_steps']} RL steps per arm, learning rate "
                 f"{grpo['learning_rate']:g} ({grpo.get('warmup_steps', 0)} warmup steps, "
                 f"{grpo.get('lr_scheduler_type', 'linear')} schedule), num_iterations {grpo.get('num_iterations', 1)}; "
                 f"{results['settings']['eval_problems']} held-out problems per family, curves on "
                 f"{results['settings']['curve_problems']}.")
    if results.get("missing"):
        lines.append(f"Not in this folder, left out: {missing_summary(results['missing'], results['settings']['families'])}.")
    return "\n".join(lines)


_STYLES = {"hybrid-32": "--", "eda-32": ":", "clip-higher-32": "-.", "entropy-mask-32": "-.",
           "entropy-bonus-32": "-.", "heal-mask-32": "--"}  # ablations and baselines broken, so coinciding arms stay visible


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    """Mean of each value and the `window - 1` before it (fewer at the start)."""
    return [statistics.mean(values[max(0, i - window + 1): i + 1]) for i in range(len(values))]


def _curve_band(runs: Sequence[dict[str, Any]], key: str, smooth: bool) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Steps, seed mean and seed std of one curve (each seed smoothed first when `smooth`); `key` may be
    `outer/inner` for a curve nested one level down (train_behaviour_curve/target)."""
    per_seed = []
    outer, _, inner = key.partition("/")
    for r in runs:
        curve = r.get(outer, []) if not inner else r.get(outer, {}).get(inner, [])
        per_seed.append(dict((int(s), v) for s, v in curve))
    steps = sorted(set.intersection(*(set(p) for p in per_seed))) if per_seed else []
    if not steps:
        return [], np.array([]), np.array([])
    values = np.array([[p[s] for s in steps] for p in per_seed], dtype=float)
    if smooth:  # one target prompt per batch: a step's entropy is noisy
        values = np.array([_moving_average(list(v), max(1, len(steps) // 10)) for v in values])
    return steps, values.mean(0), values.std(0)


def _plot_behaviour(ax: Any, runs: Sequence[dict[str, Any]], arm: str) -> None:
    """One arm's training rollouts' try/check share over steps: target (solid, seed band), general (thin)."""
    steps, mean, std = _curve_band(runs, "train_behaviour_curve/target", smooth=True)
    if not steps:
        return
    line, = ax.plot(steps, mean, label=arm, linewidth=2.2 if arm == "heal-32" else 1.2, linestyle=_STYLES.get(arm, "-"))
    if len(runs) > 1:
        # a share lies in [0, 1]: the band stops there rather than suggest a negative share
        ax.fill_between(steps, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=line.get_color(), alpha=0.12,
                        linewidth=0)
    steps, mean, _ = _curve_band(runs, "train_behaviour_curve/general", smooth=True)
    if steps:
        ax.plot(steps, mean, color=line.get_color(), linewidth=0.7, alpha=0.7)


def plot_replication(results: dict[str, Any], path: Path) -> Path:
    """Per family: target-domain entropy and held-out greedy accuracy over steps, one line per arm (seed mean ± std
    band), and, where any rollout tried and checked (the explore world), the training rollouts' try/check share
    (target solid, general thin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = results["settings"]["families"]
    behaviour = any(v for r in results["runs"] for c in r.get("train_behaviour_curve", {}).values() for _, v in c)
    panels = 3 if behaviour else 2
    fig, axes = plt.subplots(len(families), panels, figsize=(6 * panels, 3.6 * len(families)), squeeze=False)
    for row, family in zip(axes, families):
        for arm in results["settings"]["arms"]:
            runs = [r for r in results["runs"] if r["family"] == family and r["arm"] == arm]
            if behaviour:
                _plot_behaviour(row[2], runs, arm)
            for ax, key in ((row[0], "entropy_curve"), (row[1], "accuracy_curve")):
                steps, mean, std = _curve_band(runs, key, smooth=key == "entropy_curve")
                if not steps:
                    continue
                line, = ax.plot(steps, mean, label=f"{arm} ({len(runs)})", linewidth=2.2 if arm == "heal-32" else 1.2,
                                linestyle=_STYLES.get(arm, "-"))
                if len(runs) > 1:
                    ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.12, linewidth=0)
        base = results["base"][family]["greedy_accuracy"]
        row[1].axhline(base, color="grey", linewidth=0.8, linestyle=":", label="base (eval problems)")
        row[0].set(title=f"{family}: target-domain token entropy (moving average)", xlabel="RL step", ylabel="nats")
        row[1].set(title=f"{family}: held-out greedy accuracy (mean ± std over seeds)", xlabel="RL step",
                   ylabel="accuracy")
        row[1].legend(fontsize=7)
        if behaviour:
            row[2].set(title=f"{family}: try/check share, training (thin: general)", xlabel="RL step", ylabel="share")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=90, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
