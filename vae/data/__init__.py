"""In-memory image datasets: one float tensor (N, C, H, W) in [0, 1], with optional labels.

`load_dataset(name, split)` is the single entry point. Every failure is a `DatasetError` whose
message says what is missing, where it looked, and how to fix it.
"""

from __future__ import annotations
from vae.errors import ExplorerError

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# "ink-high": ink strokes have high values (MNIST, sklearn digits: white digit on black).
# "ink-low": ink is dark on a light background (photos of paper, most folder images).
INK_HIGH, INK_LOW = "ink-high", "ink-low"

Progress = Callable[[int, int | None], None]  # (bytes or items done, total or None)


class DatasetError(ExplorerError, RuntimeError):
    """A dataset could not be loaded. The message is meant for the user, as is."""


@dataclass
class ImageDataset:
    name: str
    x: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    y: torch.Tensor | None = None  # (N,) int64
    label_names: list[str] | None = None
    factors: torch.Tensor | None = None  # (N, F) int64 factor indices (shapes)
    factor_names: list[str] | None = None
    factor_sizes: list[int] | None = None  # number of values of each factor
    ink: str = INK_HIGH
    binary_like: bool = False  # intensities near 0/1: suits a Bernoulli likelihood
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def info(self) -> dict[str, Any]:
        """What a checkpoint records about its data (config.json["dataset"])."""
        return {
            "name": self.name,
            "image_shape": list(self.image_shape),
            "label_names": self.label_names,
            "factor_names": self.factor_names,
            "factor_sizes": self.factor_sizes,
            "preprocessing": {"ink": self.ink, "binary_like": self.binary_like, **self.extra},
        }


def default_data_dir() -> Path:
    return Path(os.environ.get("VAE_DATA_DIR") or "data")


def seeded_split(n: int, split: str, seed: int = 0, test_fraction: float = 0.15) -> torch.Tensor:
    """Indices of a reproducible train/test split for datasets without a canonical one."""
    if split not in ("train", "test", "all"):
        raise DatasetError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if split == "all":
        return torch.arange(n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(n * test_fraction)))
    return perm[:n_test].sort().values if split == "test" else perm[n_test:].sort().values


def guess_ink(x: torch.Tensor) -> str:
    """Mostly dark images carry bright ink ("ink-high"); mostly light ones dark ink ("ink-low")."""
    return INK_HIGH if float(x.mean()) < 0.5 else INK_LOW


def looks_binary(x: torch.Tensor, tol: float = 0.1, share: float = 0.9) -> bool:
    """True when at least `share` of the pixels lie within `tol` of 0 or 1 (Bernoulli-friendly)."""
    return bool(((x < tol) | (x > 1 - tol)).float().mean() >= share)


def subset(ds: ImageDataset, idx: torch.Tensor) -> ImageDataset:
    return ImageDataset(
        name=ds.name,
        x=ds.x[idx],
        y=None if ds.y is None else ds.y[idx],
        label_names=ds.label_names,
        factors=None if ds.factors is None else ds.factors[idx],
        factor_names=ds.factor_names,
        factor_sizes=ds.factor_sizes,
        ink=ds.ink,
        binary_like=ds.binary_like,
        extra=dict(ds.extra),
    )


DATASETS = ("digits", "shapes", "mnist", "fashion-mnist", "folder", "npz")


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    image_size: int | None = None,
    seed: int = 0,
    download: bool = True,
    progress: Progress | None = None,
    **kwargs: Any,
) -> ImageDataset:
    """Load a dataset by name. `data_dir` is the root holding `<name>/` for the IDX datasets, the
    image folder for `folder`, or the `.npz` file for `npz`."""
    if name == "digits":
        from vae.data.digits import load_digits

        return load_digits(split, seed=seed)
    if name == "shapes":
        from vae.data.shapes import load_shapes

        return load_shapes(split, image_size=image_size or 32, seed=seed, **kwargs)
    if name in ("mnist", "fashion-mnist"):
        from vae.data.mnist import load_idx_dataset

        return load_idx_dataset(name, split, data_dir, download=download, progress=progress)
    if name == "folder":
        from vae.data.folder import load_folder

        if data_dir is None:
            raise DatasetError("the 'folder' dataset needs --data-dir pointing at an image folder")
        return load_folder(data_dir, split, image_size=image_size or 32, seed=seed, **kwargs)
    if name == "npz":
        from vae.data.npz import load_npz

        if data_dir is None:
            raise DatasetError("the 'npz' dataset needs --data-dir pointing at a .npz file")
        return load_npz(data_dir, split, seed=seed)
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
