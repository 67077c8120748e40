"""EDA scoring throughput: the calibrated estimator (v2) vs the gaussian one (v1), in one run.

    python benchmarks/eda.py [--trajectories 1000000] [--tokens 256] [--reference 10000]
                             [--chunk 10000] [--threads 1] [--rounds 3]

Both estimators score the same `--trajectories` trajectories of `--tokens` tokens
(random entropies with a general-domain shape, generated chunk by chunk from one seed, so
memory stays at one chunk) against one reference of `--reference` trajectories. Per
estimator: the time to build the reference, and trajectories per second of `reward()` over
all chunks; each round times both, alternating which goes first, and the median round is
reported, with the calibrated / gaussian speed ratio. Goal: calibrated >= 0.5x gaussian.

Before timing, a table of what each estimator does with the same references (docs/method.md,
"What v1 does in practice"): medians over 300 trajectories of rewards for reference-like
trajectories, ones scaled 10x and 100x on a near-deterministic (~0.004 nats) reference,
a flat line at the reference's level, reference-like trajectories of a quarter and 4x the
length, and the largest reward change when every entropy is scaled by 0.01 or 0.001.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from heal_hf.core.eda import ESTIMATORS, EDAReference, EDAReward


def entropies(n: int, tokens: int, seed: int) -> torch.Tensor:
    """(n, tokens) entropies: a decaying level, noise and rare forking spikes (nats)."""
    g = torch.Generator().manual_seed(seed)
    time_axis = torch.linspace(0, 1, tokens)
    level = 0.3 + 0.5 * torch.rand(n, 1, generator=g)
    spikes = (torch.rand(n, tokens, generator=g) > 0.93) * 2.0 * torch.rand(n, tokens, generator=g)
    return level * (1.5 * torch.exp(-2 * time_axis) + 0.3 * torch.rand(n, tokens, generator=g)) + spikes


def ragged(n: int, lengths: tuple[int, int], seed: int, near_deterministic: bool = False) -> list[torch.Tensor]:
    """n trajectories with lengths in [lo, hi): `entropies`' shape, or mostly ~0 with rare forks (~0.004 nats)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in torch.randint(*lengths, (n,), generator=g).tolist():
        if near_deterministic:
            fork = torch.rand(t, generator=g) < 0.08
            out.append(torch.where(fork, 0.05, 2e-4) * -torch.log(torch.rand(t, generator=g)))
        else:
            out.append(entropies(1, t, seed=int(torch.randint(0, 2**31, (1,), generator=g)))[0])
    return out


def properties() -> None:
    """What each estimator does with the same references (medians over 300 trajectories)."""
    print("| estimator | reference-like | 10x / 100x a near-deterministic reference | flat line at the level "
          "| 1/4 / 4x the length | largest change at x0.01 / x0.001 |")
    print("|---|---|---|---|---|---|")
    for estimator in ESTIMATORS:
        reference = ragged(1000, (32, 96), seed=10)
        eda = EDAReward(reference, estimator=estimator)
        like = eda.reward(ragged(300, (32, 96), seed=11))
        level = float(torch.cat(reference).mean())
        flat = eda.reward([torch.full((64,), level)]).item()
        short, long = (float(eda.reward(ragged(300, lengths, seed=12)).median()) for lengths in ((8, 24), (128, 384)))
        changes = []
        for factor in (0.01, 0.001):
            scaled = EDAReward([h * factor for h in reference], estimator=estimator)
            changes.append(float((scaled.reward([h * factor for h in ragged(300, (32, 96), seed=11)]) - like).abs().max()))
        near = EDAReward(ragged(1000, (32, 96), seed=13, near_deterministic=True), estimator=estimator)
        base = ragged(300, (64, 65), seed=14, near_deterministic=True)
        x10, x100 = (float(near.reward([h * k for h in base]).median()) for k in (10, 100))
        print(f"| {estimator} | {float(like.median()):.3g} | {x10:.3g} / {x100:.3g} | {flat:.3g} | {short:.3g} / {long:.3g} "
              f"| {changes[0]:.2g} / {changes[1]:.2g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=int, default=1_000_000)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--reference", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=10_000, help="trajectories scored per reward() call")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    properties()

    reference = entropies(args.reference, args.tokens, seed=0)
    chunks = [(start, min(args.chunk, args.trajectories - start)) for start in range(0, args.trajectories, args.chunk)]
    build: dict[str, list[float]] = {e: [] for e in ESTIMATORS}
    speed: dict[str, list[float]] = {e: [] for e in ESTIMATORS}
    checksum: dict[str, float] = {}
    for r in range(args.rounds):
        for estimator in ESTIMATORS[r % 2:] + ESTIMATORS[: r % 2]:
            start = time.perf_counter()
            eda = EDAReward(EDAReference.from_entropies(reference), estimator=estimator)
            eda.reward(reference[:2])  # D0 (calibrated) is computed on first use: count it in the build
            build[estimator].append(time.perf_counter() - start)
            scored, total, elapsed = 0, 0.0, 0.0
            for i, (first, n) in enumerate(chunks):
                batch = entropies(n, args.tokens, seed=1 + i)  # generation is not timed
                start = time.perf_counter()
                total += float(eda.reward(batch).double().sum())
                elapsed += time.perf_counter() - start
                scored += n
            speed[estimator].append(scored / elapsed)
            checksum[estimator] = total / scored
    print(f"EDA scoring: {args.trajectories:,} trajectories x {args.tokens} tokens against a "
          f"{args.reference:,}-trajectory reference, {args.threads} thread(s), median of {args.rounds} rounds")
    print(f"{'estimator':<12}{'reference build (s)':>21}{'trajectories/s':>17}{'mean reward':>14}{'speed vs gaussian':>20}")
    base = statistics.median(speed["gaussian"])
    for estimator in ESTIMATORS:
        s = statistics.median(speed[estimator])
        print(f"{estimator:<12}{statistics.median(build[estimator]):>21.2f}{s:>17,.0f}{checksum[estimator]:>14.3g}"
              f"{s / base:>19.2f}x")
    print("goal: calibrated >= 0.50x gaussian")


if __name__ == "__main__":
    main()
