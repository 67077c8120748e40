"""Model and dataset cards, generated with huggingface_hub's ModelCard / DatasetCard.

YAML metadata always comes from `ModelCardData` / `DatasetCardData`, never from
hand-written strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np
from datasets.info import DatasetInfosDict
from huggingface_hub import (
    DatasetCard,
    DatasetCardData,
    EvalResult,
    ModelCard,
    ModelCardData,
)

from .. import HEAL_BIBTEX
from ..data.files import atomic_write, write_text_atomic
from ..data.pool import POOL_COLUMN_DOCS, POOL_FEATURES, POOL_REPO_ID, load_pool
from ..data.pool_shards import DATA_DIR, read_build_manifest
from ..data.run_folder import CURVES_FILE, run_record

# --- Model cards: trained HEAL checkpoints and adapters (heal-hf train / heal-hf card) ---

MODEL_CARD_TAGS = ["heal", "rlvr", "grpo", "trl", "few-shot"]
_SUMMARY_METRICS = (
    ("heal/reward/target", "reward, target rows (r_verify + lambda r_EDA)"),
    ("heal/reward/general", "reward, general rows (r_verify)"),
    ("heal/eda_reward", "EDA reward r_EDA, target rows"),
    ("heal/eda_distance", "EDA distance D, target rows"),
    ("heal/eda_d0", "EDA D0 (distance that scores 0.5)"),
    ("heal/entropy/target", "mean token entropy, target (nats)"),
    ("heal/entropy/general", "mean token entropy, general (nats)"),
    ("heal/entropy_retention/target", "entropy retention, target"),
    ("heal/entropy_retention/general", "entropy retention, general"),
)
_EVAL_METRICS = (
    ("greedy_accuracy", "greedy accuracy"),
    ("sample_accuracy", "accuracy of sampled answers"),
    ("mean_token_entropy", "mean token entropy of samples (nats)"),
)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def _eda_sentence(training: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """Which EDA estimator trained the model and, for the calibrated one, its D0 over training."""
    estimator = training.get("eda_estimator", "gaussian")  # runs of heal-hf < 0.2 had only the gaussian one
    if training.get("eda_weight", 0) == 0:
        return f"EDA off (lambda = 0): plain GRPO rewards; the {estimator} EDA reward was only logged."
    if estimator == "gaussian":
        return "EDA reward: the gaussian estimator (v1), r = exp(-D / 2)."
    points = [(h["step"], h["heal/eda_d0"]) for h in history if "heal/eda_d0" in h]
    text = ("EDA reward: the calibrated estimator (v2), r = 1 / (1 + D / D0), D0 being the median D of the "
            "reference's own trajectories (a trajectory at distance D0 scores 0.5)")
    if points:
        text += f"; D0 was {points[0][1]:.3g} at step {points[0][0]} and {points[-1][1]:.3g} at step {points[-1][0]}"
    return text + "."


def model_card(
    run: dict[str, Any], metrics: dict[str, Any], repo_id: str | None = None, location: str | None = None
) -> ModelCard:
    """The model card of a HEAL run, from its heal_run.json and metrics.

    Args:
        run, metrics: as `run_record` returns them.
        repo_id: the Hub repo the model is (or will be) at; names the card and the snippet.
        location: what the snippet loads when there is no repo_id (e.g. the local folder).
    """
    settings, data, training, model = run["settings"], run["data"], run["training"], run["model"]
    adapter = bool(model["adapter"])
    ref = repo_id or location or settings["output_dir"]
    name = Path(str(ref)).name if repo_id is None else repo_id.split("/")[-1]
    base = model.get("base_model_id")
    base_text = f"[`{base}`](https://huggingface.co/{base})" if base else f"`{model['path']}`"
    evaluation = metrics.get("eval", {})
    trained_eval = evaluation.get("trained")
    k = settings["eval_samples"]
    eval_results = []
    if trained_eval:
        source = data["eval"]["source"]
        dataset_id = Path(source).name if Path(source).exists() else source  # a Hub id, or just a local file's name
        for key, label in (("greedy_accuracy", "greedy accuracy"), (f"pass@{k}", f"pass@{k}")):
            eval_results.append(EvalResult(
                task_type="text-generation", task_name="Target-domain reasoning (verifiable answers)",
                dataset_type=dataset_id, dataset_name=f"{dataset_id} (held-out target)",
                dataset_split=data["eval"]["split"], metric_type="accuracy" if key == "greedy_accuracy" else "pass@k",
                metric_name=label, metric_value=round(float(trained_eval[key]), 4),
            ))
    hub_datasets = [d for d in (
        data["target"]["source"] if not Path(data["target"]["source"]).exists() else None,
        data["general"].get("hub_id"),
    ) if d]
    card_data = ModelCardData(
        base_model=base, library_name="peft" if adapter else "transformers", license=settings["license"],
        datasets=hub_datasets or None, tags=MODEL_CARD_TAGS + (["lora", "peft"] if adapter else []),
        pipeline_tag="text-generation", model_name=name, eval_results=eval_results or None,
    )

    prompt = data["example_prompt"]
    max_new = training["max_completion_length"]
    if adapter:
        load = (f"from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
                f"model = AutoPeftModelForCausalLM.from_pretrained({str(ref)!r})  # base model + HEAL adapter\n")
    else:
        load = (f"from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f"model = AutoModelForCausalLM.from_pretrained({str(ref)!r})\n")
    encode = (
        f"inputs = tokenizer.apply_chat_template([{{'role': 'user', 'content': {prompt!r}}}], "
        "add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
        if settings.get("chat_template") else f"inputs = tokenizer({prompt!r}, return_tensors='pt')\n"
    )
    snippet = (
        load + f"tokenizer = AutoTokenizer.from_pretrained({str(ref)!r})\n" + encode
        + f"output = model.generate(**inputs, max_new_tokens={max_new}, do_sample=False)\n"
        "print(tokenizer.decode(output[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True))\n"
    )
    what = (
        f"{'A LoRA adapter for' if adapter else 'A fine-tune of'} {base_text}, trained with "
        f"[HEAL](https://arxiv.org/abs/2604.17928) (hybrid-domain data + Entropy Dynamics Alignment) for "
        f"few-shot RLVR, using TRL's GRPO through [heal-hf](https://pypi.org/project/heal-hf/) "
        f"{run['heal_hf_version']}: {data['target']['rows']} target-domain problems from "
        f"`{data['target']['source']}` plus {data['general']['rows']} general-domain problems selected from "
        f"the general-entropy pool `{data['general']['source']}`, for {metrics.get('train', {}).get('global_step', '?')} steps."
    )
    if adapter:
        what += f" Loading it needs the base model at `{model['path']}`, as recorded in adapter_config.json."
    sections = [
        (f"# {name}", what),
        ("## How to use", f"```python\n{snippet}```"),
        ("## Training data", _table(["part", "rows", "source", "how chosen"], [
            ["target domain", data["target"]["rows"], f"`{data['target']['source']}` ({data['target']['split']})", "all rows (few-shot set)"],
            ["general domain", data["general"]["rows"], f"pool `{data['general']['source']}` ({data['general']['pool_rows']} problems, sampled from `{data['general']['pool_model_id']}`)",
             f"rank-normalized reasoning uncertainty x exploratory diversity, greedy MMR picks (redundancy {data['general']['redundancy']})"],
        ]) + f"\n\nEvery generation batch holds {data['target_prompts_per_batch']} target and "
             f"{data['prompts_per_batch'] - data['target_prompts_per_batch']} general prompts."),
        ("## Training procedure", "HEAL:\n\n" + _eda_sentence(training, metrics.get("history", [])) + "\n\n" + _table(["setting", "value"], [[k, training[k]] for k in training if k.startswith("eda_") or k == "target_fraction"])
         + "\n\nGRPO" + (" with LoRA" if adapter else "") + ":\n\n"
         + _table(["setting", "value"], [[k, training[k]] for k in training if not (k.startswith("eda_") or k == "target_fraction")])
         + "\n\nVersions: " + ", ".join(f"{k} {v}" for k, v in run["versions"].items()) + "."),
    ]
    history = metrics.get("history", [])
    if history:
        last = history[-1]
        retention = ", ".join(f"{d} {last[f'heal/entropy_retention/{d}']:.3f}" for d in ("target", "general")
                              if f"heal/entropy_retention/{d}" in last)
        sections.append(("## Entropy dynamics", f"![Entropy curves](entropy_curves.png)\n\nMean token entropy and its "
                         f"retention (entropy now / at step 0) per domain over training, and the mean entropy curve of "
                         f"a response at step 0 and at the last step. Retention at step {last['step']}: {retention}."))
    results = []
    if trained_eval:
        base_eval = evaluation.get("base")
        rows = [[label] + ([base_eval[key]] if base_eval else []) + [trained_eval[key]]
                for key, label in _EVAL_METRICS[:1] + ((f"pass@{k}", f"pass@{k}"),) + _EVAL_METRICS[1:]]
        header = ["metric"] + (["before training"] if base_eval else []) + ["after training"]
        results.append(f"Held-out target problems: {trained_eval['problems']} from `{data['eval']['source']}`.\n\n"
                       + _table(header, rows))
    if history:
        first, last = history[0], history[-1]
        rows = [[label, first[key], last[key]] for key, label in _SUMMARY_METRICS if key in first and key in last]
        results.append(f"Training (logged means, step {first['step']} and step {last['step']}):\n\n"
                       + _table(["metric", f"step {first['step']}", f"step {last['step']}"], rows))
    if results:
        sections.append(("## Results", "\n\n".join(results)))
    sections.append(("## Citation", f"```bibtex\n{HEAL_BIBTEX}\n```"))
    for title, body in sections:
        if not body.strip():
            raise ValueError(f"model card: section {title!r} came out empty")
    text = "\n\n".join(f"{title}\n\n{body}" for title, body in sections)
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{text}\n")


def write_model_card(folder: str | Path, repo_id: str | None = None) -> Path:
    """Write README.md (and entropy_curves.png) for a run or checkpoint folder from its stored records."""
    folder = Path(folder)
    run, metrics = run_record(folder)
    if metrics.get("history"):
        plot_entropy_curves(metrics, folder / CURVES_FILE)
    card = model_card(run, metrics, repo_id=repo_id, location=str(folder.resolve()))
    path = folder / "README.md"
    with atomic_write(path) as tmp:
        card.save(tmp)
    return path


def plot_entropy_curves(metrics: dict[str, Any], path: str | Path) -> Path:
    """Save the figure of a run: entropy and its retention per domain over steps, and the mean K-bin curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = metrics.get("history", [])
    curves = metrics.get("curves", {})
    colors = {"target": "tab:red", "general": "tab:blue"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for domain, color in colors.items():
        for ax, key in ((axes[0], f"heal/entropy/{domain}"), (axes[1], f"heal/entropy_retention/{domain}")):
            points = [(h["step"], h[key]) for h in history if key in h]
            if points:
                ax.plot(*zip(*points), color=color, label=domain)
        for when, style in (("initial", "--"), ("latest", "-")):
            curve = curves.get(when, {}).get(domain, {}).get("curve")
            if curve:
                x = [(k + 0.5) / len(curve) for k in range(len(curve))]
                axes[2].plot(x, curve, style, color=color, label=f"{domain}, {'step 0' if when == 'initial' else 'last step'}")
    axes[0].set(title="Mean token entropy", xlabel="step", ylabel="nats")
    axes[1].set(title="Entropy retention (now / step 0)", xlabel="step")
    axes[2].set(title="Entropy dynamics (mean curve)", xlabel="normalized position in the response", ylabel="nats")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=100, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


# --- Dataset cards: the general-entropy pool (heal-hf build-pool / stage-hub) ---

POOL_CARD_TAGS = ["heal", "rlvr", "grpo", "entropy", "reasoning", "synthetic"]

_POOL_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ pretty_name }}: `{{ repo_id }}`

A **general-entropy pool** for [HEAL](https://arxiv.org/abs/2604.17928) (hybrid-domain
entropy dynamics alignment for few-shot RLVR), built with
[heal-hf](https://pypi.org/project/heal-hf/). One row per general-domain problem holds
{% if by_model %}k responses sampled from one model{% else %}{{ configs[0].manifest.config.samples_per_prompt }} responses sampled from `{{ configs[0].manifest.model_id }}`{% endif %}, each response's per-token entropies
(nats) and entropy dynamics profile ({% if by_model %}K{% else %}{{ configs[0].manifest.config.bins }}{% endif %}-bin curve, magnitude, total variation,
volatility), the verifier's outcomes, and the hybrid-selection criteria: reasoning
uncertainty (mean entropy, 4p(1-p) of the pass rate p) and exploratory diversity
(curve distance, lexical diversity).

What it is for:
- **hybrid-domain selection**: pick the few general-domain problems to mix into a
  few-shot target set without running the model (`heal_hf.data.processors.HybridSelection`);
- **the EDA reference**: the general-domain entropy statistics that the Entropy
  Dynamics Alignment reward aligns target-domain rollouts to
  (`heal_hf.data.pool.pool_reference`, `evaluate.load("{{ namespace }}/eda")` with `pool=`).
{% if by_model %}
## Configs: one pool per model

Entropies depend on the model, its tokenizer and the temperature, so each config holds
one model's pool: use the config of the model you train, or build one for your model
with `heal-hf build-pool` and add it as a config with `heal-hf stage-hub --add-pool NAME=DIR`.

| config | model | source dataset | prompts | responses | k | temperature | top-p / top-k | max new tokens | K | tokenizer |
|---|---|---|---|---|---|---|---|---|---|---|
{% for c in configs -%}
| `{{ c.name }}`{% if loop.first %} (default){% endif %} | `{{ c.manifest.model_id }}` | `{{ c.manifest.dataset.id }}` | {{ c.stats.prompts }} | {{ c.stats.responses }} | {{ c.manifest.config.samples_per_prompt }} | {{ c.manifest.config.temperature }} | {{ c.manifest.config.top_p }} / {{ c.manifest.config.top_k }} | {{ c.manifest.config.max_new_tokens }} | {{ c.manifest.config.bins }} | `{{ c.manifest.tokenizer_hash }}` |
{% endfor %}
{%- else %}
Entropies depend on the model, its tokenizer and the temperature: use this pool with
`{{ configs[0].manifest.model_id }}` (tokenizer fingerprint `{{ configs[0].manifest.tokenizer_hash }}`) or build one for your
model with `heal-hf build-pool`.
{% endif %}
## How to use

```python
from datasets import load_dataset

pool = load_dataset("{{ repo_id }}", split="train"){% if by_model %}   # the default config, `{{ configs[0].name }}`{% endif %}
{%- for c in configs[1:] %}
pool = load_dataset("{{ repo_id }}", "{{ c.name }}", split="train")   # the pool of `{{ c.manifest.model_id }}`
{%- endfor %}
print(pool[0]["prompt"], pool[0]["pass_rate"], pool[0]["entropy_curves"][0])
```

With heal-hf (validates the schema version, bins and tokenizer):

```python
from heal_hf.data.pool import load_pool, pool_reference
from heal_hf.data.processors import HybridSelection

pool = load_pool("{{ repo_id }}"{% if by_model %}, config="{{ configs[-1].name }}"{% endif %}, bins={{ configs[-1].manifest.config.bins }})
mixed = HybridSelection(pool)(target_dataset)   # target rows + 3x general picks, with a `domain` column
reference = pool_reference(pool)                # EDA reference statistics
```
{%- if by_model %}

`heal-hf train --pool {{ repo_id }}:{{ configs[-1].name }}` trains with that config's pool.
{%- endif %}
{% for c in configs %}
## How it was built{% if by_model %}: `{{ c.name }}`{% endif %}

| setting | value |
|---|---|
| model | `{{ c.manifest.model_id }}` |
| source dataset | `{{ c.manifest.dataset.id }}` ({{ c.manifest.dataset.num_prompts }} prompts) |
| responses per prompt (k) | {{ c.manifest.config.samples_per_prompt }} |
| curve bins (K) | {{ c.manifest.config.bins }} |
| max new tokens | {{ c.manifest.config.max_new_tokens }} |
| temperature / top-p / top-k | {{ c.manifest.config.temperature }} / {{ c.manifest.config.top_p }} / {{ c.manifest.config.top_k }} |
| verifier | {% if c.manifest.config.verifier_column %}per row, from column `{{ c.manifest.config.verifier_column }}`{% else %}`{{ c.manifest.config.verifier }}`{% endif %} |
| chat template | {{ c.manifest.config.chat_template }} |
| seed | {{ c.manifest.config.seed }} (shard i samples with `heal_hf.data.pool.shard_seed(seed, i)`) |
| shards | {{ c.manifest.num_shards }} of {{ c.manifest.config.shard_size }} prompts, {{ c.manifest.config.batch_size }} sequences per generate call |
| data files | `{{ c.data_files }}` |
| schema version | {{ c.manifest.schema_version }} |
| heal-hf | {{ c.manifest.heal_hf_version }} |

Token entropy H_t = -sum_v p(v) log p(v) with p = softmax(logits_t / temperature) over
the full vocabulary, before top-k/top-p truncation, recorded during generation.
{% if c.manifest.command -%}
The command that built it:

```bash
{{ c.manifest.command }}
```
{%- else -%}
{%- set b = c.manifest.config -%}
The equivalent command (the same rows on the same hardware and library versions):

```bash
heal-hf build-pool --model {{ c.manifest.model_id }} --dataset {{ c.manifest.dataset.id }} --out DIR \\
    --prompt-column {{ b.prompt_column }} --answer-column {{ b.answer_column }}
{%- if b.source_column %} --source-column {{ b.source_column }}{% endif %}
{%- if b.source %} --source {{ b.source }}{% endif %} \\
    --samples-per-prompt {{ b.samples_per_prompt }} --bins {{ b.bins }} --max-new-tokens {{ b.max_new_tokens }} \\
    --temperature {{ b.temperature }} --top-p {{ b.top_p }} --top-k {{ b.top_k }} \\
    --verifier {{ b.verifier }}{% if b.verifier_column %} --verifier-column {{ b.verifier_column }}{% endif %} --seed {{ b.seed }} \\
    --shard-size {{ b.shard_size }} --batch-size {{ b.batch_size }}{% if b.chat_template %} --chat-template{% endif %}
{%- if b.backend and b.backend != "transformers" %} --backend {{ b.backend }}{% endif %}
```
{%- endif %}

{% if by_model %}### Statistics of `{{ c.name }}`{% else %}## Statistics{% endif %}

| statistic | value |
|---|---|
| prompts | {{ c.stats.prompts }} |
| responses | {{ c.stats.responses }} |
| generated tokens | {{ c.stats.tokens }} |
| mean response length (tokens) | {{ "%.1f"|format(c.stats.mean_response_tokens) }} |
| mean pass rate | {{ "%.3f"|format(c.stats.mean_pass_rate) }} |
| share of prompts with 0 < p < 1 | {{ "%.3f"|format(c.stats.share_partially_solved) }} |
| mean token entropy (nats) | {{ "%.3f"|format(c.stats.mean_token_entropy) }} |
| mean curve diversity (nats) | {{ "%.3f"|format(c.stats.mean_curve_diversity) }} |
| mean lexical diversity | {{ "%.3f"|format(c.stats.mean_lexical_diversity) }} |

Prompts per source: {% for s, n in c.stats.sources.items() %}`{{ s }}` {{ n }}{% if not loop.last %}, {% endif %}{% endfor %}.
{% endfor %}
## Columns

| column | type | meaning |
|---|---|---|
{% for name, dtype, doc in columns -%}
| `{{ name }}` | {{ dtype }} | {{ doc }} |
{% endfor %}
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
    if isinstance(feature, datasets.Value):
        return feature.dtype
    if isinstance(feature, (datasets.Sequence, datasets.List, datasets.LargeList)):
        return f"list[{_feature_type(feature.feature)}]"
    if isinstance(feature, dict):
        return "struct"
    return type(feature).__name__


@dataclass(frozen=True)
class PoolCardConfig:
    """One config of a pool dataset card: one model's pool."""

    name: str
    """the `datasets` config name ("default" for a build folder's one pool)"""
    data_files: str
    """its shards, a pattern relative to the repo root (e.g. "toy-reasoner/data/train-*")"""
    manifest: dict[str, Any]
    """the build's `pool_build.json` (`heal_hf.data.pool.read_build_manifest`)"""
    stats: dict[str, Any]
    """`pool_stats` of its rows"""


def pool_card_config(
    name: str, build_dir: str | Path, data_files: str, pool: datasets.Dataset | None = None
) -> PoolCardConfig:
    """The card config of a complete build folder: its manifest, and the statistics of its rows.

    `pool`: the folder's rows when the caller already holds them (default: `load_pool(build_dir)`).
    """
    stats = pool_stats(pool if pool is not None else load_pool(build_dir))
    return PoolCardConfig(name, data_files, read_build_manifest(build_dir), stats)


def pool_dataset_card(configs: Sequence[PoolCardConfig], repo_id: str, license: str = "other") -> DatasetCard:
    """The dataset card of a general-entropy pool dataset: one `datasets` config per model's pool.

    Args:
        configs: the pools; the first is the default config (`load_dataset(repo_id)`).
            A single config named "default" gives a one-pool card (a build folder's);
            otherwise the card lists every config with its model, source and sampling.
        repo_id: the Hub id the card describes (usage snippets name it).
        license: a Hub license id for the data.
    """
    by_model = not (len(configs) == 1 and configs[0].name == "default")
    data = DatasetCardData(
        license=license,
        pretty_name="HEAL general-entropy pool",
        task_categories=["text-generation", "reinforcement-learning"],
        size_categories=[_size_category(sum(int(c.stats["prompts"]) for c in configs))],
        tags=POOL_CARD_TAGS,
        configs=[
            {"config_name": c.name, "data_files": [{"split": "train", "path": c.data_files}],
             **({"default": True} if by_model and i == 0 else {})}
            for i, c in enumerate(configs)
        ],
    )
    DatasetInfosDict(
        {c.name: datasets.DatasetInfo(features=POOL_FEATURES, config_name=c.name) for c in configs}
    ).to_dataset_card_data(data)
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
        configs=list(configs),
        by_model=by_model,
        columns=columns,
        bibtex=HEAL_BIBTEX,
    )


def pool_card_license(build_dir: str | Path) -> str:
    """The license on a build folder's card ("other" when it has no card or the card names none)."""
    readme = Path(build_dir) / "README.md"
    return (DatasetCard.load(readme).data.license if readme.exists() else None) or "other"


def pool_stats(pool: datasets.Dataset) -> dict[str, Any]:
    """Summary statistics of a pool, for its card (entropies in nats)."""
    lengths = np.concatenate([np.asarray(x, dtype=np.float64) for x in pool["lengths"]])
    pass_rate = np.asarray(list(pool["pass_rate"]), dtype=np.float64)
    sources, counts = np.unique(np.asarray(list(pool["source"])), return_counts=True)
    return {
        "prompts": len(pool),
        "responses": int(len(lengths)),
        "tokens": int(lengths.sum()),
        "mean_response_tokens": float(lengths.mean()),
        "mean_pass_rate": float(pass_rate.mean()),
        "share_partially_solved": float(((pass_rate > 0) & (pass_rate < 1)).mean()),
        "mean_token_entropy": float(np.mean(list(pool["mean_entropy"]))),
        "mean_curve_diversity": float(np.mean(list(pool["curve_diversity"]))),
        "mean_lexical_diversity": float(np.mean(list(pool["lexical_diversity"]))),
        "sources": {str(s): int(c) for s, c in zip(sources, counts)},
    }


def pool_card_text(
    out_dir: str | Path, repo_id: str = POOL_REPO_ID, license: str | None = None, pool: datasets.Dataset | None = None
) -> str:
    """The dataset card (README.md text) of a complete build folder, for Hub repo `repo_id`.

    `license` None keeps the license of the card already there ("other" if none).
    `pool`: the folder's rows when the caller already holds them (default: `load_pool(out_dir)`).
    """
    config = pool_card_config("default", out_dir, f"{DATA_DIR}/train-*", pool=pool)
    return str(pool_dataset_card([config], repo_id=repo_id, license=license or pool_card_license(out_dir)))


def write_pool_card(
    out_dir: str | Path, repo_id: str = POOL_REPO_ID, license: str | None = None, pool: datasets.Dataset | None = None
) -> Path:
    """Write `pool_card_text` to the build folder's README.md and return its path."""
    readme = Path(out_dir) / "README.md"
    write_text_atomic(readme, pool_card_text(out_dir, repo_id=repo_id, license=license, pool=pool))
    return readme
