"""Procedural shapes with known generative factors (in the spirit of dSprites, Matthey et al. 2017).

Each image is one white shape on black: square, ellipse or heart, at one of a few scales,
rotations and x/y positions. The factor indices come with the images, so disentanglement
metrics such as MIG (Chen et al. 2018) can be computed. Rendering uses analytic signed distance
functions with a one-pixel smooth edge (anti-aliasing), vectorised with numpy: no files, no cache.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vae.data import INK_HIGH, DatasetError, ImageDataset, seeded_split, subset

SHAPES = ["square", "ellipse", "heart"]
FACTOR_NAMES = ["shape", "scale", "rotation", "x", "y"]
FACTOR_SIZES = [3, 6, 10, 10, 10]  # 18,000 distinct images
# Shape radius and centre positions, as fractions of the image width.
SCALES = np.linspace(0.12, 0.22, FACTOR_SIZES[1], dtype=np.float32)
POSITIONS = np.linspace(0.26, 0.74, FACTOR_SIZES[3], dtype=np.float32)
SYMMETRY = [math.pi / 2, math.pi, 2 * math.pi]  # rotations beyond these repeat the same image
MIN_SIZE, MAX_SIZE = 16, 64
CHUNK = 2048  # images rendered per numpy batch (bounds peak memory)


def grid_size() -> int:
    return int(np.prod(FACTOR_SIZES))


# --- signed distance functions, in the shape's own frame (radius about 1, y up) -------------------
def sdf_box(px: np.ndarray, py: np.ndarray, half: float) -> np.ndarray:
    qx, qy = np.abs(px) - half, np.abs(py) - half
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def sdf_square(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    return sdf_box(px, py, 0.75)


def sdf_ellipse(px: np.ndarray, py: np.ndarray, a: float = 1.0, b: float = 0.55) -> np.ndarray:
    """Approximate distance to an ellipse, k0 (k0 - 1) / k1: exact to first order at the edge."""
    k0 = np.hypot(px / a, py / b)
    k1 = np.maximum(np.hypot(px / a**2, py / b**2), 1e-6)
    return k0 * (k0 - 1) / k1


def sdf_heart(px: np.ndarray, py: np.ndarray, side: float = 1.05) -> np.ndarray:
    """A diamond (square turned 45 degrees) with two discs on its upper sides."""
    h = side / (2 * math.sqrt(2))  # offset of the upper side midpoints from the diamond centre
    cy = side * (h / side - 0.5) / 2  # centres the heart's bounding box on the origin
    y = py - cy
    u, v = (px + y) / math.sqrt(2), (y - px) / math.sqrt(2)  # rotate by -45 degrees
    diamond = sdf_box(u, v, side / 2)
    left = np.hypot(px + h, y - h) - side / 2
    right = np.hypot(px - h, y - h) - side / 2
    return np.minimum(diamond, np.minimum(left, right))


SDFS = [sdf_square, sdf_ellipse, sdf_heart]


def render(factors: np.ndarray, image_size: int) -> np.ndarray:
    """Render factor index rows (N, 5) into float32 images (N, S, S) in [0, 1]."""
    s = image_size
    coords = (np.arange(s, dtype=np.float32) + 0.5) / s  # pixel centres in [0, 1]
    out = np.empty((len(factors), s, s), dtype=np.float32)
    for start in range(0, len(factors), CHUNK):
        f = factors[start : start + CHUNK]
        for shape in range(len(SHAPES)):
            rows = np.nonzero(f[:, 0] == shape)[0]
            if len(rows) == 0:
                continue
            g = f[rows]
            radius = SCALES[g[:, 1]].astype(np.float32)[:, None, None]  # (B, 1, 1)
            angle = (g[:, 2] * SYMMETRY[shape] / FACTOR_SIZES[2]).astype(np.float32)
            cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
            dx = (coords[None, None, :] - POSITIONS[g[:, 3]][:, None, None]) / radius  # (B, 1, S)
            dy = (POSITIONS[g[:, 4]][:, None, None] - coords[None, :, None]) / radius  # (B, S, 1)
            px = cos * dx + sin * dy  # rotate the image frame by -angle: the shape turns by +angle
            py = cos * dy - sin * dx  # (B, S, S)
            dist = SDFS[shape](px, py) * radius * s  # distance in pixels, (B, S, S)
            out[start + rows] = np.clip(0.5 - dist, 0.0, 1.0)
    return out


def sample_factors(n: int, seed: int) -> np.ndarray:
    """n distinct factor combinations, drawn uniformly at random without replacement: (n, 5)."""
    rng = np.random.default_rng(seed)
    flat = rng.permutation(grid_size())[:n]
    return np.stack(np.unravel_index(flat, FACTOR_SIZES), axis=1).astype(np.int64)


def load_shapes(
    split: str = "train", image_size: int = 32, seed: int = 0, n: int | None = None
) -> ImageDataset:
    """The shapes dataset. By default all 18,000 factor combinations, each once, split by seed."""
    if not isinstance(image_size, int) or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise DatasetError(
            f"shapes: image_size must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, "
            f"got {image_size!r}"
        )
    n = grid_size() if n is None else n
    if not isinstance(n, int) or not 2 <= n <= grid_size():
        raise DatasetError(
            f"shapes: n must be from 2 to {grid_size():,} (the number of distinct factor "
            f"combinations), got {n!r}"
        )
    factors = sample_factors(n, seed)  # (N, 5)
    x = torch.from_numpy(render(factors, image_size)).unsqueeze(1)  # (N, 1, S, S)
    ds = ImageDataset(
        name="shapes",
        x=x,
        y=torch.from_numpy(factors[:, 0].copy()),
        label_names=list(SHAPES),
        factors=torch.from_numpy(factors),
        factor_names=list(FACTOR_NAMES),
        factor_sizes=list(FACTOR_SIZES),
        ink=INK_HIGH,
        binary_like=True,
        extra={"n": n, "seed": seed},
    )
    return subset(ds, seeded_split(n, split, seed))
