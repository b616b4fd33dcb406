"""Walks through latent space: traversals, 2-D manifolds, paths, and latent arithmetic.

Everything here builds latent codes (numpy, float32); decoding them is the caller's job, so the
same codes serve a picture, a GIF, or a path drawn on the latent map.

    codes = traversal_codes(z, dims=[3, 0], offsets=offsets(9))   # (2, 9, D)
    codes = manifold_codes(z, 3, 0, offsets(15))                   # (15, 15, D), y up
    path = path_codes(z0, z1, 10, "slerp")                         # (10, D)
    v = attribute_vector(means, labels, 7)                         # "7-ness" direction, (D,)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _vec(z: np.ndarray, name: str = "z") -> np.ndarray:
    v = np.asarray(z, dtype=np.float32).reshape(-1)
    if v.size == 0 or not np.isfinite(v).all():
        raise ValueError(f"{name} must be a finite, non-empty latent vector")
    return v


def offsets(steps: int, span: float = 3.0) -> np.ndarray:
    """`steps` evenly spaced values from -span to +span (prior standard deviations), (S,).

    With an odd `steps` the middle value is exactly 0, so the middle column is the centre itself.
    """
    if steps < 2:
        raise ValueError("a traversal needs at least 2 steps")
    if not span > 0:
        raise ValueError("span must be > 0")
    return np.linspace(-span, span, int(steps), dtype=np.float32)


def traversal_codes(center: np.ndarray, dims: Sequence[int], offs: np.ndarray) -> np.ndarray:
    """Row r moves dimension dims[r] of `center` by each offset, the others stay: (R, S, D)."""
    z = _vec(center, "center")
    offs = np.asarray(offs, dtype=np.float32).reshape(-1)  # (S,)
    dims = [int(d) for d in dims]
    if any(not 0 <= d < z.size for d in dims):
        raise ValueError(f"dimensions must be in 0..{z.size - 1}, got {dims}")
    codes = np.tile(z, (len(dims), offs.size, 1))  # (R, S, D)
    for r, d in enumerate(dims):
        codes[r, :, d] += offs
    return codes


def manifold_codes(center: np.ndarray, dim_x: int, dim_y: int, offs: np.ndarray) -> np.ndarray:
    """A grid over two dimensions around `center`, laid out like a plot: (S, S, D).

    Column j moves `dim_x` by offs[j] (left to right); row i moves `dim_y` by offs[S-1-i], so
    larger values are at the top.
    """
    z = _vec(center, "center")
    if dim_x == dim_y:
        raise ValueError("pick two different dimensions")
    for d in (dim_x, dim_y):
        if not 0 <= d < z.size:
            raise ValueError(f"dimension {d} is out of range 0..{z.size - 1}")
    offs = np.asarray(offs, dtype=np.float32).reshape(-1)  # (S,)
    s = offs.size
    codes = np.tile(z, (s, s, 1))  # (S, S, D)
    codes[:, :, dim_x] += offs[None, :]
    codes[:, :, dim_y] += offs[::-1, None]
    return codes


def direction_plane_codes(
    center: np.ndarray, directions: np.ndarray, scales: Sequence[float], offs: np.ndarray
) -> np.ndarray:
    """A grid on the plane through `center` spanned by two directions (2, D), e.g. the leading
    principal components, laid out like `manifold_codes`: (S, S, D).

    Column j adds offs[j]·scales[0] along directions[0]; row i adds offs[S-1-i]·scales[1] along
    directions[1] (larger values at the top). Every other direction stays at `center`.
    """
    z = _vec(center, "center")
    u = np.asarray(directions, dtype=np.float32)
    if u.shape != (2, z.size):
        raise ValueError(f"need two directions of size {z.size}, got shape {u.shape}")
    offs = np.asarray(offs, dtype=np.float32).reshape(-1)  # (S,)
    ax = offs * np.float32(scales[0])  # (S,) along directions[0], left to right
    ay = offs[::-1] * np.float32(scales[1])  # (S,) along directions[1], top row largest
    grid = z[None, None, :] + ax[None, :, None] * u[0] + ay[:, None, None] * u[1]  # (S, S, D)
    return grid.astype(np.float32)


def plane_points(lo: Sequence[float], hi: Sequence[float], steps: int) -> np.ndarray:
    """A steps x steps grid of 2-D points over [lo, hi], y up (row 0 is hi[1]): (S, S, 2)."""
    xs = np.linspace(lo[0], hi[0], steps, dtype=np.float32)
    ys = np.linspace(hi[1], lo[1], steps, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)  # (S, S) each
    return np.stack([gx, gy], axis=-1)


def path_codes(z0: np.ndarray, z1: np.ndarray, steps: int, mode: str = "lerp") -> np.ndarray:
    """Latent codes from z0 to z1 inclusive, (S, D): `vae.model.interpolate_path` in numpy.

    lerp walks the straight line; slerp (White 2016) follows the great circle, keeping the norm
    closer to that of typical prior samples, which lie near a sphere of radius sqrt(D).
    """
    import torch

    from vae.model import interpolate_path

    a, b = _vec(z0, "z0"), _vec(z1, "z1")
    if a.shape != b.shape:
        raise ValueError(f"endpoints have different sizes: {a.size} and {b.size}")
    return interpolate_path(torch.from_numpy(a), torch.from_numpy(b), int(steps), mode).numpy()


def attribute_vector(means: np.ndarray, labels: np.ndarray, label: int) -> np.ndarray:
    """mean_z(class) - mean_z(all): the direction that adds "class-ness" to a code, (D,).

    Adding α times this vector to z moves it towards the class (the attribute vectors of
    White 2016, Sec. 2.3).
    """
    m = np.asarray(means, dtype=np.float64)  # (N, D)
    y = np.asarray(labels).reshape(-1)
    if m.ndim != 2 or m.shape[0] != y.shape[0]:
        raise ValueError(f"need means (N, D) and labels (N,), got {m.shape} and {y.shape}")
    mask = y == label
    if not mask.any():
        raise ValueError(f"no image has label {label}")
    return (m[mask].mean(0) - m.mean(0)).astype(np.float32)


def pairwise_sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of a (M, D) and b (N, D): (M, N)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def nearest_labels(codes: np.ndarray, means: np.ndarray, labels: np.ndarray, k: int = 10):
    """Majority label of the k nearest `means` of each code, and its share: ((M,), (M,))."""
    y = np.asarray(labels).reshape(-1)
    k = max(1, min(int(k), y.size))
    idx = np.argsort(pairwise_sq_dist(codes, means), axis=1)[:, :k]  # (M, k)
    votes = y[idx]  # (M, k)
    top = np.array([np.bincount(v).argmax() for v in votes])
    share = (votes == top[:, None]).mean(1)
    return top, share


def far_from_data(data: np.ndarray, n: int, steps: int = 40) -> np.ndarray:
    """The "holes" of a 2-D latent map: `n` points inside the convex hull of the data codes
    (N, 2) that lie as far as possible from every code and from each other, (n, 2).

    Candidates are a steps x steps grid over the data's bounding box, kept when inside the
    hull; they are picked greedily (farthest-point sampling), so holes spread out.
    """
    from scipy.spatial import Delaunay, QhullError

    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"data must be (N, 2), got {x.shape}")
    grid = plane_points(x.min(0), x.max(0), steps).reshape(-1, 2).astype(np.float64)
    try:
        grid = grid[Delaunay(x).find_simplex(grid) >= 0]
    except QhullError:  # fewer than 3 distinct points, or all on a line: keep the box
        pass
    gap = pairwise_sq_dist(grid, x).min(1)  # (G,)
    picked: list[np.ndarray] = []
    for _ in range(min(n, len(grid))):
        i = int(np.argmax(gap))
        picked.append(grid[i])
        gap = np.minimum(gap, ((grid - grid[i]) ** 2).sum(1))
    return np.asarray(picked, dtype=np.float32).reshape(-1, 2)


def gap_to_data(points: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Distance from each point (M, D) to its nearest data code (N, D), in units of the typical
    spacing of the data (median nearest-neighbour distance among data codes): (M,)."""
    data = np.asarray(data, dtype=np.float64)
    sub = data[: min(len(data), 2000)]
    nn = pairwise_sq_dist(sub, sub)
    np.fill_diagonal(nn, np.inf)
    spacing = float(np.sqrt(np.median(nn.min(1))))
    gap = np.sqrt(pairwise_sq_dist(points, data).min(1))
    return gap / max(spacing, 1e-12)
