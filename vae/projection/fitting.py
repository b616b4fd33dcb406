"""`fit`: one entry point for every method, and the parameter check that cache keys use too."""

from __future__ import annotations

from typing import Any

import numpy as np

from vae.projection.base import (
    METHODS,
    Progress,
    Projection,
    ProjectionError,
    Snapshot,
    _as_matrix,
    available_methods,
)
from vae.projection.pca import PCAProjection
from vae.projection.tsne import TSNE_DEFAULTS, TSNEProjection
from vae.projection.umap import UMAP_DEFAULTS, UMAP_INSTALL, UMAPProjection


def fit(
    latents: np.ndarray,
    method: str = "pca",
    seed: int = 0,
    progress: Progress | None = None,
    *,
    snapshot: Snapshot | None = None,
    **params: Any,
) -> Projection:
    """Fit a 2-D map of `latents` (N, D). `params` override the method's defaults
    (`TSNE_DEFAULTS`, `UMAP_DEFAULTS`; PCA takes none). `snapshot` watches a t-SNE map form."""
    x = _as_matrix(latents, "latents", min_rows=3)  # (N, D) float64
    p = resolve_params(method, params)
    if method == "pca":
        proj: Projection = PCAProjection.fit(x, p)
        if progress:
            progress(1.0, "PCA: done")
        return proj
    if method == "tsne":
        return TSNEProjection.fit(x, int(seed), progress, p, snapshot=snapshot)
    return UMAPProjection.fit(x, int(seed), progress, p)


def resolve_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with `params`; unknown names or methods raise `ProjectionError`."""
    if method not in METHODS:
        raise ProjectionError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "umap" and "umap" not in available_methods():
        raise ProjectionError(f"UMAP needs the umap-learn package: {UMAP_INSTALL}")
    defaults = {"pca": {}, "tsne": TSNE_DEFAULTS, "umap": UMAP_DEFAULTS}[method]
    allowed = set(defaults) | ({"n_epochs", "spread"} if method == "umap" else set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ProjectionError(f"unknown {method} parameter(s) {unknown}; known: {known}")
    p = {**defaults, **params}
    if method == "tsne":
        for name in ("early_exaggeration_iter", "n_iter", "transform_n_iter"):
            if not isinstance(p[name], int) or p[name] < 0:
                raise ProjectionError(f"t-SNE {name} must be a non-negative integer")
        if p["n_jobs"] != "auto" and (not isinstance(p["n_jobs"], int) or p["n_jobs"] < 1):
            raise ProjectionError("t-SNE n_jobs must be 'auto' or a positive integer")
        if not p["perplexity"] > 0 or not p["transform_perplexity"] > 0:
            raise ProjectionError("t-SNE perplexities must be > 0")
        if p["neighbors"] not in ("auto", "exact", "annoy", "pynndescent"):
            raise ProjectionError("t-SNE neighbors must be auto, exact, annoy or pynndescent")
    return p
