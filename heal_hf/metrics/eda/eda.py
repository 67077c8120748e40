"""EDA: the Entropy Dynamics Alignment reward of HEAL, as an `evaluate` metric."""

import dataclasses

import datasets
import evaluate

from heal_hf import HEAL_BIBTEX
from heal_hf.core.eda import EDAReference, EDAReward, EDASettings
from heal_hf.data.model_identity import model_identity
from heal_hf.data.pool import load_pool, pool_reference

_CITATION = HEAL_BIBTEX

_DESCRIPTION = """\
EDA scores how much the token-entropy dynamics of target-domain trajectories look
like those of general-domain trajectories (HEAL, arXiv:2604.17928). The default
"calibrated" estimator reads each trajectory's magnitude, variation (mean |dH|,
volatility, share of forking tokens) and phase shape relative to the reference's
level, standardizes them with spreads that account for the trajectory's length, and
returns EDA = 1 / (1 + D / D0) in (0, 1], where D is the weighted mean squared gap and
D0 the median D of the reference's own trajectories: a typical general-domain
trajectory scores 0.5, closer ones more, a collapsed one (flat, near-zero entropy)
near 0, and the reward never underflows. estimator="gaussian" is HEAL's first
reading, exp(-D / 2) over the magnitude and the differenced K-bin curve.
"""

_SETTINGS = "\n".join(  # momentum is left out: the metric never updates its reference
    f"        {f.name} (`{f.type}`, default {f.default!r}): {f.metadata['help']}."
    for f in dataclasses.fields(EDASettings) if f.name != "momentum"
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): per-token entropies (nats) of each
        target-domain trajectory (any lengths).
    references (`list` of `list` of `float`, optional): per-token entropies of the
        general-domain trajectories forming the reference set. The set is taken as a
        whole: it need not have one entry per prediction.
    pool (optional): a precomputed reference instead of `references`: a heal-hf
        general-entropy pool (a `datasets.Dataset`, a local folder, a Hub id such as
        "heal/general-entropy-pool", one model's config of it as
        "heal/general-entropy-pool:toy-reasoner", or "bundled"), or a dict from
        `EDAReference.to_dict()`.
    model_id (`str`, optional): with `pool`, the model whose entropies `predictions` are (a Hub id or a
        folder): a pool sampled by another model is warned about, once.
    bins (`int`, optional): K, the curve bins (default 32; a pool or reference dict fixes its own).
    settings (`heal_hf.EDASettings`, optional): the EDA settings (default `EDASettings()`); any of
        its fields, listed below, may also be given by name and overrides it:
{settings}
Returns:
    eda_reward (`list` of `float`): per prediction, in (0, 1].
    mean_eda_reward (`float`): their mean.
    distance (`list` of `float`): D per prediction.
    magnitude_gap (`list` of `float`): the magnitude's squared z per prediction.
    magnitude_z (`list` of `float`): its signed z; negative means less entropy than the reference.
    variation_gap (`list` of `float`): mean squared z of the variation features (0 for gaussian).
    dynamics_gap (`list` of `float`): mean squared z of the phase shape (calibrated) or of dc_k (gaussian).
    mean_magnitude_gap, mean_variation_gap, mean_dynamics_gap (`float`): their means.
    d0 (`float`, calibrated only): D0, the median D of the reference's own trajectories
        (a prediction at distance D0 scores 0.5).
Examples:
    >>> eda = evaluate.load("heal/eda")
    >>> general = [[2.1, 1.4, 0.9, 1.6, 0.7, 0.5, 1.2, 0.4], [1.8, 1.6, 0.8, 1.1, 0.9, 0.6, 0.8, 0.5],
    ...            [2.4, 1.2, 1.1, 1.3, 0.6, 0.9, 0.7, 0.3], [1.9, 1.5, 1.0, 0.9, 1.0, 0.4, 1.0, 0.6],
    ...            [2.2, 1.1, 1.2, 1.4, 0.8, 0.7, 0.6, 0.4], [2.0, 1.7, 0.7, 1.2, 0.5, 0.8, 0.9, 0.5]]
    >>> out = eda.compute(predictions=[[2.0, 1.4, 1.0, 1.3, 0.8, 0.6, 0.9, 0.4], [1.1] * 8, [0.05] * 8],
    ...                   references=general, bins=4)
    >>> [round(r, 3) for r in out["eda_reward"]]   # general-like, flat at the right level, collapsed
    [0.352, 0.002, 0.001]
    >>> [round(g) for g in out["variation_gap"]]   # why the flat one is far: no variation
    [1, 218, 218]
""".format(settings=_SETTINGS)


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
        """EDA rewards of `predictions` against the reference set `references` (or `pool=`)."""
        # evaluate would require references row-aligned with predictions (one Arrow
        # table); EDA's references are a set of any size, so pass them as a keyword.
        return super().compute(predictions=predictions, reference_entropies=references, **kwargs)

    def _compute(self, predictions, reference_entropies=None, pool=None, bins=None, settings=None, model_id=None,
                 **changes):
        if (reference_entropies is None) == (pool is None):
            raise ValueError(
                "references / pool: pass exactly one: references=<general-domain entropy sequences> "
                "or pool=<a general-entropy pool or an EDAReference dict>"
            )
        if pool is not None:
            model = None if model_id is None else model_identity(model_id)
            reference = (EDAReference.from_dict(pool) if isinstance(pool, dict)
                         else pool_reference(load_pool(pool, model=model)))
        else:
            reference = [list(r) for r in reference_entropies]
        eda = EDAReward(reference, bins=bins, settings=settings, **changes)
        scores = eda.score([list(p) for p in predictions])
        out = {"eda_reward": scores.reward.tolist(), "mean_eda_reward": float(scores.reward.mean()),
               "distance": scores.distance.tolist(), "magnitude_z": scores.magnitude_z.tolist()}
        for part in ("magnitude_gap", "variation_gap", "dynamics_gap"):
            values = getattr(scores, part)
            out[part], out[f"mean_{part}"] = values.tolist(), float(values.mean())
        if eda.d0 is not None:
            out["d0"] = eda.d0
        return out

