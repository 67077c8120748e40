"""What the Entropy Explorer shows of an exploration: entropy and profile plots, the sample table, coloured tokens."""

from __future__ import annotations

import html
from typing import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale

from ...core import verifiers
from ...core.eda import FEATURE_NAMES
from .exploration import Exploration

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
