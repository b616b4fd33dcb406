"""The dataset behind a model: cached loading, image access as numpy, and the sidebar status.

ds = require_dataset(run)            # ImageDataset of the run (or st.error + st.stop)
imgs = images(ds, rows)              # (k, C, H, W) float32 numpy
dataset_panel(run)                   # sidebar: available? download button with progress
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from vae.checkpoint import Run
from vae.data import DatasetError, ImageDataset
from vae.errors import ExplorerError, public_text
from vae.mapping import MIN_TEST_IMAGES  # noqa: F401 - below it a map uses the whole dataset
from vae.ui import models


def dataset_name(run: Run) -> str:
    return str(run.dataset.get("name") or "")


def data_dir_of(run: Run) -> str | None:
    """The run's data folder (`Run.data_dir`: an uploaded run's only from inside it); None when
    there is none it may use, so the status and downloads go to the server's own data folder."""
    try:
        return run.data_dir
    except ExplorerError:
        return None


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=6)
def _load(path: str, version: tuple[int, int], split: str) -> ImageDataset:
    from vae.latents import run_dataset
    from vae.mapping import map_dataset  # the test split, or all when tiny (as maps use it)

    run = models.load(Path(path))
    if split == "test":  # the test split, or all of it when tiny: what maps show (vae.mapping)
        return map_dataset(run)
    ds = run_dataset(run, split, download=False)
    ds.extra["split"] = split
    return ds


def load(run: Run, split: str = "test") -> ImageDataset:
    """The run's dataset (its test split, or all of it when the test split is tiny).

    Shared read-only across sessions; `ds.extra["split"]` says which split was used.
    Raises DatasetError when the data is not on disk.
    """
    return _load(str(run.path), models.stamp(run.path), split)


def try_load(run: Run) -> ImageDataset | None:
    """`load(run)`, or None when the data is not on disk (a page then works without it)."""
    try:
        return load(run)
    except DatasetError:
        return None


def require_dataset(run: Run, without: str = "") -> ImageDataset:
    """`load(run)` for a page that cannot work without it: otherwise say what is missing, with
    the download button right there, and stop the page. `without` says what still works."""
    ds = try_load(run)
    if ds is None:
        missing_notice(run, without)
        st.stop()
    return ds


def missing_notice(run: Run, without: str = "", key: str = "main") -> None:
    """In the page: the model's images are not on this machine, in plain words, and a download
    button with its size when they can be fetched; `without` says what works without them."""
    name, data_dir = dataset_name(run), data_dir_of(run)
    try:
        s = status(name, data_dir)
    except DatasetError as e:
        s = {"available": False, "downloadable": False, "message": str(e), "title": ""}
    title = s.get("title") or name or "its dataset"
    detail = public_text(str(s.get("message") or ""))
    if s.get("available"):  # on disk but unreadable (a torn file, say): the loader's own words
        try:
            load(run)
        except DatasetError as e:
            detail = str(e)
    head = f"**The {title} images are not on this machine**, and this part needs them."
    if s.get("available"):
        head = f"**The {title} images could not be read**, and this part needs them."
    with st.container(border=True):
        st.markdown(f":material/dataset: {head} {without}".strip())
        if s.get("downloadable") and not s.get("available"):
            size = f" (about {s['size_mb']} MB)" if s.get("size_mb") else ""
            if st.button(
                f"Download {title}{size}",
                key=f"dl_{key}_{name}",
                icon=":material/download:",
                type="primary",
            ):
                download_with_progress(name, data_dir, st, on_done=_load.clear)
        st.caption(detail)


def images(ds: ImageDataset, rows: np.ndarray | list[int]) -> np.ndarray:
    """Dataset images at `rows` as float32 numpy, (k, C, H, W)."""
    idx = np.asarray(rows, dtype=np.int64)
    return ds.x[idx].numpy()


def label_of(ds: ImageDataset, row: int) -> str:
    if ds.y is None:
        return "—"
    y = int(ds.y[row])
    names = ds.label_names or []
    return names[y] if y < len(names) else str(y)


def status(name: str, data_dir: str | None = None) -> dict[str, Any]:
    from vae.data.status import dataset_status

    return dataset_status(name, data_dir)


def dataset_panel(run: Run) -> None:
    """Sidebar block: is the model's dataset here, and a download button when it can be fetched."""
    name, data_dir = dataset_name(run), data_dir_of(run)
    if not name:
        st.sidebar.caption("This model does not record its dataset.")
        return
    try:
        s = status(name, data_dir)
    except DatasetError as e:
        st.sidebar.warning(str(e))
        return
    if s.get("available"):
        st.sidebar.caption(
            f":material/dataset: Dataset **{name}**: {public_text(s.get('message') or 'available')}"
        )
        return
    title = s.get("title") or name
    st.sidebar.warning(
        f"The **{title}** images are not on this machine: the map, Encode's neighbours and the "
        "tours wait for them.",
        icon=":material/dataset:",
    )
    size = f" (about {s['size_mb']} MB)" if s.get("size_mb") else ""
    if s.get("downloadable") and st.sidebar.button(
        f"Download {title}{size}", key=f"dl_{name}", help=public_text(str(s.get("message") or ""))
    ):
        download_with_progress(name, data_dir, st.sidebar, on_done=_load.clear)
    elif not s.get("downloadable"):
        st.sidebar.caption(public_text(str(s.get("message") or "")))


def download_with_progress(
    name: str, data_dir: str | None, where: Any = st, on_done: Callable[[], None] | None = None
) -> None:
    """Fetch a dataset with a progress bar in `where` (st or st.sidebar), then `on_done` (to
    clear the caches that said it was missing) and rerun."""
    from vae.data.status import download

    bar = where.progress(0.0, text=f"Downloading {name}…")

    def progress(done: int, total: int | None) -> None:
        frac = min(1.0, done / total) if total else 0.0
        mb = f"{done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else "")
        bar.progress(frac, text=f"Downloading {name}: {mb}")

    try:
        download(name, data_dir, progress=progress)
    except DatasetError as e:
        bar.empty()
        where.error(f"Download failed: {e}")
        return
    bar.empty()
    if on_done:
        on_done()
    st.rerun()
