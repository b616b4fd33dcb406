"""Plotly figures for the Interpolate, Diagnostics and Demos pages (numpy in, `go.Figure` out).

The latent map itself is `vae.ui.maps.latent_map`; `add_path` and `add_points` draw on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from vae.thresholds import ACTIVE_UNIT, COLLAPSED_KL
from vae.ui.maps import MARKER_COLOR, PALETTE, PATH_COLOR


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
    xcol = _column(records, x)  # (N,), NaN where a record has no number
    for i, (key, name) in enumerate(series.items()):
        ycol = _column(records, key)
        keep = np.isfinite(xcol) & np.isfinite(ycol)
        if not keep.any():
            continue
        xs, ys = xcol[keep], ycol[keep]  # arrays: Plotly sends them as typed arrays, not lists
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
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _column(records: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """The finite numbers under `key`, one per record, NaN where there is none (float64 (N,))."""
    return np.fromiter(
        (v if _num(v := r.get(key)) else math.nan for r in records), np.float64, len(records)
    )


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

    The x range is zoomed on the test set. What lies far below it (ELBOs in the thousands) is
    drawn as one hatched bar per group, in the group's own colour and legend entry, side by side
    left of the range, so it neither squashes the interesting part nor mixes into a colour that
    the legend does not show.
    """
    ref = np.asarray(next(iter(groups.values())), np.float64)
    q_lo, q_hi = np.percentile(ref, [0.5, 100])
    vals = np.concatenate([np.asarray(v, np.float64) for v in groups.values()])
    lo = max(float(vals.min()), q_lo - 1.5 * max(q_hi - q_lo, 1e-6))
    hi = float(vals.max())
    size = max((hi - lo) / 60, 1e-6)
    edges = lo + size * np.arange(int(np.ceil((hi - lo) / size)) + 2)  # bins of the zoomed range
    fig = go.Figure()
    n = len(groups)
    for i, (name, v) in enumerate(groups.items()):
        v = np.asarray(v, np.float64)
        color = "#4c78a8" if i == 0 else PALETTE[(i + 1) % len(PALETTE)]
        counts, _ = np.histogram(v, bins=edges)  # values below lo are not in any bin
        share = counts / max(v.size, 1)  # shares of the whole group
        fig.add_trace(
            go.Bar(
                x=(edges[:-1] + edges[1:]) / 2,
                y=share,
                width=size,
                name=name,
                legendgroup=name,
                opacity=0.85 if i == 0 else 0.55,
                marker_color=color,
                hovertemplate=f"{name}: %{{y:.1%}} near %{{x:.0f}} nats<extra></extra>",
            )
        )
        below = float((v < lo).mean()) if v.size else 0.0
        if below > 0:
            fig.add_trace(
                go.Bar(
                    x=[lo - size * (n - i + 1)],
                    y=[below],
                    width=size,
                    name=f"{name}: below {lo:.0f}",
                    legendgroup=name,
                    showlegend=False,
                    opacity=0.85 if i == 0 else 0.55,
                    marker=dict(color=color, pattern=dict(shape="/")),
                    hovertemplate=f"{name}: {100 * below:.0f}% below {lo:.0f} nats<extra></extra>",
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
            x=lo - size * (n + 1),
            y=1.0,
            yref="paper",
            xanchor="left",
            showarrow=False,
            text=f"hatched: below {lo:.0f} (off the scale), in each group's colour",
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


def norm_profile(
    t: np.ndarray,
    norms: Mapping[str, np.ndarray],
    typical: float,
    height: int = 220,
    typical_label: str = "typical prior sample (√D)",
) -> go.Figure:
    """‖z‖ along interpolation paths, with the norm typical of prior samples (√D for N(0, I))."""
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
        annotation_text=typical_label,
        annotation_position="bottom right",
    )
    return _layout(fig, height, xaxis=dict(title="t (0 = A, 1 = B)"), yaxis=dict(title="‖z‖"))


def posterior_bars(
    mean: np.ndarray,
    std: np.ndarray,
    dims: Sequence[int] | None = None,
    height: int = 300,
    prior_mean: np.ndarray | None = None,
    prior_std: np.ndarray | None = None,
) -> go.Figure:
    """Posterior mean ± σ per latent dimension over the prior: grey bands at ±1 and ±2 for
    N(0, 1), or, given `prior_mean` and `prior_std` (D,) of a learned prior's marginals p(z_d),
    grey bars at each dimension's mean ± 1 and ± 2 standard deviations."""
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    dims = list(range(len(mean))) if dims is None else list(dims)
    labels = [f"z{d}" for d in dims]
    fig = go.Figure()
    learned = prior_mean is not None and prior_std is not None
    if learned:
        pm, ps = np.asarray(prior_mean, np.float32)[dims], np.asarray(prior_std, np.float32)[dims]
        for k, opacity in ((2, 0.2), (1, 0.35)):
            fig.add_trace(
                go.Bar(
                    x=labels,
                    y=2 * k * ps,
                    base=pm - k * ps,
                    name=f"prior ±{k}σ",
                    marker=dict(color="lightgrey", opacity=opacity, line_width=0),
                    width=0.7,
                    hoverinfo="skip",
                )
            )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=mean[dims],
            mode="markers",
            name="posterior mean ± σ",
            marker=dict(size=9, color=MARKER_COLOR),
            error_y=dict(type="data", array=std[dims], thickness=1.5, width=4, color=MARKER_COLOR),
            hovertemplate="%{x}: %{y:.2f} ± %{error_y.array:.2f}<extra></extra>",
        )
    )
    if learned:
        reach = np.abs(pm) + 2 * ps
    else:
        fig.add_hrect(y0=-1, y1=1, fillcolor="lightgrey", opacity=0.35, line_width=0)
        fig.add_hrect(y0=-2, y1=2, fillcolor="lightgrey", opacity=0.2, line_width=0)
        reach = np.zeros(len(dims))
    fig.add_hline(y=0, line=dict(color="grey", width=1))
    top = np.maximum(np.abs(mean[dims]) + std[dims], reach) if dims else np.zeros(0)
    hi = float(max(3.0, np.max(top) + 0.3)) if dims else 3.0
    return _layout(
        fig,
        height,
        showlegend=False,
        barmode="overlay",
        yaxis=dict(range=[-hi, hi], title="z", zeroline=False),
        xaxis=dict(title="latent dimension (most informative first)"),
    )
