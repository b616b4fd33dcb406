"""The latent map: the big WebGL scatter of the latent space, what is drawn on it, and the
Pillow-drawn mini-map. (Other Plotly charts are in `vae.ui.charts`; pictures made of decoded
images in `vae.ui.image_grids`.)

    m = latent_map(xy, labels, categorical=True, color_title="label", marker=z_xy)
    add_stars(m.figure, uploads_xy, names); add_path(m.figure, path_xy); add_points(...)
    st.plotly_chart(m.figure, on_select=...); rows = m.selected_rows(points)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw
from plotly.colors import qualitative

from vae.thresholds import COLLAPSED_KL  # noqa: F401  (re-exported for the pages)

PALETTE = qualitative.T10 + qualitative.Pastel
MARKER_COLOR = "#e4572e"
SELECTED_COLOR = "#111111"
PATH_COLOR = "#111111"  # paths and extra points drawn on the map


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
    if selected is not None and len(selected):
        ring = dict(size=13, color="rgba(0,0,0,0)", line=dict(color=SELECTED_COLOR, width=2))
        add_markers(fig, selected, "selected", ring, hoverinfo="skip")
        positions.append(np.zeros(0, dtype=np.int64))
    if marker is not None:
        add_markers(fig, marker, "current z", STAR, hovertemplate="current z<extra></extra>")
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


def add_markers(fig: go.Figure, xy: np.ndarray, name: str, marker: dict, **trace: Any) -> go.Figure:
    """One WebGL marker trace at `xy` (M, 2): WebGL like the data's dots, which would otherwise
    hide SVG markers under them."""
    p = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
    trace.setdefault("mode", "markers")
    fig.add_trace(go.Scattergl(x=p[:, 0], y=p[:, 1], name=name, marker=marker, **trace))
    return fig


STAR = dict(symbol="star", size=20, color=MARKER_COLOR, line=dict(color="white", width=1.5))


def add_stars(
    fig: go.Figure, xy: np.ndarray, names: Sequence[str], hover: Sequence[str] | None = None
) -> go.Figure:
    """Add labelled ★ markers (e.g. uploaded images) at `xy` (M, 2) to a map (WebGL, so they
    are drawn above the map's WebGL dots); `hover` (default: the labels) shows on hover."""
    return add_markers(
        fig,
        xy,
        "your images",
        STAR,
        mode="markers+text",
        text=list(names),
        customdata=list(hover if hover is not None else names),
        textposition="top center",
        hovertemplate="%{customdata}<extra></extra>",
    )


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
    return add_markers(
        fig,
        p[[0, -1]],
        "endpoints",
        dict(size=15, symbol="star", color=MARKER_COLOR, line=dict(color="white")),
        mode="markers+text",
        text=["A", "B"],
        textposition="top center",
        textfont=dict(size=18, color=PATH_COLOR, weight="bold"),
        hoverinfo="skip",
    )


def add_points(
    fig: go.Figure, xy: np.ndarray, name: str, symbol: str = "x", color: str = PATH_COLOR
) -> go.Figure:
    """Extra markers (M, 2) on a latent map, e.g. prior samples or holes."""
    style = dict(size=10, symbol=symbol, color=color, line=dict(color="white", width=1))
    return add_markers(fig, xy, name, style, hovertemplate=f"{name}<extra></extra>")
