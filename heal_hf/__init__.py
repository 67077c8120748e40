"""heal-hf: HEAL (hybrid-domain entropy dynamics alignment) for few-shot RLVR on Hugging Face.

The math core is importable from here and needs only torch and numpy:
`token_entropy`, `EntropyProfile`, `EDAReference`, `EDAReward`, `EDASettings`, `HybridSelector`.
`EntropyMonitor` (a TRL callback) is here too, imported on first use so that this stays light.
Ecosystem adapters live in submodules (`heal_hf.trl`, `heal_hf.data.pool`, ...).
"""

from .core import verifiers
from .core.eda import EDAReference, EDAReward, EDAScores, EDASettings
from .core.entropy import token_entropy
from .core.profiles import EntropyProfile
from .core.selection import HybridSelector, Selection, response_criteria

__version__ = "0.1.0"

HEAL_BIBTEX = """@inproceedings{liu2026healing,
  title     = {HEALing Entropy Collapse: Enhancing Exploration in Few-Shot RLVR via
               Hybrid-Domain Entropy Dynamics Alignment},
  author    = {Liu and Hu and Wang and Liu and Xiang and Li and Qiu and Su},
  booktitle = {Proceedings of ACL},
  year      = {2026},
  eprint    = {2604.17928},
  archivePrefix = {arXiv}
}"""
"""The paper's citation, for model and dataset cards and the evaluate modules."""

__all__ = [
    "HEAL_BIBTEX",
    "EDAReference",
    "EDAReward",
    "EDAScores",
    "EDASettings",
    "EntropyMonitor",
    "EntropyProfile",
    "HybridSelector",
    "Selection",
    "response_criteria",
    "token_entropy",
    "verifiers",
    "__version__",
]


def __getattr__(name: str):
    # EntropyMonitor needs transformers and TRL: load them when it is asked for, not on `import heal_hf`.
    if name == "EntropyMonitor":
        from .trl.monitor import EntropyMonitor

        return EntropyMonitor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
