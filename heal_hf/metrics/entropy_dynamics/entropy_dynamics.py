"""Entropy dynamics: profile statistics of a set of token-entropy sequences, as an `evaluate` measurement."""

import datasets
import evaluate

from heal_hf import HEAL_BIBTEX
from heal_hf.core.eda import EDAReference
from heal_hf.core.profiles import EntropyProfile

_CITATION = HEAL_BIBTEX

_DESCRIPTION = """\
Entropy dynamics summarizes how the token entropy of a set of trajectories (e.g. a
checkpoint's rollouts) behaves over the course of each trajectory, as in HEAL
(arXiv:2604.17928). Each trajectory's per-token entropies H_1..H_T (nats) become a
profile: a K-bin curve over normalized time, the magnitude m = mean_t H_t, the total
variation mean_t |H_{t+1} - H_t|, the volatility std_t (H_{t+1} - H_t) and the share
of forking tokens (H_t above a threshold, by default the set's own 80th percentile).
The measurement returns their means and spreads over the set: watch magnitude_mean
fall and the curve flatten when a policy's entropy collapses.
"""

_KWARGS_DESCRIPTION = """
Args:
    data (`list` of `list` of `float`): per-token entropies (nats) of each trajectory.
    bins (`int`, default 32): K, the curve bins.
    forking_threshold (`float`, optional): nats above which a token counts as forking;
        default the 80th percentile of all tokens in `data`.
Returns:
    count (`int`): trajectories; mean_length (`float`): tokens per trajectory.
    magnitude_mean, magnitude_std (`float`): mean and std of m over the set (nats).
    total_variation_mean, volatility_mean, forking_share_mean (`float`): set means.
    forking_threshold (`float`): the threshold used (nats).
    curve_mean, curve_std (`list` of `float`): per-bin mean and std of the K-bin curves.
    diff_mean, diff_std (`list` of `float`): the same for the differenced curve (K-1),
        the statistics the EDA reward uses as its reference.
Examples:
    >>> dynamics = evaluate.load("heal/entropy_dynamics", module_type="measurement")
    >>> out = dynamics.compute(data=[[2.0, 1.0, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]], bins=2)
    >>> out["count"], round(out["magnitude_mean"], 3), [round(c, 3) for c in out["curve_mean"]]
    (2, 1.0, [1.25, 0.75])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EntropyDynamics(evaluate.Measurement):
    """Profile statistics (magnitude, variation, K-bin curve) of a set of entropy sequences."""

    def _info(self):
        return evaluate.MeasurementInfo(
            module_type="measurement",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"data": datasets.Sequence(datasets.Value("float32"))}),
            reference_urls=["https://arxiv.org/abs/2604.17928"],
        )

    def _compute(self, data, bins=32, forking_threshold=None):
        profile = EntropyProfile.from_entropies([list(d) for d in data], bins=bins, forking_threshold=forking_threshold)
        reference = EDAReference.from_profiles(profile)
        return {
            "count": len(profile),
            "mean_length": float(profile.lengths.double().mean()),
            "magnitude_mean": reference.magnitude_mean,
            "magnitude_std": reference.magnitude_std,
            "total_variation_mean": float(profile.total_variation.double().mean()),
            "volatility_mean": float(profile.volatility.double().mean()),
            "forking_share_mean": float(profile.forking_share.double().mean()),
            "forking_threshold": profile.forking_threshold,
            "curve_mean": reference.curve_mean.tolist(),
            "curve_std": reference.curve_std.tolist(),
            "diff_mean": reference.diff_mean.tolist(),
            "diff_std": reference.diff_std.tolist(),
        }
