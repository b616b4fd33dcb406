"""scikit-learn's bundled 8x8 handwritten digits (1,797 images). Always offline.

The data is read straight from the CSV that ships inside the scikit-learn package, without
importing scikit-learn: its import costs seconds, which a training job pays before its first step.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from vae.data import INK_HIGH, DatasetError, ImageDataset, seeded_split, subset


def digits_csv() -> Path:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("the 'digits' dataset comes with scikit-learn: pip install scikit-learn")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.exists():
        raise DatasetError(f"scikit-learn's digits file is missing at {path}; reinstall it")
    return path


def load_digits(split: str = "train", seed: int = 0) -> ImageDataset:
    with gzip.open(digits_csv(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)  # (1797, 65): 64 pixels + label
    x = torch.from_numpy(table[:, :64] / 16.0).reshape(-1, 1, 8, 8)  # (N, 1, 8, 8) in [0, 1]
    y = torch.from_numpy(table[:, 64].astype(np.int64))
    ds = ImageDataset(
        name="digits",
        x=x.contiguous(),
        y=y,
        label_names=[str(i) for i in range(10)],
        ink=INK_HIGH,
        binary_like=False,
    )
    return subset(ds, seeded_split(len(ds), split, seed))
