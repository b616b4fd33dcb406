"""Latent codes of a whole dataset, and nearest neighbours in latent space.

Everything returns torch tensors on the CPU (float32), so callers can `.numpy()` them for plots
or keep them for further torch maths; the model itself may live on any device.
`cached_means(run, "train")` keeps a whole split's means in the disk cache the app uses, so a
second call (`python -m vae.encode`) neither loads nor encodes the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vae import diskcache
from vae.checkpoint import Run
from vae.data import DatasetError, ImageDataset, load_dataset
from vae.errors import ExplorerError
from vae.model import VAE, cpu_inference_layout

MEANS_VERSION = 1  # in the means cache's file names: bump when what `cached_means` stores changes


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
    name, data_dir, image_size, seed = _dataset_args(run, data_dir)
    shape = tuple(run.config.image_shape)
    ds = load_dataset(
        name, split, data_dir, image_size=image_size, seed=seed, download=download, **kwargs
    )
    if tuple(ds.image_shape) != shape:
        raise DatasetError(
            f"dataset {name!r} gives images of shape {tuple(ds.image_shape)}, but the model in "
            f"{run.path} expects {shape}; pass the --data-dir it was trained on"
        )
    names = getattr(run, "label_names", None)  # a user's model names the classes (vae.adapter)
    if names:
        ds.label_names = list(names)
    return ds


def _dataset_args(
    run: Run, data_dir: str | os.PathLike | None
) -> tuple[str, str | os.PathLike | None, int | None, int]:
    """(name, data_dir, image_size, split seed) that `load_dataset` gets for this run."""
    info, train = run.dataset, run.train
    name = info.get("name")
    if not name:
        raise DatasetError(f"{run.path} does not record which dataset it was trained on")
    if data_dir is None:  # an uploaded or imported run's data only from inside its folder
        try:
            data_dir = run.data_dir or None
        except ExplorerError as e:
            raise DatasetError(str(e)) from None
    shape = tuple(run.config.image_shape)
    image_size = train.image_size or (shape[1] if name in ("shapes", "folder") else None)
    seed = int((info.get("preprocessing") or {}).get("split_seed", 0))
    return name, data_dir, image_size, seed


# --- posterior means of a whole split, cached on disk ------------------------------------------
@dataclass
class DatasetMeans:
    """The posterior means of every image of a split, and the labels neighbours are named by."""

    mean: torch.Tensor  # (N, D) CPU float32
    labels: torch.Tensor | None  # (N,) int64
    label_names: list[str] | None


def dataset_key(run: Run, split: str, data_dir: str | os.PathLike | None = None) -> dict:
    """What `run_dataset(run, split, data_dir)` would load, found without loading it: the
    dataset, split, preprocessing, and the size and mtime of every file it reads."""
    name, data_dir, image_size, seed = _dataset_args(run, data_dir)
    files = _data_files(name, split, data_dir)
    listing = json.dumps(files, separators=(",", ":")).encode()
    return {
        "dataset": name,
        "split": split,
        "image_size": image_size,
        "split_seed": seed,
        "image_shape": list(run.config.image_shape),
        "preprocessing": run.dataset.get("preprocessing") or {},
        "files": {"count": len(files), "sha256": hashlib.sha256(listing).hexdigest()},
    }


def _data_files(name: str, split: str, data_dir: str | os.PathLike | None) -> list:
    """[path, size, mtime_ns] of each file the dataset is read from (digits and shapes: none)."""
    if name in ("mnist", "fashion-mnist"):
        from vae.data.mnist import dataset_dir, split_files

        paths = [dataset_dir(name, data_dir) / f for f in split_files(split)]
    elif name == "npz" and data_dir is not None:
        paths = [Path(data_dir)]
    elif name == "folder" and data_dir is not None:
        from vae.data.folder import scan

        try:
            paths = scan(Path(data_dir))[0]
        except OSError:
            return []  # loading will say what is wrong
    else:
        return []
    out = []
    for p in paths:
        try:
            s = p.stat()
            out.append([str(p.resolve()), s.st_size, s.st_mtime_ns])
        except OSError:
            out.append([str(p.resolve()), None, None])  # missing: loading will say so
    return out


def cached_means(
    run: Run,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    refresh: bool = False,
) -> DatasetMeans:
    """Posterior means of every image of the run's `split`, from the shared disk cache
    (`vae.diskcache`) when it holds them for these weights and this data, else encoded with
    `encode_dataset` and stored. A hit loads neither the dataset nor the encoder's input.

    `refresh` re-encodes. Raises DatasetError when it must encode and the data is missing.
    """
    text = json.dumps(dataset_key(run, split, data_dir), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]

    def compute() -> dict[str, np.ndarray]:
        ds = run_dataset(run, split, data_dir)
        mean, _ = encode_dataset(run.model, ds.x)  # (N, D)
        out = {"key": np.array(text), "mean": mean.numpy()}
        if ds.y is not None:
            out["labels"] = ds.y.numpy().astype(np.int64)  # (N,)
        if ds.label_names is not None:
            out["label_names"] = np.array(ds.label_names, dtype=str)
        return out

    arrays = diskcache.cached_arrays(
        run.path,
        "means",
        MEANS_VERSION,
        f"{split}-{digest}",
        compute,
        check=lambda a: _valid_means(a, text, run.config.latent_dim),
        refresh=refresh,
    )
    labels, names = arrays.get("labels"), arrays.get("label_names")
    return DatasetMeans(
        mean=torch.from_numpy(arrays["mean"]),
        labels=None if labels is None else torch.from_numpy(labels),
        label_names=None if names is None else [str(s) for s in names],
    )


def _valid_means(a: dict[str, np.ndarray], key_text: str, dim: int) -> bool:
    """Whether a cache file holds what `cached_means` writes, for this key and latent size."""
    key, mean = a.get("key"), a.get("mean")
    if key is None or key.shape != () or key.dtype.kind != "U" or str(key) != key_text:
        return False
    if mean is None or mean.dtype != np.float32 or mean.ndim != 2 or mean.shape[1] != dim:
        return False
    if not np.isfinite(mean).all():
        return False
    labels, names = a.get("labels"), a.get("label_names")
    if labels is not None and (labels.dtype != np.int64 or labels.shape != (len(mean),)):
        return False
    return names is None or (names.dtype.kind == "U" and names.ndim == 1)
