"""Model and dataset cards, generated with huggingface_hub's ModelCard / DatasetCard.

YAML metadata always comes from `ModelCardData` / `DatasetCardData`, never from
hand-written strings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

# --- Model cards: trained HEAL checkpoints and adapters (heal-hf train / heal-hf card) ---

HEAL_BIBTEX = """@inproceedings{liu2026healing,
  title     = {HEALing Entropy Collapse: Enhancing Exploration in Few-Shot RLVR via
               Hybrid-Domain Entropy Dynamics Alignment},
  author    = {Liu and Hu and Wang and Liu and Xiang and Li and Qiu and Su},
  booktitle = {Proceedings of ACL},
  year      = {2026},
  eprint    = {2604.17928},
  archivePrefix = {arXiv}
}"""
MODEL_CARD_TAGS = ["heal", "rlvr", "grpo", "trl", "few-shot"]
_SUMMARY_METRICS = (
    ("heal/reward/target", "reward, target rows (r_verify + lambda r_EDA)"),
    ("heal/reward/general", "reward, general rows (r_verify)"),
    ("heal/eda_reward", "EDA reward r_EDA, target rows"),
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


def run_record(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(heal_run.json, metrics) of a `heal-hf train` output folder or of a checkpoint-N folder inside one.

    A checkpoint's metrics come from its trainer_state.json and heal_state.json
    (history and entropy curves up to that step; it has no evaluation).
    """
    from .train import METRICS_FILE, RUN_FILE, history_from_logs
    from .trl import STATE_FILE

    folder = Path(folder)
    if (folder / RUN_FILE).is_file():
        run = json.loads((folder / RUN_FILE).read_text())
        metrics_path = folder / METRICS_FILE
        if not metrics_path.is_file():
            raise ValueError(f"checkpoint: {folder} has no {METRICS_FILE}: the run has not finished; resume it first")
        return run, json.loads(metrics_path.read_text())
    if (folder.parent / RUN_FILE).is_file() and (folder / "trainer_state.json").is_file():
        run = json.loads((folder.parent / RUN_FILE).read_text())
        logs = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        state = json.loads((folder / STATE_FILE).read_text()) if (folder / STATE_FILE).is_file() else {}
        metrics = {
            "history": history_from_logs(logs),
            "curves": {"initial": state.get("initial", {}), "latest": state.get("latest", {})},
            "train": {"global_step": max((e.get("step", 0) for e in logs), default=0)},
        }
        return run, metrics
    raise ValueError(
        f"checkpoint: {folder} is neither a heal-hf train output folder ({RUN_FILE}) nor a checkpoint inside one"
    )


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


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
        ("## Training procedure", "HEAL:\n\n" + _table(["setting", "value"], [[k, training[k]] for k in training if k.startswith("eda_") or k == "target_fraction"])
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
    from .train import CURVES_FILE, plot_entropy_curves

    folder = Path(folder)
    run, metrics = run_record(folder)
    if metrics.get("history"):
        plot_entropy_curves(metrics, folder / CURVES_FILE)
    card = model_card(run, metrics, repo_id=repo_id, location=str(folder.resolve()))
    path = folder / "README.md"
    tmp = folder / f".README.md.tmp-{os.getpid()}"
    card.save(tmp)
    os.replace(tmp, path)
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
