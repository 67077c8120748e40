"""The Entropy Explorer: a Gradio app showing the entropy dynamics of a prompt's sampled responses.

A person types a prompt; the app samples k responses with `sample_with_entropies`
(entropies recorded during generation), profiles them with `EntropyProfile`, scores
them with `EDAReward` against a general-domain reference R, and shows: every sample's
per-token entropy curve in one plot, each K-bin profile against R's band (mean +- std),
a table per sample (length, magnitude, variation, EDA reward with the parts of its distance
D, verified answer when the prompt is a known task), and one sample's tokens coloured by entropy with the forking
tokens (H above R's 80th percentile) marked.

Models load once and are cached by id. The default model and the reference's source
are decided in one place each (`default_model_id`, `model_reference`): the bundled toy
reasoner and the bundled general-entropy pool when this heal-hf ships them, else a tiny
random Llama and a reference sampled from the model at load time (the UI says which).

`spaces/entropy-explorer/app.py` and `heal-hf space` both call `build_app`.
"""

from __future__ import annotations

import html
import math
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import gradio as gr
import pandas as pd
import torch
from huggingface_hub import SpaceCardData
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..core import verifiers
from ..core.eda import FEATURE_NAMES, EDAReference, EDAReward, EDAScores
from ..data import rollout
from ..data.files import error_line
from ..data.pool import load_pool, pool_reference, tokenizer_fingerprint
from ..data.rollout import Rollouts, sample_with_entropies

try:
    import plotly.graph_objects as go
    from plotly.colors import qualitative, sample_colorscale
except ImportError as err:  # plotly is the [space] extra, not a core dependency
    raise ImportError("the Entropy Explorer needs plotly: pip install 'heal-hf[space]'") from err

TOY_REASONER = "bundled:toy-reasoner"
TINY_RANDOM = "bundled:tiny-random"
MAX_SAMPLES = 16
MAX_NEW_TOKENS = 256
MAX_PROMPT_CHARS = 1000
MAX_PARAMETERS = 2_000_000_000  # float32 on a 16 GB CPU Space, with room for activations
MAX_CACHED_MODELS = 2
QUEUE_MAX_SIZE = 64
TEMPERATURE_RANGE = (0.1, 2.0)
MAX_SEED = 2**31 - 1
REFERENCE_SAMPLES = 4
REFERENCE_MAX_NEW_TOKENS = 64
SMALL_MODEL_PARAMETERS = 20_000_000

# One sampling at a time in the process: it seeds torch's global RNG and flips the
# tokenizer's padding side, and torch already spreads one generation over every core.
_SAMPLING_LOCK = threading.Lock()


@contextmanager
def _sampling(model: PreTrainedModel) -> Iterator[None]:
    """Hold the sampling lock; small models run on one intra-op thread.

    A small model's matrices are too small to split: on the toy reasoner's shape, 8 x 64
    tokens take 0.5 s on one thread but 1.3-20 s on two when other processes share the cores.
    """
    with _SAMPLING_LOCK:
        threads = torch.get_num_threads()
        if model.num_parameters() < SMALL_MODEL_PARAMETERS:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


# ---------------------------------------------------------------- tasks and examples


@dataclass(frozen=True)
class TaskExample:
    """A prompt of a known task family, its gold answer and its verifier `check(completion, answer)`."""

    family: str
    domain: str
    prompt: str
    answer: str
    check: Callable[[Any, Any], float]


def _builtin_examples() -> list[TaskExample]:
    """Examples in the toy tasks' format, used while heal_hf.toy.tasks is not installed."""
    numeric, exact = verifiers.numeric_match, verifiers.exact_match
    rows = [
        ("addition", "general", "23+58=?", "81", numeric),
        ("multiplication", "general", "47*6=?", "282", numeric),
        ("word_problem", "general", "Ann has 12 pens and gets 5 more. How many now?", "17", numeric),
        ("sequence", "general", "next in 3, 7, 11, 15?", "19", numeric),
        ("sort_digits", "target", "sort 4 1 3 2", "1 2 3 4", exact),
        ("reverse_word", "target", "reverse stone", "enots", exact),
        ("letter_shift", "target", "shift cab by 2", "ecd", exact),
        ("digit_sum", "target", "digit sum 4729", "22", exact),
        ("countdown", "target", "43 minus 6 9", "28", exact),
        ("weekday", "target", "Mon + 10 days = ?", "Thu", exact),
    ]
    return [TaskExample(f, d, f"Q: {q}\nA:", a, c) for f, d, q, a, c in rows]


def task_examples(per_family: int = 1) -> list[TaskExample]:
    """Clickable examples: `per_family` test problems of every toy task family (or a built-in list)."""
    try:
        from ..toy import tasks as toy_tasks
    except ImportError:
        return _builtin_examples()
    return [
        TaskExample(family.name, family.domain, row["prompt"], row["answer"], family.verify)
        for family in toy_tasks.FAMILIES.values()
        for row in family.generate(per_family, split="test", seed=0)
    ]


def general_prompts(per_family: int = 2) -> list[str]:
    """General-domain prompts for a reference sampled from the model itself."""
    try:
        from ..toy import tasks as toy_tasks
    except ImportError:
        return [e.prompt for e in _builtin_examples() if e.domain == "general"]
    return [
        row["prompt"] for name in toy_tasks.GENERAL_FAMILIES for row in toy_tasks.generate(name, per_family, seed=1)
    ]


# ---------------------------------------------------------------- models


class ModelLoadError(ValueError):
    """A model id that cannot be used here; the message says why and what to try."""


def _toy_reasoner_loader() -> Callable[[], tuple[PreTrainedModel, PreTrainedTokenizerBase]] | None:
    try:
        from ..toy import TOY_REASONER_PATH, load_toy_reasoner
    except ImportError:
        return None
    # The toy code can be installed before its weights are built: it counts once its folder exists
    # (then a missing or corrupted file is a clear load error, not a silent fallback).
    return load_toy_reasoner if Path(TOY_REASONER_PATH).is_dir() else None


def default_model_id() -> str:
    """The bundled toy reasoner when this heal-hf ships it, else a tiny random Llama built in-process."""
    return TOY_REASONER if _toy_reasoner_loader() is not None else TINY_RANDOM


def load_causal_lm(model_id: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM (eval mode, float32, CPU) and its tokenizer; raises ModelLoadError with the reason.

    `model_id` is TOY_REASONER, TINY_RANDOM, a local folder or a Hub id. Remote code is
    never run, and models over MAX_PARAMETERS are refused before their weights load.
    """
    if model_id == TOY_REASONER:
        loader = _toy_reasoner_loader()
        if loader is None:
            raise ModelLoadError(f"this heal-hf ships no toy reasoner; use {TINY_RANDOM!r} or a causal LM id")
        try:
            return loader()
        except Exception as err:  # e.g. a bundled file missing or corrupted
            raise ModelLoadError(f"cannot load the bundled toy reasoner: {error_line(err)}") from None
    if model_id == TINY_RANDOM:
        from ..toy.tiny import tiny_causal_lm

        model, tokenizer = tiny_causal_lm(seed=0)
        return model.eval(), tokenizer
    try:
        return rollout.load_causal_lm(model_id, device="cpu", dtype="float32", max_parameters=MAX_PARAMETERS)
    except ValueError as err:
        raise ModelLoadError(str(err).removeprefix("model: ")) from None


def _bundled_pool_reference(tokenizer: PreTrainedTokenizerBase) -> tuple[EDAReference, str] | None:
    """R from the bundled general-entropy pool when it is installed and matches the tokenizer."""
    try:
        pool = load_pool(None, tokenizer_hash=tokenizer_fingerprint(tokenizer))
    except ValueError:  # not bundled in this heal-hf, or sampled with another tokenizer
        return None
    responses = sum(len(lengths) for lengths in pool["lengths"])
    temperature = pool[0]["sampling"]["temperature"]
    note = (
        f"the bundled general-entropy pool: {responses} responses of the toy reasoner to {len(pool)} "
        f"general-domain prompts, sampled at temperature {temperature:g}"
    )
    return pool_reference(pool), note


def model_reference(
    model_id: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> tuple[EDAReference, str]:
    """The general-domain reference R for a model and a sentence saying where it comes from.

    The bundled pool for the toy reasoner; otherwise general-domain responses sampled
    from the model now (REFERENCE_SAMPLES per prompt, temperature 1), since another
    model's entropies are not comparable.
    """
    if model_id == TOY_REASONER:
        bundled = _bundled_pool_reference(tokenizer)
        if bundled is not None:
            return bundled
    prompts = general_prompts()
    with _sampling(model):
        rollouts = sample_with_entropies(
            model, tokenizer, prompts, num_samples=REFERENCE_SAMPLES,
            max_new_tokens=REFERENCE_MAX_NEW_TOKENS, temperature=1.0, seed=0,
        )
    flat = rollouts.flat_entropies()
    note = (
        f"sampled from this model when it loaded: {len(flat)} responses to {len(prompts)} general-domain prompts "
        f"at temperature 1 (no bundled general-entropy pool for this model)"
    )
    return EDAReference.from_entropies(flat), note


@dataclass
class ExplorerModel:
    """A loaded model with its tokenizer, its reference R and where R comes from."""

    model_id: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    reference: EDAReference
    reference_note: str

    @property
    def max_positions(self) -> int | None:
        """The model's context length in tokens, when its config says."""
        config = self.model.config
        for name in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None


class ModelCache:
    """Loaded models by id, at most `capacity` at once (least recently used leaves first)."""

    def __init__(self, capacity: int = MAX_CACHED_MODELS) -> None:
        self.capacity = capacity
        self._models: OrderedDict[str, ExplorerModel] = OrderedDict()
        self._lock = threading.Lock()  # one load at a time: concurrent requests for a new id load it once

    def get(self, model_id: str) -> ExplorerModel:
        """The model called `model_id`, loaded on first use; raises ModelLoadError."""
        with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            model, tokenizer = load_causal_lm(model_id)
            reference, note = model_reference(model_id, model, tokenizer)
            loaded = ExplorerModel(model_id, model, tokenizer, reference, note)
            self._models[model_id] = loaded
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return loaded

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._models


# ---------------------------------------------------------------- one exploration


@dataclass(frozen=True)
class ExploreRequest:
    """Checked sampling settings (see `checked`)."""

    prompt: str
    num_samples: int
    temperature: float
    max_new_tokens: int
    seed: int

    @classmethod
    def checked(
        cls, prompt: Any, num_samples: Any, temperature: Any, max_new_tokens: Any, seed: Any
    ) -> "ExploreRequest":
        """Validate raw UI/API values; ValueError with a sentence a person can act on."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("The prompt is empty: type a prompt or click one of the examples.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"The prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}.")
        return cls(
            prompt=prompt,
            num_samples=_integer("Number of samples", num_samples, 1, MAX_SAMPLES),
            temperature=_number("Temperature", temperature, *TEMPERATURE_RANGE),
            max_new_tokens=_integer("Max new tokens", max_new_tokens, 1, MAX_NEW_TOKENS),
            seed=_integer("Seed", seed, 0, MAX_SEED),
        )


def _number(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}.") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} must be from {low:g} to {high:g}, got {value!r}.")
    return number


def _integer(name: str, value: Any, low: int, high: int) -> int:
    number = _number(name, value, low, high)
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    return int(number)


@dataclass
class Exploration:
    """k responses to one prompt, their EDA scores against R, and the known task if any."""

    rollouts: Rollouts
    scores: EDAScores
    reference: EDAReference
    pieces: list[list[str]]  # each sample's tokens as display text
    task: TaskExample | None

    @property
    def entropies(self) -> list[list[float]]:
        return self.rollouts.entropies[0]

    @property
    def texts(self) -> list[str]:
        return self.rollouts.texts[0]


def explore(loaded: ExplorerModel, request: ExploreRequest, task: TaskExample | None = None) -> Exploration:
    """Sample, profile and score `request.num_samples` responses to `request.prompt`."""
    tokenizer = loaded.tokenizer
    if loaded.max_positions is not None:
        prompt_tokens = len(tokenizer(request.prompt).input_ids)
        if prompt_tokens + request.max_new_tokens > loaded.max_positions:
            raise ValueError(
                f"The prompt ({prompt_tokens} tokens) plus {request.max_new_tokens} new tokens exceed this model's "
                f"context of {loaded.max_positions} tokens: shorten the prompt or lower max new tokens."
            )
    with _sampling(loaded.model):
        rollouts = sample_with_entropies(
            loaded.model, tokenizer, [request.prompt], num_samples=request.num_samples,
            max_new_tokens=request.max_new_tokens, temperature=request.temperature, seed=request.seed,
        )
    scores = EDAReward(loaded.reference).score(rollouts.entropies[0])  # the calibrated estimator (v2)
    pieces = [[tokenizer.decode([i]) for i in ids] for ids in rollouts.token_ids[0]]
    return Exploration(rollouts, scores, loaded.reference, pieces, task)


# ---------------------------------------------------------------- views


_MARGIN = {"l": 60, "r": 20, "t": 50, "b": 50}
_LEGEND = {"font": {"size": 10}, "traceorder": "normal"}  # filled traces would otherwise reverse the legend


def _sample_colour(i: int) -> str:
    palette = qualitative.Dark24
    return palette[i % len(palette)]


def entropy_figure(result: Exploration) -> go.Figure:
    """Every sample's per-token entropy (nats) against token position, and the forking threshold."""
    fig = go.Figure()
    for i, (ents, pieces) in enumerate(zip(result.entropies, result.pieces)):
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(ents) + 1)), y=ents, mode="lines", name=f"sample {i + 1}",
                line={"color": _sample_colour(i), "width": 1.5}, customdata=[repr(p) for p in pieces],
                hovertemplate=f"token %{{x}}: %{{customdata}}<br>H = %{{y:.3g}} nats<extra>sample {i + 1}</extra>",
            )
        )
    longest = max((len(e) for e in result.entropies), default=1)
    fig.add_trace(
        go.Scatter(
            x=[1, max(longest, 2)], y=[result.reference.forking_threshold] * 2, mode="lines",
            name="forking threshold", line={"dash": "dash", "color": "grey"}, hoverinfo="name+y",
        )
    )
    fig.update_layout(
        title="Per-token entropy of each sample", xaxis_title="generated token", yaxis_title="entropy (nats)",
        height=380, margin=_MARGIN, legend=_LEGEND,
    )
    return fig


def profile_figure(result: Exploration) -> go.Figure:
    """Each sample's K-bin curve over normalized time, inside R's band (mean +- one std)."""
    ref = result.reference
    bins = ref.bins
    x = [(k + 0.5) / bins for k in range(bins)]
    mean, std = ref.curve_mean.tolist(), ref.curve_std.tolist()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[m + s for m, s in zip(mean, std)], mode="lines", line={"width": 0},
                             name="reference mean + std", showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=[max(m - s, 0.0) for m, s in zip(mean, std)], mode="lines", line={"width": 0},
                             fill="tonexty", fillcolor="rgba(120,120,120,0.25)", name="reference mean ± std",
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=mean, mode="lines", name="reference mean",
                             line={"color": "black", "dash": "dash", "width": 2}))
    # What EDA's dynamics part compares: the reference's mean phase shape at its level, one step per segment.
    phases = ref.feature_mean[len(FEATURE_NAMES):].tolist()
    edges = [s / len(phases) for s in range(len(phases) + 1)]
    fig.add_trace(go.Scatter(
        x=[e for s in range(len(phases)) for e in (edges[s], edges[s + 1])],
        y=[ref.level * v for v in phases for _ in (0, 1)], mode="lines", name="reference phase shape (EDA)",
        line={"color": "grey", "width": 3, "shape": "hv"}, opacity=0.7,
    ))
    for i, curve in enumerate(result.scores.profile.curve.tolist()):
        fig.add_trace(go.Scatter(x=x, y=curve, mode="lines", name=f"sample {i + 1}",
                                 line={"color": _sample_colour(i), "width": 1.5}))
    fig.update_layout(
        title=f"{bins}-bin entropy profiles against the general-domain reference",
        xaxis_title="normalized time (share of the response)", yaxis_title="entropy (nats)",
        height=380, margin=_MARGIN, legend=_LEGEND,
    )
    return fig


TABLE_HEADERS = [
    "#", "text", "tokens", "magnitude", "total var.", "volatility", "forking", "mag. gap", "var. gap", "dyn. gap",
    "D", "EDA", "answer", "verified",
]
TABLE_WIDTHS = ["3%", "16%", "6%", "8%", "6%", "8%", "7%", "6%", "6%", "6%", "6%", "6%", "7%", "9%"]


def sample_table(result: Exploration) -> pd.DataFrame:
    """One row per sample: text, length, magnitude, variation, the parts of D, EDA reward, answer and verdict."""
    scores, task = result.scores, result.task
    profile = scores.profile
    rows = []
    for i, text in enumerate(result.texts):
        answer = _shortened(verifiers.extract_answer(text), 24) if task else ""
        verdict = ""
        if task:
            verdict = "✓ correct" if task.check(text, task.answer) == 1.0 else f"✗ (gold {task.answer})"
        rows.append([
            i + 1, text, int(profile.lengths[i]), round(float(profile.magnitude[i]), 3),
            round(float(profile.total_variation[i]), 3), round(float(profile.volatility[i]), 3),
            round(float(profile.forking_share[i]), 3),
            *(_significant(float(part[i])) for part in (scores.magnitude_gap, scores.variation_gap, scores.dynamics_gap)),
            _significant(float(scores.distance[i])), _significant(float(scores.reward[i])), answer, verdict,
        ])
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


def _significant(value: float) -> float:
    return float(f"{value:.3g}")  # EDA spans many decades: keep 3 significant digits, not 3 decimals


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def token_html(
    pieces: Sequence[str], entropies: Sequence[float], forking_threshold: float, low: float, high: float
) -> str:
    """Tokens as spans coloured by entropy (scale `low` to `high` nats), forking tokens boxed, H in tooltips."""
    spans = []
    for piece, h in zip(pieces, entropies):
        level = min(max((h - low) / (high - low), 0.0), 1.0) if high > low else 0.0
        background = sample_colorscale("YlOrRd", [level])[0]
        colour = "white" if level > 0.6 else "black"
        forking = h > forking_threshold
        border = "2px solid #1f3a93" if forking else "2px solid transparent"
        title = f"H = {h:.3g} nats" + (" (forking)" if forking else "")
        text = html.escape(piece).replace("\n", "↵<br>") if piece else "∅"
        spans.append(
            f'<span title="{title}" style="background:{background};color:{colour};border:{border};'
            f'border-radius:3px;padding:0 1px;margin:0 1px;font-family:monospace">{text}</span>'
        )
    return '<div style="line-height:2.1;white-space:pre-wrap;word-break:break-word">' + "".join(spans) + "</div>"


def token_legend(forking_threshold: float, low: float, high: float) -> str:
    """The colour scale and the forking mark, in words."""
    stops = ", ".join(sample_colorscale("YlOrRd", [0.0, 0.5, 1.0]))
    return (
        '<div style="font-size:0.9em;margin-bottom:6px">'
        '<span style="display:inline-block;width:120px;height:10px;'
        f'background:linear-gradient(90deg,{stops})"></span> '
        f"entropy {low:.3g} → {high:.3g} nats (lowest to highest of these samples); "
        '<span style="border:2px solid #1f3a93;border-radius:3px;padding:0 3px">boxed</span> '
        f"= forking token (H &gt; {forking_threshold:.3g} nats, the reference's 80th percentile); "
        "hover a token for its entropy.</div>"
    )


def token_view(result: Exploration, index: int) -> str:
    """Sample `index`'s tokens coloured on one scale shared by all samples of `result`, with the legend."""
    every = [h for ents in result.entropies for h in ents]
    low, high = min(every, default=0.0), max(every, default=0.0)
    threshold = result.reference.forking_threshold
    return token_legend(threshold, low, high) + token_html(
        result.pieces[index], result.entropies[index], threshold, low, high
    )


def render(result: Exploration) -> tuple[go.Figure, go.Figure, pd.DataFrame, str]:
    """Every view of an exploration: entropy plot, profile plot, table, and the first sample's tokens."""
    return entropy_figure(result), profile_figure(result), sample_table(result), token_view(result, 0)


# ---------------------------------------------------------------- the app

_INTRO = """# Entropy Explorer
Sample several responses to a prompt and watch the model's **token entropy** (nats) move
along each one, next to the **general-domain reference** that HEAL's Entropy Dynamics
Alignment (EDA) reward aligns target-domain rollouts with. EDA reward = 1 / (1 + D / D0):
D measures how far a response's entropy magnitude, variation (mean |dH|, volatility,
forking share) and phase shape sit from the reference, each gap scaled by the spread the
reference shows at that length, and D0 is the reference's own median D, so **0.5 = as
general-like as a typical general-domain response**, 1 = closer, near 0 = far from it
(e.g. collapsed). The table's gap columns say which part makes D large. Any causal LM
works (a local folder or a Hub id); answers are verified for the task examples."""
_MODEL_DESCRIPTIONS = {
    TOY_REASONER: "the bundled toy reasoner",
    TINY_RANDOM: "a tiny random Llama (this heal-hf ships no toy reasoner yet)",
}


def _ui_error(err: Exception) -> gr.Error:
    # gr.Error renders HTML: escape what users typed (model ids, prompts) into the message.
    return gr.Error(html.escape(str(err), quote=False), print_exception=False)


def build_app(default_model: str | None = None, cache: ModelCache | None = None) -> gr.Blocks:
    """The Entropy Explorer as a queued gr.Blocks; loads `default_model` (default: `default_model_id()`) now."""
    default_model = default_model or default_model_id()
    cache = cache or ModelCache()
    examples = task_examples()
    known = {e.prompt: e for e in examples}
    # Load and run once at startup: a broken install fails loudly, and the first visitor
    # does not pay for the model load and the first generate / plotly calls (~2 s).
    first = examples[0]
    warm_up = explore(cache.get(default_model), ExploreRequest.checked(first.prompt, 2, 1.0, 8, 0), first)
    for figure in render(warm_up)[:2]:
        figure.to_json()  # plotly loads its validators on first use

    def run(model_id: str, prompt: str, num_samples: Any, temperature: Any, max_new_tokens: Any, seed: Any):
        try:
            request = ExploreRequest.checked(prompt, num_samples, temperature, max_new_tokens, seed)
            loaded = cache.get((model_id or "").strip() or default_model)
            result = explore(loaded, request, known.get(prompt))
        except ValueError as err:
            raise _ui_error(err) from None
        per_token, profiles, table, tokens = render(result)
        choices = [str(i + 1) for i in range(len(result.texts))]
        return (
            per_token,
            profiles,
            table,
            gr.Dropdown(choices=choices, value="1", interactive=True),
            tokens,
            result,
            f"**Reference R:** {loaded.reference_note}. Model: `{loaded.model_id}`.",
        )

    def show(sample: str, result: Exploration | None) -> str:
        if result is None or not sample:
            return ""
        return token_view(result, int(sample) - 1)

    with gr.Blocks(title="Entropy Explorer", analytics_enabled=False) as demo:
        gr.Markdown(_INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                model_box = gr.Textbox(
                    label="Model", value=default_model, elem_id="model",
                    info=f"default: {_MODEL_DESCRIPTIONS.get(default_model, default_model)}; "
                         "or a local folder or Hub id of a causal LM",
                )
                prompt_box = gr.Textbox(
                    label="Prompt", lines=3, max_lines=8, elem_id="prompt",
                    placeholder="Q: 23+58=?\nA:", info=f"at most {MAX_PROMPT_CHARS} characters",
                )
                samples = gr.Slider(1, MAX_SAMPLES, value=8, step=1, label="Number of samples", elem_id="num-samples")
                temperature = gr.Slider(*TEMPERATURE_RANGE, value=1.0, step=0.05, label="Temperature")
                max_tokens = gr.Slider(
                    1, MAX_NEW_TOKENS, value=64, step=1, label="Max new tokens", elem_id="max-new-tokens"
                )
                seed = gr.Number(value=0, precision=0, label="Seed", info=f"0 to {MAX_SEED}")
                button = gr.Button("Sample and profile", variant="primary", elem_id="run")
                for domain in ("general", "target"):
                    picks = [e for e in examples if e.domain == domain]
                    gr.Examples(
                        examples=[[e.prompt] for e in picks], inputs=[prompt_box],
                        example_labels=[f"{e.family}: {e.prompt[3:-3]}" for e in picks],
                        label=f"{domain.capitalize()}-domain task examples (answers verified)",
                        examples_per_page=20,
                    )
            with gr.Column(scale=2):
                entropy_plot = gr.Plot(label="Per-token entropy", elem_id="entropy-plot")
                profile_plot = gr.Plot(label="Profiles vs reference", elem_id="profile-plot")
        reference_md = gr.Markdown(f"**Reference R:** {cache.get(default_model).reference_note}.")
        table = gr.Dataframe(
            headers=TABLE_HEADERS, column_widths=TABLE_WIDTHS, wrap=True, interactive=False, max_height=900,
            elem_id="samples",
            label="Samples: magnitude = mean entropy, total var. = mean |H(t+1) - H(t)|, volatility = std of "
                  "H(t+1) - H(t) (all nats); forking = share of tokens above the threshold; "
                  "mag. / var. / dyn. gap = squared standardized gaps of magnitude, variation and phase shape; "
                  "D = their mean; EDA = 1 / (1 + D / D0), 0.5 = a typical general-domain response",
        )
        with gr.Row():
            chosen = gr.Dropdown(choices=[], label="Sample to show", scale=0, min_width=140, elem_id="chosen")
            tokens = gr.HTML(elem_id="tokens")
        result_state = gr.State()
        button.click(
            run, [model_box, prompt_box, samples, temperature, max_tokens, seed],
            [entropy_plot, profile_plot, table, chosen, tokens, result_state, reference_md],
            concurrency_limit=1, api_name="explore",
        )
        chosen.change(show, [chosen, result_state], [tokens], api_name=False)
    from .space_runs import with_runs_tab  # after this module's plotly check

    loaded = cache.get(default_model)
    demo = with_runs_tab(demo, loaded.reference, loaded.reference_note)  # + the "Training run" tab
    demo.queue(max_size=QUEUE_MAX_SIZE)
    return demo


def launch(model: str | None = None, server_name: str | None = None, server_port: int | None = None) -> None:
    """Build and serve the app; host and port default to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    build_app(model).launch(server_name=server_name, server_port=server_port)


# ---------------------------------------------------------------- the Space card

SPACE_GRADIO_VERSION = "6.31.0"  # the gradio the app was tested with


def space_card_data() -> SpaceCardData:
    """Metadata of spaces/entropy-explorer/README.md (tests check the README against it)."""
    return SpaceCardData(
        title="HEAL Entropy Explorer",
        sdk="gradio",
        sdk_version=SPACE_GRADIO_VERSION,
        app_file="app.py",
        license="apache-2.0",
        models=["heal/toy-reasoner"],
        datasets=["heal/general-entropy-pool"],
        tags=["heal", "entropy", "rlvr", "grpo", "reasoning", "exploration"],
        emoji="🌡️",
        colorFrom="yellow",
        colorTo="red",
        pinned=False,
        short_description="Token entropy dynamics of sampled responses vs a reference",
    )
