"""The live view's checkpoint preview: prior samples, reconstructions and the latent map.

    show_preview(run_dir, epoch)   # three columns, redrawn when the run's weights change

The weights drawn are the newer of the checkpoint (model.safetensors, once per epoch) and the
trainer's preview (preview.safetensors, every few seconds, `vae.train.preview`). Until a run has
its first checkpoint (model.safetensors and config.json) each column says it is waiting for it.
Weights that cannot be read (being replaced, or torn) never break the view: the last preview
drawn for the run stays, or the placeholder does. The model calls go
through `vae.ui.infer` (numpy in and out); images are sent as data URIs, so a redraw never
points the browser at a media file that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from vae.checkpoint import CONFIG_FILE, PREVIEW_FILE, WEIGHTS_FILE, load_run
from vae.data import DatasetError
from vae.record import RecordError
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
    step: int | None = None  # the training step of a preview file; None for the checkpoint


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


def _step(meta: dict[str, str]) -> int | None:
    try:
        return int(meta["step"])
    except (KeyError, ValueError):
        return None


@st.cache_data(show_spinner=False, max_entries=12)
def preview(path: str, stamp: tuple[str, int, int]) -> Preview:
    """Samples, reconstructions and the latent map of the run in `path`, drawn from the weights
    file of `stamp` (name, mtime, size): hashed, so each new file gets a fresh entry."""
    run = load_run(path, weights=stamp[0])
    step = _step(run.weights_meta) if stamp[0] == PREVIEW_FILE else None
    samples_img = image_grids.tiles(list(infer.prior_images(run, 16, seed=0)), ncol=4)
    train = run.train
    try:  # an imported run's data only from inside its folder (Run.data_dir)
        test_set = _test_images(train.dataset, run.data_dir, train.image_size)
    except (DatasetError, RecordError):
        return Preview(samples_img, None, None, None, [], ("", ""), step)
    x = test_set.x  # (N, C, H, W)
    rec = infer.reconstruct(run, x[:8])  # (8, C, H, W)
    mean, _ = infer.encode(run, x)  # (N, D)
    recon_img = image_grids.tiles([*x[:4], *rec[:4], *x[4:8], *rec[4:]], ncol=4)  # image over recon
    xy, axes = _latent_xy(mean)
    return Preview(samples_img, recon_img, xy.astype(np.float32), test_set.y,
                   test_set.label_names, axes, step)  # fmt: skip


def weights_stamp(run_dir: Path) -> tuple[str, int, int] | None:
    """(file name, mtime, size) of the newer of the run's checkpoint and preview weights (the
    checkpoint on a tie), or None before its first checkpoint is complete."""
    found = []
    for rank, name in enumerate((PREVIEW_FILE, WEIGHTS_FILE)):
        try:
            s = (run_dir / name).stat()
        except OSError:
            continue
        found.append((s.st_mtime_ns, rank, name, s.st_size))
    if not found or not (run_dir / CONFIG_FILE).is_file():  # weights first, then the config
        return None
    mtime, _, name, size = max(found)
    return name, mtime, size


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


def _when(p: Preview | None, epoch: int) -> str:
    """When the weights drawn are from: ", at step 1,234" (a preview), ", after epoch 3"."""
    if p is None:
        return ""
    if p.step is not None:
        return f", at step {p.step:,}"
    return f", after epoch {epoch}" if epoch else ", at initialisation"


def show_preview(run_dir: Path, epoch: int) -> None:
    """Samples, reconstructions and the latent map of the run's newest weights."""
    p, why = current_preview(run_dir)
    when = _when(p, epoch)
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
