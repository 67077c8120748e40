"""The Entropy Explorer's "Training run" tab: a run's entropy dynamics next to the general-domain pool's.

A person uploads a run's `trainer_state.json` (any TRL / transformers Trainer), a
heal-hf `metrics.json` or an `entropy_monitor.json`. The tab reads it with
`heal_hf.data.run_logs`, judges it with `heal_hf.core.collapse` (the verdict
EntropyMonitor and `heal-hf diagnose` give) and draws:
- the mean token entropy per step with the pool's general-domain level (mean +- std of
  the pool's per-response mean entropy) as a band, and the retention per step with the
  collapse threshold and the fitted forecast;
- for a heal-hf metrics.json, the run's mean K-bin entropy curves over the response
  (first and last step, per domain) inside the pool's curve band.
The pool is the explorer's reference for its default model; its level is comparable
with a run that trained that model.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...core.collapse import CollapseReport, running_median
from ...core.eda import EDAReference
from ...data.run_logs import RunLogs, read_json, read_run_logs
from ..diagnose import report_for

_COLOURS = {"target": "#d62728", "general": "#1f77b4"}
_LEGEND = {"font": {"size": 10}, "traceorder": "normal"}  # filled traces would otherwise reverse the legend
_BAND = "rgba(120,120,120,0.22)"


def _band(fig: go.Figure, x: list[float], mean: list[float], std: list[float], name: str, **where: Any) -> None:
    """A grey mean +- std band with its mean dashed."""
    fig.add_trace(go.Scatter(x=x, y=[m + s for m, s in zip(mean, std)], mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip"), **where)
    fig.add_trace(go.Scatter(x=x, y=[max(m - s, 0.0) for m, s in zip(mean, std)], mode="lines", line={"width": 0},
                             fill="tonexty", fillcolor=_BAND, name=f"{name} (mean ± std)", hoverinfo="skip"), **where)
    fig.add_trace(go.Scatter(x=x, y=mean, mode="lines", name=f"{name} (mean)",
                             line={"color": "black", "dash": "dash", "width": 1.5}), **where)


def dynamics_figure(run: RunLogs, report: CollapseReport, reference: EDAReference | None) -> go.Figure:
    """Entropy per step against the pool's level (left) and retention with the forecast (right)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Mean token entropy per step", "Entropy retention"))
    steps = run.column("step")
    left = {"row": 1, "col": 1}
    if reference is not None:
        ends = [min(steps), max(report.end_step, max(steps))]
        _band(fig, ends, [reference.magnitude_mean] * 2, [reference.magnitude_std] * 2, "general-domain pool", **left)
    for field, domain in (("entropy", run.entropy_label), ("general_entropy", "general")):
        points = [(r.step, getattr(r, field)) for r in run.records if getattr(r, field) is not None]
        if points:
            x, y = zip(*points)
            colour = _COLOURS["general" if field == "general_entropy" else "target"]
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{domain} (per step)", opacity=0.35,
                                     line={"color": colour, "width": 1}), **left)
            fig.add_trace(go.Scatter(x=x, y=running_median(y).tolist(), mode="lines", name=f"{domain} (running median)",
                                     line={"color": colour, "width": 2.5}), **left)
    right = {"row": 1, "col": 2}
    points = [(r.step, r.retention) for r in run.records if r.retention is not None]
    if points:
        x, y = zip(*points)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="retention (per step)", opacity=0.35,
                                 line={"color": _COLOURS["target"], "width": 1}), **right)
        fig.add_trace(go.Scatter(x=x, y=running_median(y).tolist(), mode="lines", name="retention (running median)",
                                 line={"color": _COLOURS["target"], "width": 2.5}), **right)
    fig.add_trace(go.Scatter(x=[min(steps), report.end_step], y=[report.threshold] * 2, mode="lines",
                             name=f"collapse threshold {report.threshold:g}", line={"color": "grey", "dash": "dot"}),
                  **right)
    f = report.forecast
    if f is not None:
        line = [f.first_step + (report.end_step - f.first_step) * k / 50 for k in range(51)]
        fig.add_trace(go.Scatter(x=line, y=[f.retention_at(t) for t in line], mode="lines",
                                 name=f"forecast ({f.percent_per_step:+.2f}%/step)",
                                 line={"color": "purple", "dash": "dash", "width": 2}), **right)
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text="entropy (nats)", **left)
    fig.update_yaxes(title_text="entropy / first step's", **right)
    fig.update_layout(height=420, margin={"l": 60, "r": 20, "t": 60, "b": 50}, legend=_LEGEND)
    return fig


def curves_figure(curves: dict[str, Any], reference: EDAReference | None) -> go.Figure | None:
    """A heal-hf run's mean entropy curves over the response (first / last step) against the pool's; None without curves."""
    fig = go.Figure()
    if reference is not None:
        x = [(k + 0.5) / reference.bins for k in range(reference.bins)]
        _band(fig, x, reference.curve_mean.tolist(), reference.curve_std.tolist(), "general-domain pool")
    drawn = False
    for when, dash in (("initial", "dot"), ("latest", "solid")):
        for domain, colour in _COLOURS.items():
            curve = (curves.get(when) or {}).get(domain, {}).get("curve")
            if curve:
                fig.add_trace(go.Scatter(x=[(k + 0.5) / len(curve) for k in range(len(curve))], y=curve, mode="lines",
                                         name=f"{domain}, {'first' if when == 'initial' else 'last'} step",
                                         line={"color": colour, "dash": dash, "width": 2}))
                drawn = True
    if not drawn:
        return None
    fig.update_layout(title="Mean entropy curve over the response: the run against the pool", height=380,
                      xaxis_title="normalized time (share of the response)", yaxis_title="entropy (nats)",
                      margin={"l": 60, "r": 20, "t": 50, "b": 50}, legend=_LEGEND)
    return fig


def analyse_upload(path: str | Path | None, reference: EDAReference | None) -> tuple[str, go.Figure, go.Figure | None]:
    """(verdict markdown, dynamics figure, curves figure or None) of an uploaded run file; ValueError for a bad file."""
    if not path:
        raise ValueError("upload a trainer_state.json, metrics.json or entropy_monitor.json first")
    run = read_run_logs(path, what="upload")
    report = report_for(run)
    of = f" of {run.max_steps}" if run.max_steps else ""
    lines = [f"**{report.status}** — {len(run.records)} logged steps with an entropy (last step {run.last_step}{of}, "
             f"read as {run.kind.replace('_', ' ')})", *report.lines()]
    verdict = "\n".join(f"- {line}" for line in lines)
    curves = read_json(Path(path), "upload").get("curves") if run.kind == "metrics" else None
    return verdict, dynamics_figure(run, report, reference), curves_figure(curves or {}, reference)


_ABOUT = """Upload a training run's **`trainer_state.json`** (written by any TRL / transformers Trainer
into each `checkpoint-N/`), a heal-hf **`metrics.json`** or an **`entropy_monitor.json`**
(`EntropyMonitor`). You get the verdict `heal-hf diagnose` prints (collapsing or not, since
when, the forecast to the run's last step, zero-variance groups) and the run's entropy per
step next to the general-domain pool's level."""


def runs_tab(reference: EDAReference | None, reference_note: str) -> None:
    """The tab's components and events; call inside a `gr.Tab` of a Blocks."""
    gr.Markdown(_ABOUT + f"\n\n**Pool band:** {reference_note} (comparable with runs that trained that model).")
    upload = gr.File(label="Run file (.json)", file_types=[".json"], type="filepath", elem_id="run-file")
    verdict = gr.Markdown(elem_id="run-verdict")
    dynamics = gr.Plot(label="Entropy dynamics per step", elem_id="run-dynamics")
    curves = gr.Plot(label="Entropy curves over the response", elem_id="run-curves", visible=False)

    def show(path: str | None):
        try:
            text, figure, curve_figure = analyse_upload(path, reference)
        except ValueError as err:
            raise gr.Error(html.escape(str(err), quote=False), print_exception=False) from None
        return text, figure, gr.Plot(value=curve_figure, visible=curve_figure is not None)

    upload.upload(show, [upload], [verdict, dynamics, curves], api_name="diagnose_run")


def with_runs_tab(explorer: gr.Blocks, reference: EDAReference | None, reference_note: str) -> gr.Blocks:
    """The explorer in a first tab, the "Training run" tab second, in one Blocks."""
    with gr.Blocks(title=explorer.title, analytics_enabled=False) as app:
        with gr.Tab("Explore a prompt", id="explore"):
            explorer.render()
        with gr.Tab("Training run", id="run"):
            runs_tab(reference, reference_note)
    return app
