"""Hybrid-domain selection: reasoning uncertainty x exploratory diversity, MMR picks.

docs/method.md, "Hybrid selection". Per candidate general-domain prompt, from k sampled
responses:
- reasoning uncertainty U: `mean_entropy` (mean token entropy, nats) and
  `outcome_uncertainty` 4 p (1 - p) of the pass rate p;
- exploratory diversity V: `curve_diversity` (mean pairwise RMS distance between the
  responses' K-bin entropy curves, nats) and `lexical_diversity` (distinct word
  bigrams / all bigrams over the responses).
Each criterion is rank-normalized to [0, 1] (ties broken by a seeded permutation)
and the score is their weighted mean [equal weights].

Picks are greedy maximal marginal relevance over standardized profile features:
    value_i = (1 - redundancy) * score_i - redundancy * max_{j picked} sim(i, j)
with sim(i, j) = exp(-d_ij^2 / (2 bandwidth^2)), d_ij the RMS distance between the
z-scored feature rows, so only near-duplicates are penalized. Because sim >= 0,
value_i <= (1 - redundancy) * score_i: the exact greedy only needs similarities for a
prefix of the candidates sorted by score, grown when the best value found falls
below the bound of the rest. That makes 1,000 picks from 1,000,000 take seconds
while choosing exactly what the O(N^2) greedy chooses (benchmarks/selection.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np
import torch

from .profiles import DEFAULT_BINS, EntropiesLike, EntropyProfile

UNCERTAINTY_CRITERIA = ("mean_entropy", "outcome_uncertainty")
DIVERSITY_CRITERIA = ("curve_diversity", "lexical_diversity")
CRITERIA = UNCERTAINTY_CRITERIA + DIVERSITY_CRITERIA


def distinct_ngrams(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams / all word n-grams over `texts` (0.0 when there are none)."""
    grams = [tuple(words[i : i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def response_criteria(
    entropies: EntropiesLike,
    texts: Sequence[str] | None = None,
    passed: Sequence[float] | None = None,
    bins: int = DEFAULT_BINS,
    forking_threshold: float | None = None,
) -> dict[str, float | list[float]]:
    """Selection criteria of one prompt from its k sampled responses.

    Args:
        entropies: the k responses' per-token entropies ((k, T) or a ragged list).
        texts: the k response texts, for lexical diversity (NaN when absent).
        passed: the verifier's 1.0/0.0 per response, for the pass rate (NaN when absent).

    Returns a dict with the four CRITERIA, `pass_rate`, and `features`, the mean
    profile features of the responses (K + 4 floats) used for redundancy.
    """
    profile = EntropyProfile.from_entropies(entropies, bins=bins, forking_threshold=forking_threshold)
    curves = profile.curve.double()
    pairs = list(combinations(range(len(profile)), 2))
    if pairs:
        a, b = zip(*pairs)
        dist = (curves[list(a)] - curves[list(b)]).pow(2).mean(1).sqrt().mean()
    else:
        dist = torch.tensor(0.0)
    pass_rate = float(np.mean(passed)) if passed is not None and len(passed) else float("nan")
    return {
        "mean_entropy": float(profile.magnitude.double().mean()),
        "outcome_uncertainty": 4 * pass_rate * (1 - pass_rate),
        "curve_diversity": float(dist),
        "lexical_diversity": distinct_ngrams(texts) if texts is not None else float("nan"),
        "pass_rate": pass_rate,
        "features": profile.features().double().mean(0).tolist(),
    }


def rank_normalize(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ranks scaled to [0, 1] (highest value -> 1); ties ordered by a random permutation."""
    n = len(values)
    if n == 1:
        return np.ones(1)
    perm = rng.permutation(n)
    order = perm[np.argsort(values[perm], kind="stable")]
    ranks = np.empty(n)
    ranks[order] = np.arange(n) / (n - 1)
    return ranks


@dataclass(frozen=True)
class Selection:
    """Result of `HybridSelector.select`.

    `indices` (n,) are the picks in pick order; `scores`, `uncertainty`,
    `diversity` (N,) are per candidate in [0, 1]; `mmr_values` (n,) are the
    marginal values at which the picks were made.
    """

    indices: np.ndarray
    scores: np.ndarray
    uncertainty: np.ndarray
    diversity: np.ndarray
    mmr_values: np.ndarray


class HybridSelector:
    """Choose N general-domain problems by uncertainty x diversity, without near-duplicates.

    Args:
        n_select: how many to pick (HEAL default: 3 x the target set's size).
        weights: per-criterion weights (missing criteria count 1; NaN columns are skipped).
        redundancy: MMR trade-off in [0, 1); 0 = top scores only.
        bandwidth: similarity kernel width in feature standard deviations.
        seed: tie-breaking seed; the same inputs and seed give the same picks.
    """

    def __init__(
        self,
        n_select: int,
        weights: Mapping[str, float] | None = None,
        redundancy: float = 0.5,
        bandwidth: float = 0.25,
        seed: int = 0,
    ) -> None:
        if not isinstance(n_select, (int, np.integer)) or n_select < 1:
            raise ValueError(f"n_select: expected a positive integer, got {n_select!r}")
        if not 0.0 <= redundancy < 1.0:
            raise ValueError(f"redundancy: expected a number in [0, 1), got {redundancy!r}")
        if not bandwidth > 0:
            raise ValueError(f"bandwidth: expected a positive number, got {bandwidth!r}")
        weights = dict(weights or {})
        unknown = set(weights) - set(CRITERIA)
        if unknown:
            raise ValueError(f"weights: unknown criteria {sorted(unknown)}; expected some of {list(CRITERIA)}")
        if any(not (np.isfinite(w) and w >= 0) for w in weights.values()):
            raise ValueError(f"weights: expected finite non-negative numbers, got {weights}")
        self.n_select = int(n_select)
        self.weights = {c: float(weights.get(c, 1.0)) for c in CRITERIA}
        self.redundancy = float(redundancy)
        self.bandwidth = float(bandwidth)
        self.seed = seed

    def score(self, criteria: Mapping[str, Sequence[float] | np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(score, uncertainty, diversity), each (N,) in [0, 1], from the criteria columns."""
        rng = np.random.default_rng(self.seed)
        unknown = set(criteria) - set(CRITERIA)
        if unknown:
            raise ValueError(f"criteria: unknown columns {sorted(unknown)}; expected some of {list(CRITERIA)}")
        cols = {c: np.asarray(v, dtype=np.float64) for c, v in criteria.items()}
        sizes = {c: v.shape for c, v in cols.items()}
        if not cols or len(set(sizes.values())) != 1 or len(next(iter(sizes.values()))) != 1:
            raise ValueError(f"criteria: expected 1-D columns of one length N, got shapes {sizes}")
        n = len(next(iter(cols.values())))
        if n == 0:
            raise ValueError("criteria: no candidates; expected at least one row")
        ranks = {}
        for c, v in cols.items():
            if np.isnan(v).all():
                continue  # e.g. no verifier: the criterion is not available
            if not np.isfinite(v).all():
                raise ValueError(f"criteria[{c!r}]: found NaN or inf among {n} values; fill or drop those rows")
            ranks[c] = rank_normalize(v, rng)
        if not ranks:
            raise ValueError("criteria: every column is NaN; expected at least one criterion with values")

        def combine(names: Sequence[str]) -> np.ndarray:
            w = {c: self.weights[c] for c in names if c in ranks}
            total = sum(w.values())
            if total == 0:
                return np.zeros(n)
            return sum(w[c] * ranks[c] for c in w) / total

        return combine(CRITERIA), combine(UNCERTAINTY_CRITERIA), combine(DIVERSITY_CRITERIA)

    def select(
        self,
        criteria: Mapping[str, Sequence[float] | np.ndarray],
        features: np.ndarray | torch.Tensor | None = None,
    ) -> Selection:
        """Pick `n_select` candidates.

        Args:
            criteria: columns named as in CRITERIA, each (N,).
            features: (N, d) profile features for redundancy (e.g. `EntropyProfile.features`
                or the `features` of `response_criteria`); None disables the penalty.
        """
        scores, uncertainty, diversity = self.score(criteria)
        n = len(scores)
        if self.n_select > n:
            raise ValueError(f"n_select: asked for {self.n_select} picks from only {n} candidates; lower n_select")
        feats = None
        if features is not None and self.redundancy > 0:
            feats = torch.as_tensor(np.asarray(features, dtype=np.float32))
            if feats.dim() != 2 or feats.shape[0] != n:
                raise ValueError(f"features: expected shape ({n}, d), got {tuple(feats.shape)}")
            if not bool(torch.isfinite(feats).all()):
                raise ValueError("features: found NaN or inf; profile features must be finite")
            feats = (feats - feats.mean(0)) / feats.std(0, unbiased=False).clamp(min=1e-6)
            feats = feats / feats.shape[1] ** 0.5  # squared distances become mean squared per feature
        picks, values = _greedy_mmr(scores, feats, self.n_select, self.redundancy, self.bandwidth, self.seed)
        return Selection(
            indices=picks, scores=scores, uncertainty=uncertainty, diversity=diversity, mmr_values=values
        )


def _greedy_mmr(
    scores: np.ndarray,
    feats: torch.Tensor | None,
    n_select: int,
    redundancy: float,
    bandwidth: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact greedy MMR over a growing score-sorted prefix (see module doc)."""
    n = len(scores)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    order = perm[np.argsort(-scores[perm], kind="stable")]
    relevance = torch.as_tensor((1 - redundancy) * scores[order])
    if feats is None:
        return order[:n_select].copy(), relevance[:n_select].numpy().copy()
    feats = feats[torch.as_tensor(order)]
    sq_norm = feats.pow(2).sum(1)
    inv_two_h2 = 1.0 / (2 * bandwidth**2)

    def similarity(rows: slice, pick_pos: torch.Tensor) -> torch.Tensor:
        # (rows, picks) kernel via ||a||^2 + ||b||^2 - 2 a.b: one matmul, no pair tensor.
        d2 = sq_norm[rows, None] + sq_norm[pick_pos][None, :] - 2 * feats[rows] @ feats[pick_pos].T
        return torch.exp(-d2.clamp(min=0).double() * inv_two_h2)

    active = min(n, max(4 * n_select, 1024))
    max_sim = torch.zeros(active, dtype=torch.float64)
    taken = torch.zeros(n, dtype=torch.bool)
    picked: list[int] = []
    values: list[float] = []
    for _ in range(n_select):
        while True:
            value = relevance[:active] - redundancy * max_sim
            value[taken[:active]] = -torch.inf
            best = int(torch.argmax(value))
            bound = float(relevance[active]) if active < n else -float("inf")
            if float(value[best]) >= bound:
                break
            grow = min(n, 2 * active)  # the rest might beat the best: bring in more
            extra = torch.zeros(grow - active, dtype=torch.float64)
            if picked:
                pick_pos = torch.tensor(picked)
                step = max(1, 2**23 // len(picked))  # bound the (rows, picks) block to ~8M entries
                for lo in range(active, grow, step):
                    hi = min(grow, lo + step)
                    extra[lo - active : hi - active] = similarity(slice(lo, hi), pick_pos).amax(1)
            max_sim = torch.cat([max_sim, extra])
            active = grow
        picked.append(best)
        values.append(float(value[best]))
        taken[best] = True
        max_sim = torch.maximum(max_sim, similarity(slice(0, active), torch.tensor([best]))[:, 0])
    return order[np.asarray(picked)], np.asarray(values)
