"""2-D maps of latent codes: PCA, t-SNE (openTSNE) and UMAP behind one `fit`, plus a disk cache.

    proj = fit(latents, "tsne", seed=0, progress=lambda f, msg: ...)  # latents (N, D)
    proj.embedding          # (N, 2) float32
    proj.transform(new)     # (M, 2): places new points without refitting
    proj.inverse_transform  # PCA only: (M, 2) -> (M, D), for a decoded grid over the PC plane

The cache stores each map as one safetensors file named by the sha256 of its key JSON. Nothing is
ever unpickled: t-SNE and UMAP keep the embedding plus the training latents, and rebuild what
`transform` needs from them (t-SNE at once, in milliseconds; UMAP lazily, on the first `transform`,
because that redoes its nearest-neighbour descent).

umap-learn compiles numba code on first use (30-80 s on 2 cores, once per process):
`warm_up_umap()` does that in a low-priority background thread, and a UMAP fit that comes first
waits for it with a progress message saying so.

Modules: `base` (Projection, ProjectionError, input checks, threads), `pca`, `tsne`, `umap` (one
per method), `fitting` (`fit`, `resolve_params`), `cache` (ProjectionCache, `cached_fit`).
`knn_preservation` now lives in `vae.metrics` and `stratified_sample` in `vae.data.sampling`;
both are still importable from here.
"""

from __future__ import annotations

import importlib
from typing import Any

from vae.projection.base import (
    METHODS,
    Progress,
    Projection,
    ProjectionError,
    available_methods,
    free_cores,
)
from vae.projection.cache import CACHE_VERSION, RUNTIME_PARAMS, ProjectionCache, cached_fit
from vae.projection.fitting import fit, resolve_params
from vae.projection.pca import PCAProjection
from vae.projection.tsne import MAX_TSNE_EXACT_NN, TSNE_DEFAULTS, TSNEProjection
from vae.projection.umap import UMAP_DEFAULTS, UMAP_INSTALL, UMAPProjection, warm_up_umap

__all__ = [
    "CACHE_VERSION",
    "MAX_TSNE_EXACT_NN",
    "METHODS",
    "RUNTIME_PARAMS",
    "TSNE_DEFAULTS",
    "UMAP_DEFAULTS",
    "UMAP_INSTALL",
    "PCAProjection",
    "Progress",
    "Projection",
    "ProjectionCache",
    "ProjectionError",
    "TSNEProjection",
    "UMAPProjection",
    "available_methods",
    "cached_fit",
    "fit",
    "free_cores",
    "knn_preservation",
    "resolve_params",
    "stratified_sample",
    "warm_up_umap",
]

# Moved out, still importable from here. Imported on first use: vae.data.sampling raises
# ProjectionError, so importing it eagerly here would be an import cycle.
_MOVED = {"knn_preservation": "vae.metrics", "stratified_sample": "vae.data.sampling"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
