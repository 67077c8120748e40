"""EDA: the Entropy Dynamics Alignment reward of HEAL, as an `evaluate` metric."""

import datasets
import evaluate

from heal_hf import HEAL_BIBTEX
from heal_hf.eda import EDAReference
from heal_hf.eda import EDAReward
from heal_hf.pool import load_pool
from heal_hf.pool import pool_reference

_CITATION = HEAL_BIBTEX

_DESCRIPTION = """\
EDA scores how much the token-entropy dynamics of target-domain trajectories look
like those of general-domain trajectories (HEAL, arXiv:2604.17928). Each trajectory's
per-token entropies are resampled to a K-bin curve; with the reference set's mean and
std of the magnitude m (mean entropy) and of each differenced-curve bin dc_k,
    D = w_mag * z(m)^2 + w_dyn * mean_k z(dc_k)^2,    EDA = exp(-D / 2)  in (0, 1],
1 meaning aligned with the general domain. A collapsed trajectory (near-zero, flat
entropy) scores near 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): per-token entropies (nats) of each
        target-domain trajectory (any lengths).
    references (`list` of `list` of `float`, optional): per-token entropies of the
        general-domain trajectories forming the reference set. The set is taken as a
        whole: it need not have one entry per prediction.
    pool (optional): a precomputed reference instead of `references`: a heal-hf
        general-entropy pool (a `datasets.Dataset`, a local folder, a Hub id such as
        "heal/general-entropy-pool", or "bundled"), or a dict from
        `EDAReference.to_dict()`.
    bins (`int`, default 32): K, the curve bins (a pool or reference dict fixes its own).
    w_mag (`float`, default 1.0), w_dyn (`float`, default 1.0): weights of the terms of D.
    eps (`float`, default 1e-3): floor for the reference stds.
Returns:
    eda_reward (`list` of `float`): per prediction, in (0, 1].
    mean_eda_reward (`float`): their mean.
    magnitude_gap (`list` of `float`): z(m)^2 per prediction.
    magnitude_z (`list` of `float`): signed z(m); negative means less entropy than the reference.
    dynamics_gap (`list` of `float`): mean_k z(dc_k)^2 per prediction.
    mean_magnitude_gap (`float`), mean_dynamics_gap (`float`): their means.
Examples:
    >>> eda = evaluate.load("heal/eda")
    >>> general = [[2.1, 1.4, 0.9, 1.6, 0.7, 0.5, 1.2, 0.4], [1.8, 1.6, 0.8, 1.1, 0.9, 0.6, 0.8, 0.5],
    ...            [2.4, 1.2, 1.1, 1.3, 0.6, 0.9, 0.7, 0.3], [1.9, 1.5, 1.0, 0.9, 1.0, 0.4, 1.0, 0.6],
    ...            [2.2, 1.1, 1.2, 1.4, 0.8, 0.7, 0.6, 0.4], [2.0, 1.7, 0.7, 1.2, 0.5, 0.8, 0.9, 0.5]]
    >>> out = eda.compute(predictions=[[2.0, 1.4, 1.0, 1.3, 0.8, 0.6, 0.9, 0.4], [0.05] * 8],
    ...                   references=general, bins=4)
    >>> [round(r, 3) for r in out["eda_reward"]]   # general-like vs collapsed
    [0.943, 0.0]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EDA(evaluate.Metric):
    """EDA reward of target-domain trajectories against a general-domain reference set."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # Only predictions are row-aligned; the reference set reaches _compute whole.
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float32"))}),
            reference_urls=["https://arxiv.org/abs/2604.17928"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """EDA rewards of `predictions` against the reference set `references` (or `pool=`).
        """
        # evaluate would require references row-aligned with predictions (one Arrow
        # table); EDA's references are a set of any size, so pass them as a keyword.
        return super().compute(predictions=predictions, reference_entropies=references, **kwargs)

    def _compute(self, predictions, reference_entropies=None, pool=None, bins=32, w_mag=1.0, w_dyn=1.0, eps=1e-3):
        if (reference_entropies is None) == (pool is None):
            raise ValueError(
                "references / pool: pass exactly one: references=<general-domain entropy sequences> "
                "or pool=<a general-entropy pool or an EDAReference dict>"
            )
        if pool is not None:
            reference = EDAReference.from_dict(pool) if isinstance(pool, dict) else pool_reference(load_pool(pool))
        else:
            reference = [list(r) for r in reference_entropies]
        eda = EDAReward(reference, bins=bins, w_mag=w_mag, w_dyn=w_dyn, eps=eps)
        scores = eda.score([list(p) for p in predictions])
        return {
            "eda_reward": scores.reward.tolist(),
            "mean_eda_reward": float(scores.reward.mean()),
            "magnitude_gap": scores.magnitude_gap.tolist(),
            "magnitude_z": scores.magnitude_z.tolist(),
            "dynamics_gap": scores.dynamics_gap.tolist(),
            "mean_magnitude_gap": float(scores.magnitude_gap.mean()),
            "mean_dynamics_gap": float(scores.dynamics_gap.mean()),
        }

