"""The Train page's Plotly figures: live training curves, the KL heatmap, and runs compared.

    curves_figure(steps, epochs)   # ELBO, recon, KL: train per logged step (solid), test per epoch;
                                   # a β-TCVAE run's MI, TC and dimension-wise KL in the KL panel
    kl_heatmap(epochs)             # test KL of each latent dimension after each epoch, or None
    compare_figure({name: (steps, epochs)})   # several runs' train and test ELBO overlaid

`steps` and `epochs` are the records of a run's steps.jsonl and metrics.jsonl.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vae.ui import maps

CURVES = ((1, "elbo", "#4c78a8"), (2, "recon", "#f58518"), (3, "kl", "#54a24b"))  # col, key, colour
# β-TCVAE's three parts of the KL (Chen et al. 2018, Eq. 2), drawn in the KL panel when logged
KL_PARTS = (
    ("mi", "index-code MI", "#b279a2"),
    ("tc", "total correlation", "#e45756"),
    ("dwkl", "dimension-wise KL", "#72b7b2"),
)
TEST_COLOR = "#333"
TRAIN_LEGEND = "train (each logged step)"
TEST_LEGEND = "test (after each epoch)"


def _legend_entry(name: str, group: str, **style: Any) -> go.Scatter:
    """A legend-only trace: one entry standing for a group of traces in all three panels."""
    return go.Scatter(x=[None], y=[None], name=name, legendgroup=group, hoverinfo="skip", **style)


def curves_figure(steps: list[dict], epochs: list[dict], height: int = 300) -> go.Figure:
    """Training ELBO, reconstruction and KL per logged step; test values per epoch as dots.

    The legend says which is which: solid lines are train, dotted dark ones test (clicking an
    entry hides that kind in every panel).
    """
    fig = make_subplots(
        rows=1, cols=3, horizontal_spacing=0.07,
        subplot_titles=("ELBO (nats, higher is better)", "Reconstruction −log p(x|z)",
                        "KL(q(z|x) ‖ p(z))"),
    )  # fmt: skip
    x = [r["step"] for r in steps]
    has_test = False
    for col, key, color in CURVES:
        fig.add_trace(
            go.Scatter(
                x=x, y=[r[key] for r in steps], mode="lines", name=f"train {key}",
                legendgroup="train", line=dict(color=color, width=1.6), showlegend=False,
                hovertemplate=f"step %{{x}}<br>train {key} %{{y:.2f}}<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
        tk = f"test_{key}"
        ep = [r for r in epochs if isinstance(r.get(tk), (int, float))]
        if ep:
            has_test = True
            fig.add_trace(
                go.Scatter(
                    x=[r["step"] for r in ep], y=[r[tk] for r in ep],
                    mode="lines+markers" if len(ep) < 40 else "lines",
                    name=f"test {key}", legendgroup="test",
                    marker=dict(color=TEST_COLOR, size=5),
                    line=dict(color=TEST_COLOR, width=1, dash="dot"), showlegend=False,
                    hovertemplate=f"epoch %{{text}}<br>test {key} %{{y:.2f}}<extra></extra>",
                    text=[r["epoch"] for r in ep],
                ),
                row=1, col=col,
            )  # fmt: skip
    for key, label, color in KL_PARTS:  # a β-TCVAE run logs them with every step
        part = [r for r in steps if isinstance(r.get(key), (int, float))]
        if part:
            fig.add_trace(
                go.Scatter(
                    x=[r["step"] for r in part], y=[r[key] for r in part], mode="lines",
                    name=f"KL part: {label}", legendgroup=key,
                    line=dict(color=color, width=1.2, dash="dash"),
                    hovertemplate=f"step %{{x}}<br>{label} %{{y:.2f}}<extra></extra>",
                ),
                row=1, col=3,
            )  # fmt: skip
    fig.add_trace(_legend_entry(TRAIN_LEGEND, "train", mode="lines", line=dict(color="#888")))
    if has_test:
        fig.add_trace(
            _legend_entry(
                TEST_LEGEND, "test", mode="lines+markers", marker=dict(color=TEST_COLOR, size=5),
                line=dict(color=TEST_COLOR, width=1, dash="dot"),
            )
        )  # fmt: skip
    fig.update_xaxes(title_text="step", showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    fig.update_annotations(font_size=13)
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="white",
        uirevision="curves", showlegend=True,
        legend=dict(orientation="h", x=1, xanchor="right", y=-0.28, yanchor="top",
                    font=dict(size=12)),
    )  # fmt: skip
    return fig


def kl_heatmap(epochs: list[dict], height: int = 300) -> go.Figure | None:
    """Test KL of each latent dimension (rows) after each epoch (columns)."""
    rows = [r for r in epochs if isinstance(r.get("test_kl_per_dim"), list)]
    if not rows:
        return None
    kl = np.array([r["test_kl_per_dim"] for r in rows], dtype=np.float32).T  # (D, E)
    fig = go.Figure(
        go.Heatmap(
            z=kl, x=[r["epoch"] for r in rows], y=[f"z{d}" for d in range(kl.shape[0])],
            colorscale="Viridis", zmin=0, colorbar=dict(title=dict(text="nats"), thickness=10),
            hovertemplate="epoch %{x}, %{y}: %{z:.3f} nats<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10),
        title=dict(text="KL per latent dimension", font=dict(size=13)),
        xaxis=dict(title="epoch", dtick=max(1, round(len(rows) / 8)), tickangle=0),
        yaxis=dict(autorange="reversed", showticklabels=kl.shape[0] <= 32),
    )  # fmt: skip
    return fig


def compare_figure(runs: dict[str, tuple[list[dict], list[dict]]], height: int = 360) -> go.Figure:
    """Overlay of several runs: train ELBO per step (lines) and test ELBO per epoch (dots)."""
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.08,
        subplot_titles=("Train ELBO per step", "Test ELBO per epoch"),
    )  # fmt: skip
    for i, (name, (steps, epochs)) in enumerate(runs.items()):
        color = maps.PALETTE[i % len(maps.PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=[r["step"] for r in steps], y=[r["elbo"] for r in steps], mode="lines",
                name=name, legendgroup=name, line=dict(color=color, width=1.6),
            ),
            row=1, col=1,
        )  # fmt: skip
        ep = [r for r in epochs if isinstance(r.get("test_elbo"), (int, float))]
        fig.add_trace(
            go.Scatter(
                x=[r["epoch"] for r in ep], y=[r["test_elbo"] for r in ep],
                mode="lines+markers" if len(ep) <= 40 else "lines",
                name=name, legendgroup=name, showlegend=False, line=dict(color=color),
            ),
            row=1, col=2,
        )  # fmt: skip
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    fig.update_yaxes(title_text="nats")
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="white",
        legend=dict(orientation="h", y=-0.2),
    )  # fmt: skip
    return fig
