"""evaluate modules shipped with heal-hf, each laid out exactly as its Hub Space.

`evaluate.load(EDA_METRIC_PATH)` works offline; `evaluate.load("heal/eda")` loads
the same files from the Hub. Likewise `evaluate.load(ENTROPY_DYNAMICS_PATH,
module_type="measurement")` and `"heal/entropy_dynamics"`.
"""

from pathlib import Path

METRICS_DIR = Path(__file__).parent
EDA_METRIC_PATH = str(METRICS_DIR / "eda")
ENTROPY_DYNAMICS_PATH = str(METRICS_DIR / "entropy_dynamics")
