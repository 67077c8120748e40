"""HybridSelector: 1,000 picks from 1,000,000 candidate profiles (K = 32), in one run.

    python benchmarks/selection.py [--candidates 1000000] [--picks 1000] [--subset 20000]

Candidates look like pool rows: K-bin entropy curves drawn from a few smooth
shapes (a decaying start, a mid-trajectory bump, a rising end) with per-candidate
noise, plus magnitude, total variation, volatility and forking share (36 features),
and four criteria columns. Baseline: the textbook O(N^2) greedy MMR (full N x N
similarity matrix, then N_select argmax passes) on a --subset of the candidates.
It prints the baseline and heal-hf on that subset (checking they pick the same
items), heal-hf on all candidates, and the baseline's time extrapolated to all
candidates as (N / subset)^2, with the ratio to heal-hf. Goal: the full selection
under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from heal_hf import HybridSelector


def make_pool(n: int, bins: int = 32, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, bins, dtype=np.float32)
    shapes = np.stack([np.exp(-4 * t), np.exp(-((t - 0.5) ** 2) / 0.02), t**2]).astype(np.float32)
    weights = rng.gamma(2.0, 0.5, size=(n, 3)).astype(np.float32)
    curves = weights @ shapes + 0.15 * rng.standard_normal((n, bins), dtype=np.float32)
    curves = np.abs(curves)
    magnitude = curves.mean(1)
    tv = np.abs(np.diff(curves, axis=1)).mean(1) * rng.uniform(0.8, 1.2, n).astype(np.float32)
    volatility = np.diff(curves, axis=1).std(1)
    forking = (curves > np.quantile(curves, 0.8)).mean(1)
    features = np.concatenate([curves, np.stack([magnitude, tv, volatility, forking], 1)], 1)
    pass_rate = rng.beta(0.7, 0.7, n)
    criteria = {
        "mean_entropy": magnitude.astype(np.float64),
        "outcome_uncertainty": 4 * pass_rate * (1 - pass_rate),
        "curve_diversity": rng.gamma(2.0, 0.2, n),
        "lexical_diversity": rng.beta(5, 2, n),
    }
    return criteria, features


def naive_mmr(scores: np.ndarray, features: np.ndarray, n_select: int, redundancy: float, bandwidth: float,
              seed: int) -> list[int]:
    """Textbook greedy MMR: the full similarity matrix first (same kernel and tie order)."""
    f = torch.as_tensor(features, dtype=torch.float32)
    f = (f - f.mean(0)) / f.std(0, unbiased=False).clamp(min=1e-6) / f.shape[1] ** 0.5
    sq = f.pow(2).sum(1)
    sim = torch.exp(-(sq[:, None] + sq[None, :] - 2 * f @ f.T).clamp(min=0) / (2 * bandwidth**2))
    perm = np.random.default_rng(seed).permutation(len(scores))
    order = torch.as_tensor(perm[np.argsort(-scores[perm], kind="stable")])
    relevance = torch.as_tensor((1 - redundancy) * scores, dtype=torch.float32)
    max_sim = torch.zeros(len(scores))
    taken = torch.zeros(len(scores), dtype=torch.bool)
    picked = []
    for _ in range(n_select):
        value = relevance - redundancy * max_sim
        value[taken] = -torch.inf
        best = int(order[torch.argmax(value[order])])
        picked.append(best)
        taken[best] = True
        max_sim = torch.maximum(max_sim, sim[best])
    return picked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", type=int, default=1_000_000)
    ap.add_argument("--picks", type=int, default=1000)
    ap.add_argument("--subset", type=int, default=20_000)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    criteria, features = make_pool(args.candidates)
    selector = HybridSelector(args.picks, seed=0)

    sub = {c: v[: args.subset] for c, v in criteria.items()}
    t0 = time.perf_counter()
    scores_sub, _, _ = selector.score(sub)
    naive = naive_mmr(scores_sub, features[: args.subset], args.picks, selector.redundancy, selector.bandwidth, 0)
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast_sub = selector.select(sub, features[: args.subset])
    t_fast_sub = time.perf_counter() - t0
    same = fast_sub.indices.tolist() == naive

    t0 = time.perf_counter()
    full = selector.select(criteria, features)
    t_full = time.perf_counter() - t0
    extrapolated = t_naive * (args.candidates / args.subset) ** 2
    penalized = int((fast_sub.mmr_values < (1 - selector.redundancy) * fast_sub.scores[fast_sub.indices] - 1e-9).sum())

    print(f"subset {args.subset:,}: naive O(N^2) MMR {t_naive:.2f} s, heal-hf {t_fast_sub:.2f} s "
          f"(ratio {t_naive / t_fast_sub:.1f}x), same picks: {same}, picks penalized for redundancy: {penalized}")
    print(f"all {args.candidates:,}: heal-hf {t_full:.2f} s for {args.picks} picks "
          f"({len(set(full.indices.tolist()))} distinct)")
    print(f"naive extrapolated to {args.candidates:,} as N^2: {extrapolated:,.0f} s "
          f"(its similarity matrix alone: {4 * args.candidates**2 / 2**40:.1f} TiB); "
          f"ratio {extrapolated / t_full:,.0f}x; goal < 60 s: {'met' if t_full < 60 else 'MISSED'}")
    print(json.dumps({
        "subset": args.subset, "naive_subset_s": t_naive, "heal_subset_s": t_fast_sub, "same_picks": same,
        "candidates": args.candidates, "picks": args.picks, "heal_full_s": t_full,
        "naive_extrapolated_s": extrapolated, "extrapolated_ratio": extrapolated / t_full,
    }))
    if not same:
        sys.exit("heal-hf and the naive MMR disagree on the subset")


if __name__ == "__main__":
    main()
