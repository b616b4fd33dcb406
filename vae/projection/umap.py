"""UMAP via umap-learn (optional). After a cache reload the model is rebuilt on first `transform`.

(`import umap` below is the umap-learn package: imports are absolute, never this module.)
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from vae.projection.base import Progress, Projection, _quiet

UMAP_DEFAULTS: dict[str, Any] = {"n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean"}


class UMAPProjection(Projection):
    """UMAP (McInnes et al. 2018) via umap-learn. After a cache reload the umap model is rebuilt
    on the first `transform` (its neighbour index; the stored layout is kept as is)."""

    method = "umap"

    def __init__(
        self,
        embedding: np.ndarray,
        latents: np.ndarray,
        params: dict[str, Any],
        seed: int,
        model: Any = None,
    ) -> None:
        super().__init__(embedding, params)
        self.latents = np.ascontiguousarray(latents, dtype=np.float32)  # (N, D)
        self.seed = seed
        self._model = model
        self._lock = threading.Lock()

    @classmethod
    def fit(
        cls, x: np.ndarray, seed: int, progress: Progress | None, params: dict[str, Any]
    ) -> UMAPProjection:
        """Fit on checked latents `x` (N, D), seeded (so on one thread)."""
        report = progress or (lambda f, m: None)
        report(0.0, f"UMAP: embedding {x.shape[0]} points (the first run compiles numba code)")
        model = _umap_model(params, seed)
        with _quiet():
            emb = model.fit_transform(x)  # (N, 2)
        report(1.0, "UMAP: done")
        return cls(emb, x, params, seed, model)

    def _rebuild(self) -> Any:
        """Refit only the neighbour graph (n_epochs=0, init = the stored layout), then restore the
        layout and the epoch count, so `transform` behaves as on the original model."""
        init = self.embedding.astype(np.float32)  # (N, 2)
        model = _umap_model({**self.params, "n_epochs": 0, "init": init}, self.seed)
        with _quiet():
            model.fit(self.latents)
        model.set_params(n_epochs=self.params.get("n_epochs"), init="spectral")
        model.embedding_ = self.embedding.copy()
        return model

    def transform(self, latents: np.ndarray) -> np.ndarray:
        """Place new latents (M, D) with umap-learn's `transform`: (M, 2) float32."""
        x = self._check_new(latents, self.latents.shape[1])  # (M, D)
        with self._lock:
            if self._model is None:
                self._model = self._rebuild()
            out = self._model.transform(x)
        return np.asarray(out, dtype=np.float32)  # (M, 2)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"embedding": self.embedding, "latents": self.latents}


def _umap_model(params: dict[str, Any], seed: int) -> Any:
    import umap

    return umap.UMAP(n_components=2, random_state=seed, n_jobs=1, **params)  # seeded: 1 thread
