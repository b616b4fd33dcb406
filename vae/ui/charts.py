"""Plotly figures for the Interpolate, Diagnostics and Demos pages (numpy in, `go.Figure` out).

The latent map itself is `vae.ui.plots.latent_map`; `add_path` and `add_points` draw on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from vae.thresholds import ACTIVE_UNIT, COLLAPSED_KL
from vae.ui.plots import MARKER_COLOR, PALETTE

PATH_COLOR = "#111111"


def _layout(fig: go.Figure, height: int, **kw: Any) -> go.Figure:
    base = dict(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        plot_bgcolor="white",
        hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
    )
    fig.update_layout(**{**base, **kw})
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    return fig


# --- training curves ------------------------------------------------------------------------------
def curves(
    records: Sequence[Mapping[str, Any]],
    series: Mapping[str, str],
    x: str = "epoch",
    *,
    y_title: str = "nats",
    height: int = 300,
    dashed: Sequence[str] = (),
) -> go.Figure:
    """One line per key of `series` ({record key: legend name}) over `x`; missing keys skipped."""
    fig = go.Figure()
    for i, (key, name) in enumerate(series.items()):
        pts = [(r[x], r[key]) for r in records if _num(r.get(x)) and _num(r.get(key))]
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines" if len(xs) > 40 else "lines+markers",
                name=name,
                line=dict(
                    color=PALETTE[i % len(PALETTE)],
                    width=2,
                    dash="dash" if key in dashed else "solid",
                ),
                hovertemplate=f"{name}: %{{y:.2f}}<extra></extra>",
            )
        )
    return _layout(
        fig,
        height,
        xaxis=dict(title=x),
        yaxis=dict(title=y_title),
    )


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


# --- latent usage ---------------------------------------------------------------------------------
def activity_bars(
    activity: np.ndarray, order: Sequence[int], threshold: float = ACTIVE_UNIT, height: int = 260
) -> go.Figure:
    """Activity Cov_x(E_q[z_d]) per dimension in `order`, log scale, with the threshold."""
    a = np.asarray(activity, np.float64)
    order = [int(d) for d in order]
    fig = go.Figure(
        go.Bar(
            x=[f"z{d}" for d in order],
            y=np.maximum(a[order], 1e-6),
            marker_color=[MARKER_COLOR if a[d] > threshold else "lightgrey" for d in order],
            hovertemplate="%{x}: %{y:.3g}<extra></extra>",
        )
    )
    fig.add_hline(
        y=threshold,
        line=dict(color="grey", dash="dash"),
        annotation_text=f"active above {threshold:g}",
        annotation_position="top left",
    )
    return _layout(
        fig,
        height,
        hovermode="closest",
        yaxis=dict(title="activity (log scale)", type="log", dtick=1),
        xaxis=dict(title="latent dimension"),
    )


def kl_sorted_bars(kl_per_dim: np.ndarray, order: Sequence[int], height: int = 260) -> go.Figure:
    """Mean KL per dimension in `order` (so it lines up with `activity_bars`); collapsed in grey."""
    kl = np.asarray(kl_per_dim, np.float64)
    order = [int(d) for d in order]
    fig = go.Figure(
        go.Bar(
            x=[f"z{d}" for d in order],
            y=kl[order],
            marker_color=[MARKER_COLOR if kl[d] >= COLLAPSED_KL else "lightgrey" for d in order],
            hovertemplate="%{x}: %{y:.3f} nats<extra></extra>",
        )
    )
    return _layout(
        fig, height, hovermode="closest", yaxis=dict(title="KL (nats)"), xaxis=dict(title="")
    )


def mi_heatmap(
    mi: np.ndarray, factor_names: Sequence[str], order: Sequence[int], height: int = 300
) -> go.Figure:
    """Mutual information I(factor; z_d) in nats, factors as rows, dimensions in `order`."""
    m = np.asarray(mi, np.float64)[:, list(order)]  # (F, D)
    fig = go.Figure(
        go.Heatmap(
            z=m,
            x=[f"z{d}" for d in order],
            y=list(factor_names),
            colorscale="Blues",
            colorbar=dict(title=dict(text="nats", side="right"), thickness=12),
            text=np.round(m, 2),
            texttemplate="%{text}",
            hovertemplate="I(%{y}; %{x}) = %{z:.3f} nats<extra></extra>",
        )
    )
    return _layout(fig, height, hovermode="closest", yaxis=dict(autorange="reversed"))


# --- anomaly detection ----------------------------------------------------------------------------
def elbo_histograms(
    groups: Mapping[str, np.ndarray], threshold: float | None = None, height: int = 360
) -> go.Figure:
    """Overlaid ELBO histograms (the first group is the test set), with a threshold line.

    The x range is zoomed on the test set; anything far below it is stacked in the leftmost bin,
    so that very unusual inputs (ELBOs in the thousands) do not squash the interesting part.
    """
    ref = np.asarray(next(iter(groups.values())), np.float64)
    q_lo, q_hi = np.percentile(ref, [0.5, 100])
    vals = np.concatenate([np.asarray(v, np.float64) for v in groups.values()])
    lo = max(float(vals.min()), q_lo - 1.5 * max(q_hi - q_lo, 1e-6))
    hi = float(vals.max())
    size = max((hi - lo) / 60, 1e-6)
    fig = go.Figure()
    for i, (name, v) in enumerate(groups.items()):
        fig.add_trace(
            go.Histogram(
                x=np.clip(np.asarray(v, np.float64), lo + size / 2, None),
                name=name,
                xbins=dict(start=lo, end=hi + size, size=size),
                histnorm="probability",
                opacity=0.85 if i == 0 else 0.55,
                marker_color="#4c78a8" if i == 0 else PALETTE[(i + 1) % len(PALETTE)],
            )
        )
    if threshold is not None:
        fig.add_vline(
            x=threshold,
            line=dict(color=MARKER_COLOR, width=2, dash="dash"),
            annotation_text="threshold",
            annotation_position="top",
        )
    if vals.min() < lo:
        fig.add_annotation(
            x=lo,
            y=1.0,
            yref="paper",
            xanchor="left",
            showarrow=False,
            text=f"← leftmost bar: everything below {lo:.0f}",
            font=dict(size=11, color="grey"),
        )
    return _layout(
        fig,
        height,
        barmode="overlay",
        hovermode="closest",
        xaxis=dict(title="ELBO in nats (higher = more typical)"),
        yaxis=dict(title="share of images"),
    )


# --- drawing on the latent map --------------------------------------------------------------------
def add_path(fig: go.Figure, xy: np.ndarray, name: str = "path") -> go.Figure:
    """A numbered path (S, 2) with a start (A) and an end (B) marker on a latent map."""
    p = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
    fig.add_trace(
        go.Scattergl(
            x=p[:, 0],
            y=p[:, 1],
            mode="lines+markers",
            name=name,
            line=dict(color=PATH_COLOR, width=2),
            marker=dict(size=7, color="white", line=dict(color=PATH_COLOR, width=2)),
            customdata=np.arange(len(p)),
            hovertemplate="step %{customdata}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scattergl(
            x=p[[0, -1], 0],
            y=p[[0, -1], 1],
            mode="markers+text",
            name="endpoints",
            text=["A", "B"],
            textposition="top center",
            textfont=dict(size=18, color=PATH_COLOR, weight="bold"),
            marker=dict(size=15, symbol="star", color=MARKER_COLOR, line=dict(color="white")),
            hoverinfo="skip",
        )
    )
    return fig


def add_points(
    fig: go.Figure, xy: np.ndarray, name: str, symbol: str = "x", color: str = PATH_COLOR
) -> go.Figure:
    """Extra markers (M, 2) on a latent map, e.g. prior samples or holes."""
    p = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
    fig.add_trace(
        go.Scattergl(
            x=p[:, 0],
            y=p[:, 1],
            mode="markers",
            name=name,
            marker=dict(size=10, symbol=symbol, color=color, line=dict(color="white", width=1)),
            hovertemplate=f"{name}<extra></extra>",
        )
    )
    return fig


def norm_profile(
    t: np.ndarray, norms: Mapping[str, np.ndarray], typical: float, height: int = 220
) -> go.Figure:
    """‖z‖ along interpolation paths, with the norm typical of prior samples (≈ √D)."""
    fig = go.Figure()
    for i, (name, v) in enumerate(norms.items()):
        fig.add_trace(
            go.Scatter(
                x=t,
                y=v,
                mode="lines+markers",
                name=name,
                line=dict(color=[PATH_COLOR, MARKER_COLOR][i % 2], width=2),
                hovertemplate=f"{name}: ‖z‖ = %{{y:.2f}}<extra></extra>",
            )
        )
    fig.add_hline(
        y=typical,
        line=dict(color="grey", dash="dot"),
        annotation_text="typical prior sample (√D)",
        annotation_position="bottom right",
    )
    return _layout(fig, height, xaxis=dict(title="t (0 = A, 1 = B)"), yaxis=dict(title="‖z‖"))
