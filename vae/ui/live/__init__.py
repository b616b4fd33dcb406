"""Live decoding in the browser: one `st.components.v2` component, three views.

The decoder is exported once per model (`vae.export`) and reaches the page once, as the raw
`bytes` of a small *carrier* instance (Streamlit caches large unchanged elements in the browser,
and an unchanged carrier is never re-run). Views refer to it by id, so their JSON stays small:

    dec = live.decoder(run)            # LiveDecoder(id, ...) or None (not exportable / disabled)
    res = live.latent_panel("panel", {...})   # Explore: sliders, image, mini-map, buttons
    res = live.pad("pad", {...})               # a 2-D pad over two dimensions
    live.path("path", {...})                   # Interpolate: scrub along the path A -> B

Every view decodes on each `input` event in JS and sends z back to Python once, on release, as
the state value `z` = {"v": [...], "seq": "..."}; `take_z(key, ...)` returns it once.
`VAE_LIVE_DECODER=0` turns browser decoding off (the pages then decode on the server).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from vae.checkpoint import Run
from vae.export import ExportError, export_decoder
from vae.traversal import manifold_codes
from vae.ui import image_grids, images, infer, models

_DIR = Path(__file__).parent
_JS = (_DIR / "decoder.js").read_text() + "\n" + (_DIR / "live.js").read_text()
_CSS = (_DIR / "live.css").read_text()
_component = st.components.v2.component("vae_live", html="", css=_CSS, js=_JS)

NEIGHBOURS = 15  # the star's t-SNE/UMAP position: median of this many nearest codes


@dataclass(frozen=True)
class LiveDecoder:
    id: str
    nbytes: int


def enabled() -> bool:
    return os.environ.get("VAE_LIVE_DECODER", "1") != "0"


@st.cache_resource(max_entries=16, show_spinner=False)
def _export(run_key: str, _run: Run) -> tuple[str, bytes] | str:
    """(id, packed bytes), or the reason the browser cannot run this decoder."""
    try:
        exp = export_decoder(_run.model)
    except ExportError as e:
        return str(e)
    return exp.id, exp.pack()


def unsupported_reason(run: Run) -> str | None:
    """Why this model's decoder cannot run in the browser (None when it can, or when disabled)."""
    out = _export(models.run_id(run), run)
    return out if isinstance(out, str) else None


def decoder(run: Run) -> LiveDecoder | None:
    """Send the run's decoder to the page (once per page run; call it outside fragments)."""
    if not enabled():
        return None
    out = _export(models.run_id(run), run)
    if isinstance(out, str):
        return None
    dec_id, blob = out
    _component(key=f"vaedec-{dec_id}", data=blob)
    return LiveDecoder(dec_id, len(blob))


def table(mean: np.ndarray, xy: np.ndarray, rows: np.ndarray) -> str:
    """Send a map's points (rows, map positions, latent means as float16) once; returns its id."""
    mean16 = np.ascontiguousarray(mean, dtype="<f2")  # (N, D)
    xy32 = np.ascontiguousarray(xy, dtype="<f4")  # (N, 2)
    rows32 = np.ascontiguousarray(rows, dtype="<i4")  # (N,)
    h = hashlib.sha256(mean16.tobytes())
    h.update(xy32.tobytes())
    tid = h.hexdigest()[:16]
    n, d = mean16.shape
    header = json.dumps({"id": tid, "n": int(n), "d": int(d)}).encode()
    header += b" " * ((-(8 + len(header))) % 4)
    blob = b"".join(
        [b"VAET", struct.pack("<I", len(header)), header, rows32.tobytes(), xy32.tobytes()]
        + [mean16.tobytes()]
    )
    _component(key=f"vaetab-{tid}", data=blob)
    return tid


def projection_spec(proj: Any, table_id: str | None) -> dict[str, Any]:
    """What the browser needs to place z on the map: exact PCA, or the neighbour median."""
    if proj.method == "pca":
        return {
            "method": "pca",
            "mean": np.asarray(proj.mean, np.float64).round(6).tolist(),
            "components": np.asarray(proj.components, np.float64).round(6).tolist(),
        }
    return {"method": proj.method, "table": table_id, "k": NEIGHBOURS}


def _noop() -> None:
    pass


def _mount(key: str, data: dict[str, Any], **events: Any) -> Any:
    return _component(key=key, data=data, default={"z": None}, on_z_change=_noop, **events)


def latent_panel(key: str, data: dict[str, Any]) -> Any:
    """Explore's panel; the result has `z` (state) and `snap` (a trigger with the current z)."""
    return _mount(key, {**data, "mode": "panel"}, on_snap_change=_noop)


def pad(key: str, data: dict[str, Any]) -> Any:
    return _mount(key, {**data, "mode": "pad"})


def path(key: str, data: dict[str, Any]) -> Any:
    return _mount(key, {**data, "mode": "path"})


def take_z(key: str, seen_key: str, dim: int) -> np.ndarray | None:
    """The z the view `key` sent on release, once per release (None when there is nothing new).

    Read from session state before the view is drawn, so that the run draws with it."""
    state = st.session_state.get(key)
    value = state.get("z") if isinstance(state, dict) else None
    if not isinstance(value, dict) or value.get("seq") == st.session_state.get(seen_key):
        return None
    st.session_state[seen_key] = value.get("seq")
    try:
        z = np.asarray(value.get("v"), dtype=np.float32).ravel()
    except (TypeError, ValueError):
        return None
    return z if z.size == dim and np.isfinite(z).all() else None


def rerun_view() -> None:
    """Rerun the fragment this view is in (the whole app when this run is not a fragment run),
    so that a z set by Python reaches the browser."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    st.rerun(scope="fragment" if ctx is not None and ctx.fragment_ids_this_run else "app")


PAD_STEPS = 9  # thumbnails per side of the pad's faint manifold grid


def pad_grid(run: Run, z: np.ndarray, dims: tuple[int, int], limit: float) -> str:
    """The decoded 2-D manifold under the pad: dims[0] across, dims[1] up, the rest of z fixed."""
    a, b = dims
    centre = np.asarray(z, np.float32).copy()
    centre[[a, b]] = 0.0
    vals = np.linspace(-limit, limit, PAD_STEPS, dtype=np.float32)
    codes = manifold_codes(centre, a, b, vals)  # (S, S, D), larger dims[1] at the top
    tiles = infer.decode(run, codes.reshape(-1, centre.size))  # (S*S, C, H, W)
    return images.data_uri(images.upscale(image_grids.tiles(list(tiles), PAD_STEPS, pad=0), 360))


def pad_panel(
    run: Run,
    dec: LiveDecoder,
    *,
    key: str,
    z: np.ndarray,
    order: list[int],
    label: Any,
    limit: float,
    group: str,
    zv: int = 0,
) -> np.ndarray | None:
    """Two dimension pickers and the pad; returns the z released on the pad (once), else None.

    `order` lists the dimensions most informative first, so the default pair is the two with
    the most KL; `label(d)` names a dimension.
    """
    c1, c2 = st.columns(2)
    a = c1.selectbox("Across (→)", order, index=0, format_func=label, key=f"{key}:a")
    rest = [d for d in order if d != a]
    b = c2.selectbox("Up (↑)", rest, index=0, format_func=label, key=f"{key}:b")
    new = take_z(key, f"_seen:{key}", len(z))
    z = np.asarray(z if new is None else new, np.float32)
    pad(
        key,
        {
            "decoder": dec.id,
            "group": group,
            "z": [float(v) for v in z],
            "zv": zv,
            "dims": [int(a), int(b)],
            "limit": float(limit),
            "grid": pad_grid(run, z, (int(a), int(b)), limit),
        },
    )
    st.caption(
        "Drag the handle (or focus the pad and use the arrow keys; Shift for bigger steps): the "
        f"decoded image follows in your browser. Under the pad: {PAD_STEPS}×{PAD_STEPS} decodings "
        "of the same plane, the 2-D manifold the decoder draws."
    )
    return new
