"""Model and dataset cards: huggingface_hub's `ModelCard` / `DatasetCard.from_template` on the Jinja templates
in `templates/` (model_card.md, pool_card.md).

This module gathers what a card says (from a run folder's records or a pool build's
manifest and rows) and formats its numbers; the templates lay it out. YAML metadata
always comes from `ModelCardData` / `DatasetCardData`, never from hand-written strings.
"""

from __future__ import annotations

import re
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

TEMPLATES = Path(__file__).parent / "templates"
"""The cards' Jinja templates (rendered by huggingface_hub's `ModelCard` / `DatasetCard.from_template`)."""

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


def _cells(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    """Table cells as the cards print them: floats to 4 significant digits."""
    return [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in rows]


def _eda_sentence(training: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """Which EDA estimator trained the model and, for the calibrated one, its D0 over training."""
    estimator = training["eda_estimator"]
    if training["eda_weight"] == 0:
        return f"EDA off (lambda = 0): plain GRPO rewards; the {estimator} EDA reward was only logged."
    if estimator == "gaussian":
        return "EDA reward: the gaussian estimator (v1), r = exp(-D / 2)."
    points = [(h["step"], h["heal/eda_d0"]) for h in history if "heal/eda_d0" in h]
    text = ("EDA reward: the calibrated estimator (v2), r = 1 / (1 + D / D0), D0 being the median D of the "
            "reference's own trajectories (a trajectory at distance D0 scores 0.5)")
    if points:
        text += f"; D0 was {points[0][1]:.3g} at step {points[0][0]} and {points[-1][1]:.3g} at step {points[-1][0]}"
    return text + "."


def shown(source: Any) -> str:
    """A data or model source as a published card names it: a Hub id as is, a local path by its name only."""
    text = str(source)
    return Path(text).name if Path(text).is_absolute() or Path(text).exists() else text


def model_card(
    run: dict[str, Any], metrics: dict[str, Any], repo_id: str | None = None, location: str | None = None
) -> ModelCard:
    """The model card of a HEAL run, from its heal_run.json and metrics (template: templates/model_card.md).

    Args:
        run, metrics: as `run_record` returns them.
        repo_id: the Hub repo the model is (or will be) at; names the card and the snippet.
        location: what the snippet loads when there is no repo_id (e.g. the local folder).
    """
    settings, data, training, model = run["settings"], run["data"], run["training"], run["model"]
    ref = repo_id or location or settings["output_dir"]
    name = Path(str(ref)).name if repo_id is None else repo_id.split("/")[-1]
    base = model.get("base_model_id")
    history = metrics.get("history", [])
    general = data["general"]
    card = ModelCard.from_template(
        _model_card_data(run, metrics, name),
        template_path=str(TEMPLATES / "model_card.md"),
        name=name,
        adapter=bool(model["adapter"]),
        base=f"[`{base}`](https://huggingface.co/{base})" if base else f"a local model, `{shown(model['path'])}`",
        base_id=base,
        target_source=shown(data["target"]["source"]),
        pool_source=shown(general["source"]),
        eval_source=shown(data["eval"]["source"]) if data.get("eval") else None,
        heal_hf_version=run["heal_hf_version"],
        data=data,
        model=model,
        steps=metrics.get("train", {}).get("global_step", "?"),
        location=repr(str(ref)),
        prompt=repr(data["example_prompt"]),
        chat_template=bool(settings.get("chat_template")),
        max_new_tokens=training["max_completion_length"],
        training_data=_cells([
            ["target domain", data["target"]["rows"], f"`{shown(data['target']['source'])}` ({data['target']['split']})",
             "all rows (few-shot set)"],
            ["general domain", general["rows"], f"pool `{shown(general['source'])}` ({general['pool_rows']} problems, "
             f"sampled from `{general['pool_model_id']}`)", "rank-normalized reasoning uncertainty x exploratory "
             f"diversity, greedy MMR picks (redundancy {general['redundancy']})"],
        ]),
        eda=_eda_sentence(training, history),
        heal_settings=_cells([[k, v] for k, v in training.items() if _is_heal_setting(k)]),
        grpo_settings=_cells([[k, v] for k, v in training.items() if not _is_heal_setting(k)]),
        versions=", ".join(f"{k} {v}" for k, v in run["versions"].items()),
        retention=_retention(history),
        evaluation=_evaluation_table(metrics.get("eval", {}), settings["eval_samples"]),
        training_summary=_training_summary(history),
        bibtex=HEAL_BIBTEX,
    )
    for body in re.split(r"^#+ .*$", card.text, flags=re.M)[1:]:
        if not body.strip():
            raise ValueError(f"model card: a section of {name}'s card came out empty")
    return card


def _is_heal_setting(key: str) -> bool:
    return key.startswith("eda_") or key == "target_fraction"


def _model_card_data(run: dict[str, Any], metrics: dict[str, Any], name: str) -> ModelCardData:
    """The card's metadata: base model, library, license, Hub datasets, tags and the held-out results."""
    settings, data, model = run["settings"], run["data"], run["model"]
    adapter = bool(model["adapter"])
    trained = metrics.get("eval", {}).get("trained")
    k = settings["eval_samples"]
    eval_results = []
    if trained:
        source = data["eval"]["source"]
        dataset_id = Path(source).name if Path(source).exists() else source  # a Hub id, or just a local file's name
        for key, label in (("greedy_accuracy", "greedy accuracy"), (f"pass@{k}", f"pass@{k}")):
            eval_results.append(EvalResult(
                task_type="text-generation", task_name="Target-domain reasoning (verifiable answers)",
                dataset_type=dataset_id, dataset_name=f"{dataset_id} (held-out target)",
                dataset_split=data["eval"]["split"], metric_type="accuracy" if key == "greedy_accuracy" else "pass@k",
                metric_name=label, metric_value=round(float(trained[key]), 4),
            ))
    hub_datasets = [d for d in (
        data["target"]["source"] if not Path(data["target"]["source"]).exists() else None,
        data["general"].get("hub_id"),
    ) if d]
    return ModelCardData(
        base_model=model.get("base_model_id"), library_name="peft" if adapter else "transformers",
        license=settings["license"], datasets=hub_datasets or None,
        tags=MODEL_CARD_TAGS + (["lora", "peft"] if adapter else []), pipeline_tag="text-generation",
        model_name=name, eval_results=eval_results or None,
    )


def _retention(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Entropy retention per domain at the last logged step (None: nothing logged)."""
    if not history:
        return None
    last = history[-1]
    text = ", ".join(f"{d} {last[f'heal/entropy_retention/{d}']:.3f}" for d in ("target", "general")
                     if f"heal/entropy_retention/{d}" in last)
    return {"step": last["step"], "text": text}


def _evaluation_table(evaluation: dict[str, Any], k: int) -> dict[str, Any] | None:
    """Held-out results after (and, when measured, before) training (None: no evaluation)."""
    trained, base = evaluation.get("trained"), evaluation.get("base")
    if not trained:
        return None
    metrics = _EVAL_METRICS[:1] + ((f"pass@{k}", f"pass@{k}"),) + _EVAL_METRICS[1:]
    return {
        "problems": trained["problems"],
        "header": ["metric"] + (["before training"] if base else []) + ["after training"],
        "rows": _cells([[label] + ([base[key]] if base else []) + [trained[key]] for key, label in metrics]),
    }


def _training_summary(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """HEAL's logged means at the first and the last logged step (None: nothing logged)."""
    if not history:
        return None
    first, last = history[0], history[-1]
    rows = [[label, first[key], last[key]] for key, label in _SUMMARY_METRICS if key in first and key in last]
    return {"first": first["step"], "last": last["step"], "rows": _cells(rows)}


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
    """the build's `pool_build.json` (`heal_hf.data.pool_shards.read_build_manifest`)"""
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
        template_path=str(TEMPLATES / "pool_card.md"),
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
