"""Model and dataset cards, generated with huggingface_hub's ModelCard / DatasetCard.

YAML metadata always comes from `ModelCardData` / `DatasetCardData`, never from
hand-written strings.
"""

from __future__ import annotations

# --- Model cards: trained HEAL checkpoints and adapters (heal-hf train / heal-hf card) ---


# --- Dataset cards: the general-entropy pool (heal-hf build-pool / stage-hub) ---
