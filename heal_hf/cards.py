"""Model and dataset cards, generated with huggingface_hub's ModelCard / DatasetCard.

YAML metadata always comes from `ModelCardData` / `DatasetCardData`, never from
hand-written strings.
"""

from __future__ import annotations

# --- Model cards: trained HEAL checkpoints and adapters (heal-hf train / heal-hf card) ---


# --- Dataset cards: the general-entropy pool (heal-hf build-pool / stage-hub) ---

POOL_CARD_TAGS = ["heal", "rlvr", "grpo", "entropy", "reasoning", "synthetic"]
HEAL_BIBTEX = """@inproceedings{liu2026healing,
  title     = {HEALing Entropy Collapse: Enhancing Exploration in Few-Shot RLVR via
               Hybrid-Domain Entropy Dynamics Alignment},
  author    = {Liu and Hu and Wang and Liu and Xiang and Li and Qiu and Su},
  booktitle = {Proceedings of ACL},
  year      = {2026},
  eprint    = {2604.17928},
  archivePrefix = {arXiv}
}"""

_POOL_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ pretty_name }}: `{{ repo_id }}`

A **general-entropy pool** for [HEAL](https://arxiv.org/abs/2604.17928) (hybrid-domain
entropy dynamics alignment for few-shot RLVR), built with
[heal-hf](https://pypi.org/project/heal-hf/). One row per general-domain problem holds
{{ k }} responses sampled from `{{ model_id }}`, each response's per-token entropies
(nats) and entropy dynamics profile ({{ bins }}-bin curve, magnitude, total variation,
volatility), the verifier's outcomes, and the hybrid-selection criteria: reasoning
uncertainty (mean entropy, 4p(1-p) of the pass rate p) and exploratory diversity
(curve distance, lexical diversity).

What it is for:
- **hybrid-domain selection**: pick the few general-domain problems to mix into a
  few-shot target set without running the model (`heal_hf.processors.HybridSelection`);
- **the EDA reference**: the general-domain entropy statistics that the Entropy
  Dynamics Alignment reward aligns target-domain rollouts to
  (`heal_hf.pool.pool_reference`, `evaluate.load("{{ namespace }}/eda")` with `pool=`).

Entropies depend on the model, its tokenizer and the temperature: use this pool with
`{{ model_id }}` (tokenizer fingerprint `{{ tokenizer_hash }}`) or build one for your
model with `heal-hf build-pool`.

## How to use

```python
from datasets import load_dataset

pool = load_dataset("{{ repo_id }}", split="train")
print(pool[0]["prompt"], pool[0]["pass_rate"], pool[0]["entropy_curves"][0])
```

With heal-hf (validates the schema version, bins and tokenizer):

```python
from heal_hf.pool import load_pool, pool_reference
from heal_hf.processors import HybridSelection

pool = load_pool("{{ repo_id }}", bins={{ bins }})
mixed = HybridSelection(pool)(target_dataset)   # target rows + 3x general picks, with a `domain` column
reference = pool_reference(pool)                # EDA reference statistics
```

## How it was built

| setting | value |
|---|---|
| model | `{{ model_id }}` |
| source dataset | `{{ dataset_id }}` ({{ num_prompts }} prompts) |
| responses per prompt (k) | {{ k }} |
| curve bins (K) | {{ bins }} |
| max new tokens | {{ config.max_new_tokens }} |
| temperature / top-p / top-k | {{ config.temperature }} / {{ config.top_p }} / {{ config.top_k }} |
| verifier | {% if config.verifier_column %}per row, from column `{{ config.verifier_column }}`{% else %}`{{ config.verifier }}`{% endif %} |
| chat template | {{ config.chat_template }} |
| seed | {{ config.seed }} (shard i samples with `heal_hf.pool.shard_seed(seed, i)`) |
| shards | {{ num_shards }} of {{ config.shard_size }} prompts, {{ config.batch_size }} sequences per generate call |
| schema version | {{ schema_version }} |
| heal-hf | {{ heal_hf_version }} |

Token entropy H_t = -sum_v p(v) log p(v) with p = softmax(logits_t / temperature) over
the full vocabulary, before top-k/top-p truncation, recorded during generation.
{% if command -%}
The command that built it:

```bash
{{ command }}
```
{%- else -%}
The equivalent command (the same rows on the same hardware and library versions):

```bash
heal-hf build-pool --model {{ model_id }} --dataset {{ dataset_id }} --out DIR \\
    --prompt-column {{ config.prompt_column }} --answer-column {{ config.answer_column }}
{%- if config.source_column %} --source-column {{ config.source_column }}{% endif %}
{%- if config.source %} --source {{ config.source }}{% endif %} \\
    --samples-per-prompt {{ k }} --bins {{ bins }} --max-new-tokens {{ config.max_new_tokens }} \\
    --temperature {{ config.temperature }} --top-p {{ config.top_p }} --top-k {{ config.top_k }} \\
    --verifier {{ config.verifier }}{% if config.verifier_column %} --verifier-column {{ config.verifier_column }}{% endif %} --seed {{ config.seed }} \\
    --shard-size {{ config.shard_size }} --batch-size {{ config.batch_size }}{% if config.chat_template %} --chat-template{% endif %}
```
{%- endif %}

## Columns

| column | type | meaning |
|---|---|---|
{% for name, dtype, doc in columns -%}
| `{{ name }}` | {{ dtype }} | {{ doc }} |
{% endfor %}
## Statistics

| statistic | value |
|---|---|
| prompts | {{ stats.prompts }} |
| responses | {{ stats.responses }} |
| generated tokens | {{ stats.tokens }} |
| mean response length (tokens) | {{ "%.1f"|format(stats.mean_response_tokens) }} |
| mean pass rate | {{ "%.3f"|format(stats.mean_pass_rate) }} |
| share of prompts with 0 < p < 1 | {{ "%.3f"|format(stats.share_partially_solved) }} |
| mean token entropy (nats) | {{ "%.3f"|format(stats.mean_token_entropy) }} |
| mean curve diversity (nats) | {{ "%.3f"|format(stats.mean_curve_diversity) }} |
| mean lexical diversity | {{ "%.3f"|format(stats.mean_lexical_diversity) }} |

Prompts per source: {% for s, c in stats.sources.items() %}`{{ s }}` {{ c }}{% if not loop.last %}, {% endif %}{% endfor %}.

## Citation

```bibtex
{{ bibtex }}
```
"""


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "1M<n<10M" if n < 10_000_000 else "n>10M"


def _feature_type(feature: object) -> str:
    import datasets

    if isinstance(feature, datasets.Value):
        return feature.dtype
    if isinstance(feature, (datasets.Sequence, datasets.List, datasets.LargeList)):
        return f"list[{_feature_type(feature.feature)}]"
    if isinstance(feature, dict):
        return "struct"
    return type(feature).__name__


def pool_dataset_card(manifest: dict, stats: dict, repo_id: str, license: str = "other") -> "DatasetCard":
    """The dataset card of a general-entropy pool.

    Args:
        manifest: the build's `pool_build.json` (`heal_hf.pool.read_build_manifest`).
        stats: `heal_hf.pool.pool_stats` of the pool.
        repo_id: the Hub id the card describes (usage snippets name it).
        license: a Hub license id for the data.
    """
    import datasets
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard, DatasetCardData

    from .pool import POOL_COLUMN_DOCS, POOL_FEATURES

    config = manifest["config"]
    num_shards = int(manifest["num_shards"])
    data = DatasetCardData(
        license=license,
        pretty_name="HEAL general-entropy pool",
        task_categories=["text-generation", "reinforcement-learning"],
        size_categories=[_size_category(int(stats["prompts"]))],
        tags=POOL_CARD_TAGS,
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
    )
    DatasetInfosDict({"default": datasets.DatasetInfo(features=POOL_FEATURES)}).to_dataset_card_data(data)
    columns = [
        (name, _feature_type(feature), POOL_COLUMN_DOCS[name].replace("|", "\\|"))  # a bare | splits the table cell
        for name, feature in POOL_FEATURES.items()
    ]
    return DatasetCard.from_template(
        data,
        template_str=_POOL_CARD_TEMPLATE,
        pretty_name=data.pretty_name,
        repo_id=repo_id,
        namespace=repo_id.split("/")[0],
        model_id=manifest["model_id"],
        tokenizer_hash=manifest["tokenizer_hash"],
        dataset_id=manifest["dataset"]["id"],
        num_prompts=manifest["dataset"]["num_prompts"],
        k=config["samples_per_prompt"],
        bins=config["bins"],
        config=config,
        num_shards=num_shards,
        schema_version=manifest["schema_version"],
        command=manifest.get("command"),
        heal_hf_version=manifest["heal_hf_version"],
        columns=columns,
        stats=stats,
        bibtex=HEAL_BIBTEX,
    )
