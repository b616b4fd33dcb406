"""scikit-learn's bundled 8x8 handwritten digits (1,797 images). Always offline."""

from __future__ import annotations

import torch

from vae.data import INK_HIGH, ImageDataset, seeded_split, subset


def load_digits(split: str = "train", seed: int = 0) -> ImageDataset:
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    x = torch.from_numpy(d.images).float().div_(16.0).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(d.target).long()
    ds = ImageDataset(
        name="digits",
        x=x.contiguous(),
        y=y,
        label_names=[str(i) for i in range(10)],
        ink=INK_HIGH,
        binary_like=False,
    )
    return subset(ds, seeded_split(len(ds), split, seed))
