"""The live view's checkpoint preview: prior samples, reconstructions and the latent map.

    show_preview(run_dir, epoch)   # three columns, redrawn when the run's checkpoint changes

Until a run has its first checkpoint (model.safetensors and config.json) each column says it is
waiting for it. A checkpoint that cannot be read (being replaced, or torn) never breaks the
view: the last preview drawn for the run stays, or the placeholder does. The model calls go
through `vae.ui.infer` (numpy in and out); images are sent as data URIs, so a redraw never
points the browser at a media file that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from vae.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_run
from vae.data import DatasetError
from vae.ui import image_grids, images, infer, maps

PREVIEW_N = 1000  # test images on the live latent map
WAITING = "Waiting for the first checkpoint…"
LAST_GOOD = "_tr_last_preview"  # session key: {run name: the last preview shown}


@dataclass
class Preview:
    samples: Any  # PIL image: a grid of decoded prior samples
    recon: Any  # PIL image: test images (top rows) over their reconstructions
    xy: np.ndarray | None  # (N, 2) latent means (2-d) or their PCA
    labels: np.ndarray | None
    label_names: list[str]
    axes: tuple[str, str]


# --- computing it (cached per checkpoint) ---------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=3)
def _test_images(name: str, data_dir: str | None, image_size: int | None) -> infer.ImageSample:
    """A fixed sample of the test split: up to PREVIEW_N images and labels."""
    return infer.dataset_sample(name, data_dir, image_size, n=PREVIEW_N, split="test", seed=0)


def _latent_xy(mean: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """The map's coordinates: the means themselves (2-d latent) or their first two PCs."""
    if mean.shape[1] == 2:
        return mean, ("z0", "z1")
    from sklearn.decomposition import PCA

    return PCA(2, random_state=0).fit_transform(mean), ("PC 1", "PC 2")


@st.cache_data(show_spinner=False, max_entries=12)
def preview(path: str, stamp: tuple[int, int]) -> Preview:
    """Samples, reconstructions and the latent map of the checkpoint in `path`, whose weights
    file has `stamp` (mtime, size): hashed, so each new checkpoint gets a fresh entry."""
    run = load_run(path)
    samples_img = image_grids.tiles(list(infer.prior_images(run, 16, seed=0)), ncol=4)
    train = run.train
    try:
        test_set = _test_images(train.dataset, train.data_dir, train.image_size)
    except DatasetError:
        return Preview(samples_img, None, None, None, [], ("", ""))
    x = test_set.x  # (N, C, H, W)
    rec = infer.reconstruct(run, x[:8])  # (8, C, H, W)
    mean, _ = infer.encode(run, x)  # (N, D)
    recon_img = image_grids.tiles([*x[:4], *rec[:4], *x[4:8], *rec[4:]], ncol=4)  # image over recon
    xy, axes = _latent_xy(mean)
    return Preview(samples_img, recon_img, xy.astype(np.float32), test_set.y,
                   test_set.label_names, axes)  # fmt: skip


def weights_stamp(run_dir: Path) -> tuple[int, int] | None:
    """(mtime, size) of the run's weights, or None before its first checkpoint is complete."""
    try:
        s = (run_dir / WEIGHTS_FILE).stat()
    except OSError:
        return None
    if not (run_dir / CONFIG_FILE).is_file():  # the weights are written first, then the config
        return None
    return s.st_mtime_ns, s.st_size


def current_preview(run_dir: Path) -> tuple[Preview | None, str]:
    """(preview, caption) of the run's checkpoint. Before the first checkpoint: (None, WAITING).
    When it cannot be read: the last preview read, or (None, why)."""
    last = st.session_state.setdefault(LAST_GOOD, {})
    stamp = weights_stamp(run_dir)
    if stamp is None:
        last.pop(run_dir.name, None)  # a new run under an old name starts over
        return None, WAITING
    try:
        last[run_dir.name] = preview(str(run_dir), stamp)
    except Exception as e:  # a checkpoint mid-replace or torn: keep the last one, retry next poll
        if run_dir.name not in last:
            return None, f"Could not read the checkpoint yet ({type(e).__name__}); retrying…"
    return last[run_dir.name], ""


# --- showing it -----------------------------------------------------------------------------------
def _image(img: Any, alt: str) -> None:
    st.image(images.data_uri(images.upscale(img, 360)), width="stretch", alt=alt)


def show_preview(run_dir: Path, epoch: int) -> None:
    """Samples, reconstructions and the latent map of the run's current checkpoint."""
    p, why = current_preview(run_dir)
    when = "" if p is None else f", after epoch {epoch}" if epoch else ", at initialisation"
    a, b, c = st.columns([1, 1, 1.2], gap="medium")
    with a:
        st.markdown(f"**Samples** from the prior{when}")
        if p is None:
            st.caption(why)
        else:
            _image(p.samples, "training samples")
    with b:
        st.markdown(f"**Reconstructions**{when}")
        if p is None:
            st.caption(why)
        elif p.recon is None:
            st.caption("The dataset is not available here, so there is nothing to reconstruct.")
        else:
            _image(p.recon, "training reconstructions")
            st.caption("Rows 1 and 3: test images. Rows 2 and 4: what the model makes of them.")
    with c:
        _latent_map(run_dir, p, why)


def _latent_map(run_dir: Path, p: Preview | None, why: str) -> None:
    if p is None or p.xy is None:
        st.markdown("**Latent map** of test images")
        st.caption(why if p is None else "The dataset is not available here, so there is no map.")
        return
    st.markdown(f"**Latent map** of {len(p.xy)} test images ({p.axes[0]}, {p.axes[1]})")
    color = p.labels if p.labels is not None else np.zeros(len(p.xy))
    fig = maps.latent_map(
        p.xy, color, categorical=p.labels is not None, color_title="label",
        category_names=p.label_names or None, axis_titles=p.axes, height=300,
    ).figure  # fmt: skip
    fig.update_layout(dragmode="pan", margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig, key=f"live_map_{run_dir.name}", config={"displaylogo": False})
