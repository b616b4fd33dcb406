"""Latent sliders: one `st.slider` per latent dimension, ordered by KL, that keep their values.

The latent vector lives in session state (`vae.ui.state`), not only in the widgets, so dimensions
whose sliders are hidden (beyond the top 16) keep their values. Typical use inside a fragment:

    keys = slider_keys(model_key, dim)
    z = take_z(keys, dim)                      # pending z (from a click, another page) or current
    ... draw the decoded image of z ...
    draw(keys, kl_per_dim, show_all=...)       # the widgets, most informative dimension first

Buttons change z through `on_click=set_z, args=(keys, z_new)`: callbacks run before the widgets
are drawn, which is the only time Streamlit allows a widget's value to be set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from vae.thresholds import COLLAPSED_KL
from vae.ui import state

LIMIT = 3.0  # sliders span -3..+3 prior standard deviations ...
MAX_LIMIT = 20.0  # ... or wider, up to this, when the data's codes lie further out
STEP = 0.1
TOP = 16  # dimensions shown before "show all"


def slider_keys(model_key: str, dim: int) -> list[str]:
    return [f"zslider:{model_key}:{d}" for d in range(dim)]


def limit_for(means: np.ndarray) -> float:
    """Slider half-range: 3 (the prior's ±3σ) unless some posterior means lie further out, as in
    weakly regularised models (β ≈ 0); then wide enough to reach every dataset image."""
    m = float(np.max(np.abs(means))) if np.size(means) else 0.0
    return LIMIT if m <= LIMIT else float(min(np.ceil(m), MAX_LIMIT))


def _clip(v: float, limit: float) -> float:
    return float(np.clip(round(float(v), 2), -limit, limit))


def set_z(keys: Sequence[str], z: np.ndarray, limit: float = LIMIT) -> None:
    """Set every slider (drawn or hidden) and the session's current z. Use from callbacks."""
    zc = [_clip(v, limit) for v in np.asarray(z, dtype=np.float32).ravel()]
    for k, v in zip(keys, zc, strict=True):
        st.session_state[k] = v
    state.set_current_z(np.array(zc, dtype=np.float32))


def take_z(keys: Sequence[str], dim: int, limit: float = LIMIT) -> np.ndarray:
    """The z to show now: a pending request wins, else the sliders, else the stored z, else 0."""
    pending = state.pop_z(dim)
    if pending is not None:
        set_z(keys, pending, limit)
    base = state.current_z(dim)
    base = np.zeros(dim, np.float32) if base is None else base
    z = np.array(
        [_clip(st.session_state.get(k, base[d]), limit) for d, k in enumerate(keys)],
        dtype=np.float32,
    )
    state.set_current_z(z)
    return z


def order(kl_per_dim: np.ndarray) -> np.ndarray:
    """Dimensions by mean KL, descending (most informative first)."""
    return np.argsort(-np.asarray(kl_per_dim), kind="stable")


def draw(
    keys: Sequence[str],
    kl_per_dim: np.ndarray | None,
    *,
    show_all: bool = False,
    ncols: int = 2,
    top: int = TOP,
    limit: float = LIMIT,
) -> list[int]:
    """Draw the sliders (top `top` dims by KL unless `show_all`); returns the dims drawn.

    Without the dataset (`kl_per_dim` None) the dimensions are in index order, without KL."""
    known = kl_per_dim is not None
    kl = np.asarray(kl_per_dim if known else np.ones(len(keys)), dtype=np.float32)
    dims = [int(d) for d in order(kl)]
    if not show_all:
        dims = dims[:top]
    z = state.current_z(len(keys))
    cols = st.columns(ncols, gap="medium")
    for i, d in enumerate(dims):
        collapsed = known and kl[d] < COLLAPSED_KL
        label = f"z{d} · KL {kl[d]:.2f}" if known else f"z{d}"
        label += " · collapsed" if collapsed else ""
        if keys[d] not in st.session_state:
            st.session_state[keys[d]] = _clip(0.0 if z is None else z[d], limit)
        cols[i % ncols].slider(
            label,
            -limit,
            limit,
            step=STEP,
            key=keys[d],
            format="%.2f",
            help=(
                "Collapsed: this dimension's posterior equals the prior for every image, so the "
                f"decoder ignores it (KL < {COLLAPSED_KL:g} nats)."
                if collapsed
                else f"Mean KL of this dimension over the dataset: {kl[d]:.3f} nats."
                if known
                else f"Latent dimension {d}."
            ),
        )
    return dims
