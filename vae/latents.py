"""Latent codes of a whole dataset, and nearest neighbours in latent space.

Everything returns torch tensors on the CPU (float32), so callers can `.numpy()` them for plots
or keep them for further torch maths; the model itself may live on any device.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from vae.checkpoint import Run
from vae.data import DatasetError, ImageDataset, load_dataset
from vae.model import VAE, cpu_inference_layout


def _device(model: VAE) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_dataset(
    model: VAE, x: torch.Tensor, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior parameters of every image: (mean (N, D), logvar (N, D)), CPU float32."""
    dev = _device(model)
    means, logvars = [], []
    with cpu_inference_layout(model):
        for i in range(0, x.shape[0], batch_size):
            q = model.encode(x[i : i + batch_size].to(dev, non_blocking=True))
            means.append(q.mean.float().cpu())  # (b, D)
            logvars.append(q.logvar.float().cpu())  # (b, D)
    if not means:
        d = model.config.latent_dim
        return torch.zeros(0, d), torch.zeros(0, d)
    return torch.cat(means), torch.cat(logvars)


def nearest(
    query: torch.Tensor, means: torch.Tensor, k: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k rows of `means` (N, D) closest to `query` (D,) in Euclidean distance.

    Returns (indices (k,), distances (k,)), nearest first; k is clipped to N.
    """
    query = query.reshape(1, -1).to(means)  # (1, D)
    # Direct differences, not the |a|^2 + |b|^2 - 2ab matmul form, so that a point's distance
    # to itself is exactly 0 (the matmul form leaves ~1e-4 of float32 cancellation).
    dist = torch.cdist(query, means, compute_mode="donot_use_mm_for_euclid_dist").squeeze(0)  # (N,)
    k = max(0, min(int(k), means.shape[0]))
    distances, indices = torch.topk(dist, k, largest=False, sorted=True)
    return indices, distances


def run_dataset(
    run: Run,
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    **kwargs: Any,
) -> ImageDataset:
    """Load the dataset a run was trained on (from its config.json) and check its image shape.

    The image size recorded in the run's train config is reused, and the split seed is the one
    `vae.train` uses (`load_dataset`'s default, 0, unless the dataset info records a
    `split_seed`), so `digits`, `shapes`, `folder` and `npz` get the training split.
    """
    info, train = run.dataset, run.train
    name = info.get("name")
    if not name:
        raise DatasetError(f"{run.path} does not record which dataset it was trained on")
    if data_dir is None and train.data_dir:
        data_dir = train.data_dir
    shape = tuple(run.config.image_shape)
    image_size = train.image_size or (shape[1] if name in ("shapes", "folder") else None)
    ds = load_dataset(
        name,
        split,
        data_dir,
        image_size=image_size,
        seed=int((info.get("preprocessing") or {}).get("split_seed", 0)),
        download=download,
        **kwargs,
    )
    if tuple(ds.image_shape) != shape:
        raise DatasetError(
            f"dataset {name!r} gives images of shape {tuple(ds.image_shape)}, but the model in "
            f"{run.path} expects {shape}; pass the --data-dir it was trained on"
        )
    return ds
