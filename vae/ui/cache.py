"""Expensive per-model results, cached in memory (Streamlit) and on disk (next to the run).

    table = latent_table(run, n=10_000)    # LatentTable: means, labels, KL, ... (numpy)
    scores = elbo_scores(run, table)       # ELBOScores: per-image ELBO and recon error (decoder)
    proj = projection(run, table, "pca")   # vae.projection.Projection (.embedding, .transform)

The disk cache (`vae.diskcache`, shared with the CLIs) lives in `<run>/.cache/` when the run
folder is writable, else in `~/.cache/vae-latent-explorer/cache/` (`$VAE_CACHE_DIR` overrides
the root); file names carry the weights hash, so a retrained model never reads stale numbers.
Arrays are stored as `.npz` without pickles. Reopening a model is then instant, even after the
server restarts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from vae import diskcache, mapping
from vae.checkpoint import Run
from vae.ui import data, models

TABLE_VERSION = mapping.TABLE_VERSION  # the table and map keys live in vae.mapping, shared with
MEANS_VERSION = mapping.MEANS_VERSION  # training jobs and `python -m vae.mapping`


def cache_dir(run: Run) -> Path:
    """Where disk caches for `run` go: `<run>/.cache` if writable, else the user cache dir."""
    return diskcache.cache_dir(run.path)


# --- latent table ---------------------------------------------------------------------------------
@dataclass
class LatentTable:
    """Per-image latent statistics of a (stratified) sample of the run's dataset.

    One encoder pass makes it, so a page can draw its map and sliders without decoding 10,000
    images first; `elbo_scores` adds the decoder-based numbers when a page needs them.
    """

    rows: np.ndarray  # (N,) row indices into data.load(run)
    mean: np.ndarray  # (N, D) posterior means
    logvar: np.ndarray  # (N, D) posterior log-variances
    labels: np.ndarray | None  # (N,) class indices
    factors: np.ndarray | None  # (N, F) generative factor indices (shapes)
    kl: np.ndarray  # (N,) KL(q(z|x) || p(z)) in nats
    kl_per_dim: np.ndarray  # (D,) mean KL of each latent dimension over the sample
    split: str
    n: int  # the size it was asked for (len() is smaller for a smaller dataset)
    seed: int

    def __len__(self) -> int:
        return len(self.rows)

    def dim_order(self) -> np.ndarray:
        """Latent dimensions sorted by KL, most informative first."""
        return np.argsort(-self.kl_per_dim, kind="stable")


@dataclass
class ELBOScores:
    """Per-image ELBO of a `LatentTable`'s images (row for row), from one seeded sample."""

    elbo: np.ndarray  # (N,) ELBO in nats
    recon: np.ndarray  # (N,) reconstruction error E_q[-log p(x|z)] in nats (= -elbo - kl)


def _cached_arrays(
    run: Run, kind: str, key: str, compute: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """`<kind>-v<TABLE_VERSION>-<run id>-<key>.npz` from the disk cache, else computed and saved.

    Files of the same kind for other weights (a retrained run) or an older layout are removed.
    """
    return diskcache.cached_arrays(run.path, kind, TABLE_VERSION, key, compute)


def _compute_table(run: Run, n: int, seed: int) -> dict[str, np.ndarray]:
    return mapping.compute_table(run, n, seed, data.load(run))


@st.cache_data(show_spinner="Encoding the dataset…", max_entries=16)
def _table(path: str, version: tuple[int, int], n: int, seed: int) -> LatentTable:
    run = models.load(Path(path))
    arrays = _cached_arrays(run, "latents", f"n{n}-s{seed}", lambda: _compute_table(run, n, seed))
    return LatentTable(
        rows=arrays["rows"],
        mean=arrays["mean"],
        logvar=arrays["logvar"],
        labels=arrays.get("labels"),
        factors=arrays.get("factors"),
        kl=arrays["kl"],
        kl_per_dim=arrays["kl_per_dim"],
        split=str(arrays["split"]),
        n=n,
        seed=seed,
    )


def latent_table(run: Run, n: int = 10_000, seed: int = 0) -> LatentTable:
    """Latent means and KLs of up to `n` images (stratified by label), from one encoder pass.

    Raises DatasetError when the dataset is missing.
    """
    return _table(str(run.path), models.stamp(run.path), int(n), int(seed))


def _compute_scores(run: Run, rows: np.ndarray, kl: np.ndarray, seed: int) -> dict:
    import torch

    from vae.metrics import per_image_elbo

    x = data.load(run).x[torch.from_numpy(rows)]  # (N, C, H, W)
    elbo = per_image_elbo(run.model, x, seed=seed).numpy()  # (N,)
    return {"elbo": elbo, "recon": -elbo - kl}  # ELBO = -(recon + KL) (Kingma & Welling 2014)


@st.cache_data(show_spinner="Scoring the dataset's images…", max_entries=16)
def _scores(path: str, version: tuple[int, int], n: int, seed: int) -> ELBOScores:
    run = models.load(Path(path))
    table = _table(path, version, n, seed)
    arrays = _cached_arrays(
        run, "scores", f"n{n}-s{seed}", lambda: _compute_scores(run, table.rows, table.kl, seed)
    )
    return ELBOScores(elbo=arrays["elbo"], recon=arrays["recon"])


def elbo_scores(run: Run, table: LatentTable) -> ELBOScores:
    """Per-image ELBO and reconstruction error of `table`'s images (a decoder pass, cached)."""
    return _scores(str(run.path), models.stamp(run.path), table.n, table.seed)


# --- projections ----------------------------------------------------------------------------------
Progress = Callable[[float, str], None]  # (fraction in [0, 1], message), as in vae.projection


@st.cache_resource(show_spinner=False, max_entries=32)
def _projection_slot(path: str, version: tuple[int, int], n: int, seed: int, method: str) -> dict:
    """A shared, initially empty holder per projection; `projection` fills it once.

    The fit runs outside the cached function so that it may draw a progress bar.
    """
    return {"lock": threading.Lock()}


def projection(run: Run, table: LatentTable, method: str = "pca", seed: int = 0, progress=None):
    """A 2-D projection of `table.mean` (`.embedding` (N, 2), `.transform(z (M, D)) -> (M, 2)`).

    Fitted once per model, table size and method (other sessions asking meanwhile wait for it),
    then read from disk on later runs. `progress` gets (fraction in [0, 1], message) while a
    slow fit (t-SNE, UMAP) runs. Raises `vae.projection.ProjectionError` (a ValueError).
    """
    if method == "tsne":  # one background fit per map, shared with Explore's forming view
        return _tsne(run, table, seed, progress)
    n = len(table)
    slot = _projection_slot(str(run.path), models.stamp(run.path), n, seed, method)
    with slot["lock"]:
        if "projection" not in slot:  # the disk cache, a map shipped with the model, or a fit
            slot["projection"] = mapping.projection(
                run, {"mean": table.mean}, method, seed, progress
            )
    return slot["projection"]


def _tsne(run: Run, table: LatentTable, seed: int, progress: Progress | None):
    """The t-SNE map: ready, or the background fit of `vae.ui.fits` waited for (reporting its
    progress), so that two pages never fit the same map twice."""

    from vae.projection import ProjectionError
    from vae.ui import fits

    hit = fits.ready(run, table, "tsne", seed)
    if hit is not None:
        return hit
    job = fits.start(run, table, "tsne", seed, retry=True)
    while job.thread is not None and job.thread.is_alive():
        if progress:
            progress(job.frac, job.message)
        job.thread.join(0.2)
    if job.error is not None:
        raise ProjectionError(job.error)
    return job.result
