"""PCA: the plane of the two leading principal components, with an exact inverse map."""

from __future__ import annotations

from typing import Any

import numpy as np

from vae.projection.base import Projection, ProjectionError, _as_matrix, _single_thread


class PCAProjection(Projection):
    """The plane of the two leading principal components (Pearson 1901): eigenvectors of the
    D x D scatter matrix, which for N >> D is much cheaper than an SVD of the data."""

    method = "pca"

    def __init__(
        self,
        mean: np.ndarray,
        components: np.ndarray,
        explained_variance_ratio: np.ndarray,
        embedding: np.ndarray,
        params: dict[str, Any],
    ) -> None:
        super().__init__(embedding, params)
        self.mean = np.asarray(mean, dtype=np.float64)  # (D,)
        self.components = np.asarray(components, dtype=np.float64)  # (2, D), orthonormal rows
        self.explained_variance_ratio = np.asarray(explained_variance_ratio, dtype=np.float64)

    @classmethod
    def latent_plane(cls, x: np.ndarray) -> PCAProjection:
        """A 2-D latent space shown as itself: axes z0 and z1, no rotation (x is (N, 2))."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != 2:
            raise ProjectionError(f"the latent plane needs (N, 2) latents, got {x.shape}")
        eye, half = np.eye(2), np.full(2, 0.5)
        return cls(np.zeros(2), eye, half, x.astype(np.float32), {"plane": True})

    @classmethod
    def fit(cls, x: np.ndarray, params: dict[str, Any]) -> PCAProjection:
        """Fit on checked latents `x` (N, D), D >= 2."""
        if x.shape[1] < 2:
            raise ProjectionError("PCA to 2-D needs latents with at least 2 dimensions")
        mean = x.mean(axis=0)  # (D,)
        xc = x - mean  # (N, D)
        with _single_thread():
            var, vecs = np.linalg.eigh(xc.T @ xc)  # ascending eigenvalues of the scatter matrix
            vt = vecs[:, ::-1][:, :2].T  # (2, D): the two leading principal axes
            # sign convention of sklearn's svd_flip(u_based_decision=False): largest |entry| > 0
            signs = np.sign(vt[np.arange(2), np.abs(vt).argmax(axis=1)])
            vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
            emb = xc @ vt.T  # (N, 2)
        var = np.clip(var[::-1], 0.0, None)  # (D,), descending
        ratio = var[:2] / max(var.sum(), 1e-300)  # (2,)
        return cls(mean, vt, ratio, emb, params)

    def transform(self, latents: np.ndarray) -> np.ndarray:
        """Project new latents (M, D) onto the PC plane: (M, 2) float32."""
        x = self._check_new(latents, self.mean.shape[0])
        return ((x - self.mean) @ self.components.T).astype(np.float32)  # (M, 2)

    def inverse_transform(self, points: np.ndarray) -> np.ndarray:
        """Map 2-D points back to latent space: mean + p @ components, (M, D) float32."""
        p = _as_matrix(points, "points", min_rows=1)
        if p.shape[1] != 2:
            raise ProjectionError(f"points must be (M, 2), got {p.shape}")
        return (self.mean + p @ self.components).astype(np.float32)  # (M, D)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "embedding": self.embedding,
            "mean": self.mean,
            "components": self.components,
            "explained_variance_ratio": self.explained_variance_ratio,
        }
