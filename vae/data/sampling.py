"""Choosing dataset rows: a stratified, seeded subset (e.g. the rows of a latent map)."""

from __future__ import annotations

import numpy as np

from vae.projection.base import ProjectionError


def stratified_sample(
    labels: np.ndarray | None, n: int, seed: int = 0, total: int | None = None
) -> np.ndarray:
    """Sorted indices of up to `n` items, each class in proportion to its size (largest-remainder
    quotas), deterministic for a seed. With `labels=None`, `total` items form one class.
    Bad arguments raise `ProjectionError` (a ValueError)."""
    if labels is None:
        if total is None or total < 0:
            raise ProjectionError("stratified_sample needs labels, or total=N for unlabelled data")
        labels = np.zeros(total, dtype=np.int64)
    y = np.asarray(labels).reshape(-1)  # (N,)
    if n < 1:
        raise ProjectionError(f"n must be >= 1, got {n}")
    if n >= y.shape[0]:
        return np.arange(y.shape[0], dtype=np.int64)
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)  # (N,), (C,)
    quota = n * counts / y.shape[0]  # (C,)
    take = np.floor(quota).astype(np.int64)  # (C,)
    order = np.argsort(-(quota - take), kind="stable")  # largest remainders first
    take[order[: n - take.sum()]] += 1
    picked = [
        rng.choice(np.flatnonzero(inverse == c), size=int(t), replace=False)
        for c, t in enumerate(take)
        if t > 0
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)  # (n,)
