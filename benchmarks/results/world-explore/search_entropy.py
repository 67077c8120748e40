"""How much entropy a worked search can carry per token: a bound for criterion 1 in world explore.

    python benchmarks/results/world-explore/search_entropy.py [--draws 20000]

Criterion 1 asks that the general problems the hybrid arms mix in have a mean token entropy at
least the target rollouts'. A model that has learnt a general search family exactly, and knows
nothing more, carries the entropy of the worked solutions themselves (by the chain rule, its token
entropies sum to the response's); one that has learnt it less carries more, and fails more. For a fixed problem of
each search family, this draws `--draws` worked solutions (`heal_hf.toy.explore.searched`, at
several noise levels of its order, SEARCH_NOISE being the world's). It prints the entropy of the
whole response, its mean length in toy tokens (one a character, end-of-text included), and their
ratio, nats per token. No model is involved.
"""

from __future__ import annotations

import argparse
import collections
import math
import random
import sys

from heal_hf.toy import explore, gym

NOISES = (explore.SEARCH_NOISE, 5.0, 8.0, 1000.0)
PROBLEMS = {  # one problem of each general search family: its candidates, value, goal, working and answer
    "missing_addend (47+?=52)": (range(1, 10), lambda t: 47 + t, 52, lambda t: f"47+{t}={47 + t}", str),
    "missing_subtrahend (61-?=54)": (range(1, 10), lambda t: 61 - t, 54, lambda t: f"61-{t}={61 - t}", str),
    "missing_operator (3?5*2=13)": ("+-*", lambda op: gym.value(f"3{op}5*2"), 13,
                                    lambda op: explore.reduced(f"3{op}5*2"), str),
}


def response_entropy(rng: random.Random, problem, noise: float, draws: int) -> tuple[float, float]:
    """(entropy of the worked response in nats, its mean length in tokens) over `draws` draws at `noise`."""
    candidates, value, goal, working, answered = problem
    counts, length = collections.Counter(), 0
    for _ in range(draws):
        steps, answer = explore.searched(rng, candidates, value, goal, working, answered, noise=noise)
        response = f" {steps}. Answer: {answered(answer)}"
        counts[response] += 1
        length += len(response) + 1
    return -sum(c / draws * math.log(c / draws) for c in counts.values()), length / draws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=20000)
    args = parser.parse_args(argv)
    rng = random.Random(0)
    print("| family (problem) | order noise (ranks) | response entropy (nats) | tokens | nats per token |")
    print("|---|---|---|---|---|")
    for name, problem in PROBLEMS.items():
        for noise in NOISES:
            entropy, tokens = response_entropy(rng, problem, noise, args.draws)
            shown = "uniform" if noise >= 1000 else f"{noise:g}"
            print(f"| {name} | {shown} | {entropy:.3f} | {tokens:.1f} | {entropy / tokens:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
