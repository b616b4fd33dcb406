"""State shared across pages: session keys, and the URL query parameters that reproduce a view.

The URL carries `model`, `page`, `idx` (selected dataset row), `z` (comma-separated latent
values) and `proj` (map projection). `init()` copies them into session state once per session;
`sync_url()` writes the current values back after each run, so copying the address bar
reproduces what is on screen.

Latent vectors move between pages through a *pending z*: `request_z(z)` stores it, and the page
that owns the latent sliders applies it with `pop_z(dim)` before it draws them.
"""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

# Session keys.
MODEL = "model"  # the model picker's widget key (a model key such as "asset:digits-mlp")
IDX = "selected_idx"  # selected dataset row on the latent map, int or absent
PROJ = "projection"  # projection method of the latent map ("pca", "tsne", "umap")
MAP_N = "map_size"  # number of dataset images on the latent map
_PENDING_Z = "_pending_z"
_PENDING_MODEL = "_pending_model"
_Z = "_current_z"
_INIT = "_url_loaded"
_URL_PAGE = "_url_page"
_PAGE = "_page"
_NOTICES = "_link_notices"  # {"page": url path or None, "items": [messages]}
_Z_FROM_URL = "_z_from_url"

QP_KEYS = ("model", "page", "idx", "z", "proj")
PROJECTIONS = ("pca", "tsne", "umap")
MAX_Z_VALUES = 4096  # a longer z in a link is refused before parsing


def encode_z(z: np.ndarray) -> str:
    return ",".join(f"{v:.2f}" for v in np.asarray(z, dtype=np.float64).ravel())


def z_problem(text: str) -> str | None:
    """Why a link's z cannot be used, in words (None when it can)."""
    if text.count(",") >= MAX_Z_VALUES:
        return f"it has more than {MAX_Z_VALUES:,} values"
    try:
        z = np.array([float(v) for v in text.split(",")], dtype=np.float64)
    except (ValueError, AttributeError):
        return "it is not a comma-separated list of numbers"
    if z.size == 0 or not np.isfinite(z).all() or np.abs(z).max() > 1e6:
        return "it holds a value that is not a finite number of a sensible size"
    return None


def decode_z(text: str, dim: int | None = None) -> np.ndarray | None:
    """Parse "0.1,-1.2,..."; None when malformed, non-finite or of the wrong length."""
    if not isinstance(text, str) or z_problem(text) is not None:
        return None
    try:
        z = np.array([float(v) for v in text.split(",")], dtype=np.float32)
    except (ValueError, AttributeError):
        return None
    if z.size == 0 or not np.isfinite(z).all() or (dim is not None and z.size != dim):
        return None
    return z


def init() -> None:
    """Once per session, read the URL's query parameters into session state."""
    ss = st.session_state
    if ss.get(_INIT):
        return
    ss[_INIT] = True
    qp = st.query_params
    ss[_URL_PAGE] = qp.get("page")
    if qp.get("model"):
        ss[_PENDING_MODEL] = qp["model"]
    proj = qp.get("proj")
    if proj in PROJECTIONS:
        ss[PROJ] = proj
    elif proj:
        link_notice(
            f"The link's projection {quote_value(proj)} was ignored: it is not one of PCA (pca), "
            "t-SNE (tsne) or UMAP (umap)."
        )
    idx = qp.get("idx")
    if idx is not None and idx.isdigit() and len(idx) <= 9:
        ss[IDX] = int(idx)
    elif idx:
        link_notice(
            f"The link's image number {quote_value(idx)} was ignored: it is not a whole number."
        )
    if qp.get("z"):
        problem = z_problem(qp["z"])
        z = None if problem else decode_z(qp["z"])
        if z is not None:
            ss[_PENDING_Z] = z
            ss[_Z] = z
            ss[_Z_FROM_URL] = True
        else:
            link_notice(f"The link's latent vector z was ignored: {problem or 'it is malformed'}.")


def quote_value(text: str, n: int = 40) -> str:
    """A value from the URL, quoted and cut short for a message."""
    text = str(text)
    return repr(text if len(text) <= n else text[:n] + "…")


# --- notices about a link's values (kept until the user leaves the page the link opened) --------
def link_notice(message: str) -> None:
    """Tell the user that a value of the link they opened was not used, and why."""
    notes = st.session_state.setdefault(_NOTICES, {"page": None, "items": []})
    if message not in notes["items"]:
        notes["items"].append(message)


def link_notices(page: str) -> list[str]:
    """The notices to show on `page`: they stay through reruns of the page the link opened
    (Explore reruns itself once to draw its map), and go once the user opens another page."""
    notes = st.session_state.get(_NOTICES)
    if not notes:
        return []
    if notes["page"] is None:
        notes["page"] = page
    elif notes["page"] != page:
        st.session_state.pop(_NOTICES, None)
        return []
    return list(notes["items"])


def set_page(url_path: str) -> None:
    """Called by app.py: the url path of the page being shown (written to the URL as `page`)."""
    st.session_state[_PAGE] = url_path


def take_url_page() -> str | None:
    """The `page` query parameter of the session's first load, once (None afterwards)."""
    return st.session_state.pop(_URL_PAGE, None)


# --- model ----------------------------------------------------------------------------------------
def request_model(key: str) -> None:
    """Select a model on the next run (the picker widget cannot be changed after it is drawn)."""
    st.session_state[_PENDING_MODEL] = key


def apply_pending_model() -> None:
    """Called by the picker before it draws itself."""
    key = st.session_state.pop(_PENDING_MODEL, None)
    if key:
        st.session_state[MODEL] = key


# --- latent vector --------------------------------------------------------------------------------
def request_z(z: np.ndarray) -> None:
    """Ask the latent sliders to show `z` on their next run (any page may call this)."""
    z = np.asarray(z, dtype=np.float32).ravel()
    st.session_state[_PENDING_Z] = z
    st.session_state[_Z] = z


def pop_z(dim: int) -> np.ndarray | None:
    """Take the pending z if it fits a `dim`-dimensional model."""
    z = st.session_state.pop(_PENDING_Z, None)
    if st.session_state.pop(_Z_FROM_URL, False) and z is not None and z.size != dim:
        link_notice(
            f"The link's latent vector z was ignored: it has {z.size} values, and this model "
            f"has {dim} latent dimensions."
        )
    return z if z is not None and z.size == dim else None


def peek_z(dim: int) -> np.ndarray:
    """The z the sliders will show next (pending, else current, else zeros), without taking it."""
    z = st.session_state.get(_PENDING_Z)
    if z is None or z.size != dim:
        z = current_z(dim)
    return np.zeros(dim, np.float32) if z is None else z


def current_z(dim: int) -> np.ndarray | None:
    """The z the sliders showed last (or were asked to show), if it fits `dim`."""
    z = st.session_state.get(_Z)
    return z if z is not None and z.size == dim else None


def set_current_z(z: np.ndarray) -> None:
    st.session_state[_Z] = np.asarray(z, dtype=np.float32).ravel()


# --- selection ------------------------------------------------------------------------------------
def selected_index() -> int | None:
    return st.session_state.get(IDX)


def set_selected_index(idx: int | None) -> None:
    if idx is None:
        st.session_state.pop(IDX, None)
    else:
        st.session_state[IDX] = int(idx)


# --- latent map settings (kept outside widget keys, which Streamlit drops on page switches) ---
def map_size(n_dataset: int) -> int:
    """Images on the latent map: the user's choice, else up to 10,000."""
    n = st.session_state.get(MAP_N)
    if n is None:
        n = 10_000
    return int(min(n, n_dataset))


def set_map_size(n: int) -> None:
    st.session_state[MAP_N] = int(n)


def projection_method() -> str:
    return st.session_state.get(PROJ) or "pca"


def set_projection_method(method: str) -> None:
    st.session_state[PROJ] = method


# --- URL ------------------------------------------------------------------------------------------
def sync_url(page: str | None = None, *, z: np.ndarray | None = None) -> None:
    """Write the current view into the query string; only keys that changed are touched."""
    ss = st.session_state
    want: dict[str, str | None] = {
        "model": ss.get(MODEL),
        "page": (page if page is not None else ss.get(_PAGE)) or None,
        "idx": str(ss[IDX]) if ss.get(IDX) is not None else None,
        "proj": ss.get(PROJ),
    }
    zz = z if z is not None else ss.get(_Z)
    want["z"] = encode_z(zz) if zz is not None and np.isfinite(zz).all() else None
    qp = st.query_params
    for k, v in want.items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if k in qp:
                del qp[k]
        elif qp.get(k) != v:
            qp[k] = v
