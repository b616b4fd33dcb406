"""Plotly figures for the app. Inputs are numpy arrays; every function returns a `go.Figure`.

`latent_map` is the big WebGL scatter of the latent space; the others are small charts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw
from plotly.colors import qualitative

from vae.thresholds import COLLAPSED_KL  # noqa: F401  (re-exported for the pages)

PALETTE = qualitative.T10 + qualitative.Pastel
MARKER_COLOR = "#e4572e"
SELECTED_COLOR = "#111111"


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    base = dict(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        plot_bgcolor="white",
        legend=dict(itemsizing="constant"),
    )
    fig.update_layout(**{**base, **kw})
    return fig


@dataclass
class MapFigure:
    """The latent map and, for each trace, the table positions of its points.

    `positions[curve_number][point_index]` turns a Plotly selection back into table rows.
    """

    figure: go.Figure
    positions: list[np.ndarray]

    def selected_rows(self, points: Sequence[dict]) -> list[int]:
        """Table positions of the selected data points (marker traces are ignored)."""
        out = []
        for p in points:
            c, i = p.get("curve_number"), p.get("point_index", p.get("point_number"))
            if c is None or i is None or c >= len(self.positions) or not len(self.positions[c]):
                continue
            if 0 <= i < len(self.positions[c]):
                out.append(int(self.positions[c][i]))
        return out


def latent_map(
    xy: np.ndarray,
    color: np.ndarray,
    *,
    categorical: bool,
    color_title: str,
    category_names: Sequence[str] | None = None,
    rows: np.ndarray | None = None,
    marker: np.ndarray | None = None,
    selected: np.ndarray | None = None,
    axis_titles: tuple[str, str] = ("", ""),
    height: int = 560,
    hover_labels: Sequence[str] | None = None,
) -> MapFigure:
    """WebGL scatter of a 2-D embedding `xy` (N, 2), coloured by `color` (N,).

    `categorical` colours draw one trace per class with a legend; otherwise a colour bar.
    `rows` (N,) are the dataset indices shown on hover, with `hover_labels` (N,) when the colour
    is not the label. `marker` (2,) is the current z (a star); `selected` (k, 2) are highlighted
    points (rings).
    """
    xy = np.asarray(xy, dtype=np.float32)
    rows = np.arange(len(xy)) if rows is None else np.asarray(rows)
    fig = go.Figure()
    positions: list[np.ndarray] = []
    if categorical:
        codes = np.asarray(color).astype(np.int64)
        for k in np.unique(codes):
            pos = np.flatnonzero(codes == k)
            name = (
                category_names[k]
                if category_names is not None and k < len(category_names)
                else str(k)
            )
            fig.add_trace(
                go.Scattergl(
                    x=xy[pos, 0],
                    y=xy[pos, 1],
                    mode="markers",
                    name=str(name),
                    marker=dict(size=5, opacity=0.75, color=PALETTE[int(k) % len(PALETTE)]),
                    customdata=rows[pos],
                    hovertemplate=(
                        f"{color_title} <b>{name}</b><br>image #%{{customdata}}<extra></extra>"
                    ),
                )
            )
            positions.append(pos)
    else:
        vals = np.asarray(color, dtype=np.float32)
        fig.add_trace(
            go.Scattergl(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers",
                name="images",
                marker=dict(
                    size=5,
                    opacity=0.8,
                    color=vals,
                    colorscale="Viridis",
                    colorbar=dict(title=dict(text=color_title, side="right"), thickness=12),
                ),
                customdata=np.stack([rows, vals], 1),
                text=None if hover_labels is None else list(hover_labels),
                hovertemplate=(
                    ("label <b>%{text}</b><br>" if hover_labels is not None else "")
                    + f"image #%{{customdata[0]}}<br>{color_title} "
                    "%{customdata[1]:.3g}<extra></extra>"
                ),
                showlegend=False,
            )
        )
        positions.append(np.arange(len(xy)))
    # WebGL like the data, else the canvas would hide these SVG markers under the dots.
    if selected is not None and len(selected):
        sel = np.asarray(selected, dtype=np.float32).reshape(-1, 2)
        fig.add_trace(
            go.Scattergl(
                x=sel[:, 0],
                y=sel[:, 1],
                mode="markers",
                name="selected",
                marker=dict(
                    size=13, color="rgba(0,0,0,0)", line=dict(color=SELECTED_COLOR, width=2)
                ),
                hoverinfo="skip",
            )
        )
        positions.append(np.zeros(0, dtype=np.int64))
    if marker is not None:
        m = np.asarray(marker, dtype=np.float32).reshape(2)
        fig.add_trace(
            go.Scattergl(
                x=[m[0]],
                y=[m[1]],
                mode="markers",
                name="current z",
                marker=dict(
                    symbol="star", size=20, color=MARKER_COLOR, line=dict(color="white", width=1.5)
                ),
                hovertemplate="current z<extra></extra>",
            )
        )
        positions.append(np.zeros(0, dtype=np.int64))
    _layout(
        fig,
        height,
        xaxis=dict(title=axis_titles[0], showgrid=False, zeroline=False),
        yaxis=dict(title=axis_titles[1], showgrid=False, zeroline=False),
        # A colour bar has its own title and sits where the legend would: the legend (★, ring)
        # then goes in one row above the plot.
        legend=(
            dict(title=dict(text=color_title), itemsizing="constant")
            if categorical
            else dict(orientation="h", x=0, xanchor="left", y=1.0, yanchor="bottom")
        ),
        uirevision="latent-map",
    )
    return MapFigure(fig, positions)


def add_stars(fig: go.Figure, xy: np.ndarray, names: Sequence[str]) -> go.Figure:
    """Add labelled ★ markers (e.g. uploaded images) at `xy` (M, 2) to a map (WebGL, so they
    are drawn above the map's WebGL dots)."""
    xy = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
    fig.add_trace(
        go.Scattergl(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="markers+text",
            name="your images",
            text=list(names),
            textposition="top center",
            marker=dict(
                symbol="star", size=20, color=MARKER_COLOR, line=dict(color="white", width=1.5)
            ),
            hovertemplate="%{text}<extra></extra>",
        )
    )
    return fig


def density_grid(xy: np.ndarray, bins: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-D histogram of an embedding: (counts (bins, bins) as [y, x], x edges, y edges)."""
    xy = np.asarray(xy, dtype=np.float64)
    lo, hi = xy.min(0), xy.max(0)
    pad = 0.05 * np.maximum(hi - lo, 1e-6)
    rng = [[lo[0] - pad[0], hi[0] + pad[0]], [lo[1] - pad[1], hi[1] + pad[1]]]
    h, ex, ey = np.histogram2d(xy[:, 0], xy[:, 1], bins=bins, range=rng)
    return h.T, ex, ey


def position_image(
    grid: tuple[np.ndarray, np.ndarray, np.ndarray], marker: np.ndarray | None, size: int = 192
) -> Image.Image:
    """A small picture of the map: where the data lies (grey) and where z is (a red star).

    Drawn with Pillow rather than Plotly, so it costs about a millisecond: it is redrawn on
    every slider move. A marker outside the data's range is drawn at the border.
    """
    counts, ex, ey = grid
    d = np.log1p(counts)
    d = d / max(float(d.max()), 1e-9)
    grey = (250 - 170 * d[::-1]).astype(np.uint8)  # (bins, bins), row 0 = top = largest y
    im = Image.fromarray(grey, "L").resize((size, size), Image.Resampling.NEAREST).convert("RGB")
    if marker is not None:
        m = np.asarray(marker, dtype=np.float64).reshape(2)
        px = (m[0] - ex[0]) / (ex[-1] - ex[0]) * size
        py = (1 - (m[1] - ey[0]) / (ey[-1] - ey[0])) * size
        px, py = float(np.clip(px, 6, size - 6)), float(np.clip(py, 6, size - 6))
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 9.0, 4.0)
        star = [
            (px + r * np.cos(a), py - r * np.sin(a)) for a, r in zip(angles, radii, strict=True)
        ]
        ImageDraw.Draw(im).polygon(star, fill=MARKER_COLOR, outline="white")
    return im


def posterior_bars(
    mean: np.ndarray, std: np.ndarray, dims: Sequence[int] | None = None, height: int = 300
) -> go.Figure:
    """Posterior mean ± σ per latent dimension over the prior N(0, 1) (grey band = ±1, line = 0)."""
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    dims = list(range(len(mean))) if dims is None else list(dims)
    labels = [f"z{d}" for d in dims]
    fig = go.Figure(
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
    fig.add_hrect(y0=-1, y1=1, fillcolor="lightgrey", opacity=0.35, line_width=0)
    fig.add_hrect(y0=-2, y1=2, fillcolor="lightgrey", opacity=0.2, line_width=0)
    fig.add_hline(y=0, line=dict(color="grey", width=1))
    hi = float(max(3.0, np.max(np.abs(mean[dims]) + std[dims]) + 0.3)) if dims else 3.0
    return _layout(
        fig,
        height,
        showlegend=False,
        yaxis=dict(range=[-hi, hi], title="z", zeroline=False),
        xaxis=dict(title="latent dimension (most informative first)"),
    )
