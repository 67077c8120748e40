"""The Entropy Explorer's Gradio app, how it is served, and its Space card's metadata."""

from __future__ import annotations

import html
from typing import Any, Callable

import gradio as gr
from huggingface_hub import SpaceCardData

from .examples import TaskExample, task_examples
from .exploration import (
    MAX_NEW_TOKENS,
    MAX_PROMPT_CHARS,
    MAX_SAMPLES,
    MAX_SEED,
    TEMPERATURE_RANGE,
    Exploration,
    ExploreRequest,
    explore,
)
from .models import DEFAULT_MODEL, TINY_RANDOM, TOY_REASONER, ModelCache
from .runs import with_runs_tab
from .views import TABLE_HEADERS, TABLE_WIDTHS, render, token_view

QUEUE_MAX_SIZE = 64

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
    TINY_RANDOM: "a tiny random Llama (untrained: for trying the app quickly)",
}


def _ui_error(err: Exception) -> gr.Error:
    # gr.Error renders HTML: escape what users typed (model ids, prompts) into the message.
    return gr.Error(html.escape(str(err), quote=False), print_exception=False)


def build_app(default_model: str | None = None, cache: ModelCache | None = None) -> gr.Blocks:
    """The Entropy Explorer as a queued gr.Blocks; loads `default_model` (default: DEFAULT_MODEL) now."""
    default_model = default_model or DEFAULT_MODEL
    cache = cache or ModelCache()
    examples = task_examples()
    # Load and run once at startup: a broken install fails loudly, and the first visitor
    # does not pay for the model load and the first generate / plotly calls (~2 s).
    first = examples[0]
    warm_up = explore(cache.get(default_model), ExploreRequest.checked(first.prompt, 2, 1.0, 8, 0), first)
    for figure in render(warm_up)[:2]:
        figure.to_json()  # plotly loads its validators on first use
    run, show = _handlers(cache, default_model, {e.prompt: e for e in examples})

    with gr.Blocks(title="Entropy Explorer", analytics_enabled=False) as demo:
        gr.Markdown(_INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                inputs, button = _inputs(default_model, examples)
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
            run, inputs, [entropy_plot, profile_plot, table, chosen, tokens, result_state, reference_md],
            concurrency_limit=1, api_name="explore",
        )
        chosen.change(show, [chosen, result_state], [tokens], api_name=False)
    loaded = cache.get(default_model)
    demo = with_runs_tab(demo, loaded.reference, loaded.reference_note)  # + the "Training run" tab
    demo.queue(max_size=QUEUE_MAX_SIZE)
    return demo


def _inputs(default_model: str, examples: list[TaskExample]) -> tuple[list[gr.components.Component], gr.Button]:
    """The input column: model, prompt, sampling settings (in `run`'s order), the button, and the examples."""
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
    max_tokens = gr.Slider(1, MAX_NEW_TOKENS, value=64, step=1, label="Max new tokens", elem_id="max-new-tokens")
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
    return [model_box, prompt_box, samples, temperature, max_tokens, seed], button


def _handlers(
    cache: ModelCache, default_model: str, known: dict[str, TaskExample]
) -> tuple[Callable[..., tuple[Any, ...]], Callable[[str, Exploration | None], str]]:
    """The app's two event handlers: `run` (sample, score and render) and `show` (one sample's tokens)."""

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

    return run, show


def launch(model: str | None = None, server_name: str | None = None, server_port: int | None = None) -> None:
    """Build and serve the app; host and port default to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    build_app(model).launch(server_name=server_name, server_port=server_port)


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
