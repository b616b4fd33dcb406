"""Expensive per-model results, cached in memory (Streamlit) and on disk (next to the run).

    table = latent_table(run, n=10_000)    # LatentTable: means, labels, ELBO, KL, ... (numpy)
    proj = projection(run, table, "pca")   # vae.projection.Projection (.embedding, .transform)

The disk cache lives in `<run>/.cache/` when the run folder is writable, else in
`~/.cache/vae-latent-explorer/cache/` (`$VAE_CACHE_DIR` overrides the root); file names carry
the weights hash, so a retrained model never reads stale numbers. Arrays are stored as `.npz`
without pickles. Reopening a model is then instant, even after the server restarts.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from vae.checkpoint import Run, atomic_write_bytes
from vae.ui import data, models

TABLE_VERSION = 1


def cache_dir(run: Run) -> Path:
    """Where disk caches for `run` go: `<run>/.cache` if writable, else the user cache dir."""
    local = Path(run.path) / ".cache"
    try:
        local.mkdir(exist_ok=True)
        if os.access(local, os.W_OK):
            return local
    except OSError:
        pass
    out = models.user_dir() / "cache" / models.run_id(run)
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of an .npz written by `save_npz`, or None if missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError):
        return None


# --- latent table ---------------------------------------------------------------------------------
@dataclass
class LatentTable:
    """Per-image latent statistics of a (stratified) sample of the run's dataset."""

    rows: np.ndarray  # (N,) row indices into data.load(run)
    mean: np.ndarray  # (N, D) posterior means
    logvar: np.ndarray  # (N, D) posterior log-variances
    labels: np.ndarray | None  # (N,) class indices
    factors: np.ndarray | None  # (N, F) generative factor indices (shapes)
    elbo: np.ndarray  # (N,) per-image ELBO in nats (single seeded sample)
    kl: np.ndarray  # (N,) KL(q(z|x) || p(z)) in nats
    recon: np.ndarray  # (N,) reconstruction error -log p(x|z) in nats (= kl - elbo)
    kl_per_dim: np.ndarray  # (D,) mean KL of each latent dimension over the sample
    split: str

    def __len__(self) -> int:
        return len(self.rows)

    def dim_order(self) -> np.ndarray:
        """Latent dimensions sorted by KL, most informative first."""
        return np.argsort(-self.kl_per_dim, kind="stable")


def _compute_table(run: Run, n: int, seed: int) -> dict[str, np.ndarray]:
    import torch

    from vae.latents import encode_dataset
    from vae.metrics import per_image_elbo
    from vae.projection import stratified_sample

    ds = data.load(run)
    labels = None if ds.y is None else ds.y.numpy()
    rows = stratified_sample(labels, n, seed, total=len(ds)).astype(np.int64)  # sorted
    x = ds.x[torch.from_numpy(rows)]  # (N, C, H, W)
    mean, logvar = encode_dataset(run.model, x)  # (N, D), (N, D)
    kl_d = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)  # K&W 2013, App. B; (N, D)
    elbo = per_image_elbo(run.model, x, seed=seed)  # (N,)
    kl = kl_d.sum(1)  # (N,)
    out = {
        "rows": rows,
        "mean": mean.numpy(),
        "logvar": logvar.numpy(),
        "elbo": elbo.numpy(),
        "kl": kl.numpy(),
        "recon": (kl - elbo).numpy(),
        "kl_per_dim": kl_d.mean(0).numpy(),
        "split": np.array(ds.extra.get("split", "test")),
    }
    if labels is not None:
        out["labels"] = labels[rows]
    if ds.factors is not None:
        out["factors"] = ds.factors.numpy()[rows]
    return out


@st.cache_data(show_spinner="Encoding the dataset…", max_entries=16)
def _table(path: str, version: tuple[int, int], n: int, seed: int) -> LatentTable:
    run = models.load(Path(path))
    f = cache_dir(run) / f"latents-v{TABLE_VERSION}-{models.run_id(run)}-n{n}-s{seed}.npz"
    arrays = load_npz(f)
    if arrays is None:
        arrays = _compute_table(run, n, seed)
        save_npz(f, arrays)
        for stale in f.parent.glob("latents-v*.npz"):  # earlier weights of a retrained run
            if f"-{models.run_id(run)}-" not in stale.name:
                stale.unlink(missing_ok=True)
    return LatentTable(
        rows=arrays["rows"],
        mean=arrays["mean"],
        logvar=arrays["logvar"],
        labels=arrays.get("labels"),
        factors=arrays.get("factors"),
        elbo=arrays["elbo"],
        kl=arrays["kl"],
        recon=arrays["recon"],
        kl_per_dim=arrays["kl_per_dim"],
        split=str(arrays["split"]),
    )


def latent_table(run: Run, n: int = 10_000, seed: int = 0) -> LatentTable:
    """Latent means and per-image scores of up to `n` images (stratified by label).

    Raises DatasetError when the dataset is missing.
    """
    return _table(str(run.path), models.stamp(run.path), int(n), int(seed))


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
    from vae.projection import cached_fit

    n = len(table)
    slot = _projection_slot(str(run.path), models.stamp(run.path), n, seed, method)
    with slot["lock"]:
        if "projection" not in slot:
            key = {"run": models.run_id(run), "n": n, "seed": seed, "table": TABLE_VERSION}
            slot["projection"] = cached_fit(
                cache_dir(run), key, table.mean, method, seed=seed, progress=progress
            )
    return slot["projection"]
