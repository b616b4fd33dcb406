"""Fitted maps on disk: one safetensors file per map, named by the sha256 of its key JSON.

Nothing is ever unpickled: t-SNE and UMAP keep the embedding plus the training latents, and
rebuild what `transform` needs from them. The file format and key hashing are what make users'
cached maps reusable across versions: change them only together with `CACHE_VERSION`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from vae.projection.base import Progress, Projection, ProjectionError, Snapshot, _as_matrix
from vae.projection.fitting import fit, resolve_params
from vae.projection.pca import PCAProjection
from vae.projection.tsne import TSNEProjection
from vae.projection.umap import UMAPProjection

CACHE_VERSION = 1
RUNTIME_PARAMS = ("n_jobs",)  # change speed, not the map: left out of cache keys


class ProjectionCache:
    """Fitted maps on disk, one `<sha256 of key JSON>.safetensors` per (key, method, params, seed).

    `key` should name what the latents came from, e.g. {"checkpoint": weights_hash(run),
    "dataset": "mnist", "split": "test", "subset": "stratified-10000-seed0"}. A file that cannot
    be read, or that does not match its key, is a miss: the map is recomputed and overwritten.
    """

    def __init__(self, root: str | Path, shipped: str | Path | None = None) -> None:
        self.root = Path(root)
        # read-only maps shipped with a model (`python -m vae.mapping --ship`), tried after root
        self.shipped = Path(shipped) if shipped else None

    def full_key(
        self, key: dict[str, Any], method: str, seed: int, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Everything that determines the map: `key`, method, seed, params, library version."""
        return {
            "cache_version": CACHE_VERSION,
            "key": key,
            "method": method,
            "seed": int(seed),
            "params": {
                k: v for k, v in resolve_params(method, params).items() if k not in RUNTIME_PARAMS
            },
            "library": _library_version(method),
        }

    def path_for(self, full_key: dict[str, Any]) -> Path:
        return self.root / f"{_key_hash(full_key)}.safetensors"

    def get_or_fit(
        self,
        key: dict[str, Any],
        latents: np.ndarray,
        method: str = "pca",
        seed: int = 0,
        progress: Progress | None = None,
        *,
        snapshot: Snapshot | None = None,
        **params: Any,
    ) -> Projection:
        """The cached map for this key if there is a valid one, else `fit` and store it
        (`snapshot` watches a t-SNE map form)."""
        try:
            json.dumps(key, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ProjectionError(f"cache key must be plain JSON data: {e}") from None
        full = self.full_key(key, method, seed, params)
        x = _as_matrix(latents, "latents", min_rows=3)  # (N, D)
        hit = self.load(full, expected_shape=x.shape)
        if hit is None and self.shipped is not None:
            hit = self.load_shipped(full, x)
        if hit is not None:
            if progress:
                progress(1.0, f"{method}: loaded from cache")
            return hit
        proj = fit(x, method, seed=seed, progress=progress, snapshot=snapshot, **params)
        self.save(full, proj, seed)
        return proj

    def load(
        self, full_key: dict[str, Any], expected_shape: tuple[int, ...] | None = None
    ) -> Projection | None:
        """The stored map, or None if absent, unreadable, or not the one asked for."""
        path = self.path_for(full_key)
        if not path.is_file():
            return None
        try:
            proj = _read_entry(path, full_key)
        except Exception as e:  # noqa: BLE001 - a corrupt cache file must never crash the app
            logging.getLogger(__name__).warning("ignoring unreadable cache file %s: %s", path, e)
            return None
        if expected_shape is not None and _fitted_shape(proj) != tuple(expected_shape):
            return None  # same key, other latents (e.g. a changed subset size): recompute
        from vae.diskcache import touch

        touch(path)  # recently used: evicted last
        proj.cached = True
        return proj

    def save(self, full_key: dict[str, Any], proj: Projection, seed: int = 0) -> Path:
        """Write `proj` atomically under its key's file name; returns the path."""
        from safetensors.numpy import save

        from vae.checkpoint import atomic_write_bytes

        meta = _metadata("vae-projection", full_key, proj, seed)
        arrays = {k: np.ascontiguousarray(v) for k, v in proj.arrays().items()}
        path = self.path_for(full_key)
        atomic_write_bytes(path, save(arrays, metadata=meta))
        from vae.diskcache import bound

        bound(self.root)  # the oldest maps go when the cache grows past its bound
        return path

    # --- maps shipped with a model: the embedding only, the latents are the caller's --------------
    def load_shipped(self, full_key: dict[str, Any], latents: np.ndarray) -> Projection | None:
        """A shipped map for this exact key, fitted on these very `latents` (N, D), or None.

        The file holds the embedding and one number per row (its latent's mean), so a map is
        used only when the latents it was made from are the ones asked about (new weights or
        another sample give other numbers: the map is then recomputed, never shown stale)."""
        if self.shipped is None:
            return None
        path = self.shipped / f"{_key_hash(full_key)}.safetensors"
        if not path.is_file():
            return None
        try:
            proj = _read_shipped(path, full_key, np.asarray(latents, np.float32))
        except Exception as e:  # noqa: BLE001 - a broken shipped file is a miss, never a crash
            logging.getLogger(__name__).warning("ignoring shipped map %s: %s", path, e)
            return None
        if proj is not None:
            proj.cached = True
        return proj

    def save_shipped(
        self, full_key: dict[str, Any], proj: Projection, latents: np.ndarray, seed: int = 0
    ) -> Path:
        """Write the compact shipped form of `proj` (embedding + per-row probe) to `shipped`."""
        from safetensors.numpy import save

        from vae.checkpoint import atomic_write_bytes

        if self.shipped is None or proj.method == "pca":
            raise ProjectionError("shipping needs a shipped folder and a t-SNE or UMAP map")
        meta = _metadata("vae-projection-shipped", full_key, proj, seed)
        arrays = {
            "embedding": np.ascontiguousarray(proj.embedding, np.float32),  # (N, 2)
            "probe": _probe(np.asarray(latents, np.float32)),  # (N,)
        }
        self.shipped.mkdir(parents=True, exist_ok=True)
        path = self.shipped / f"{_key_hash(full_key)}.safetensors"
        atomic_write_bytes(path, save(arrays, metadata=meta))
        return path


def _metadata(fmt: str, full_key: dict[str, Any], proj: Projection, seed: int) -> dict[str, str]:
    """The safetensors metadata of a map file: its format, key, method, params and seed."""
    return {
        "format": fmt,
        "key": json.dumps(full_key, sort_keys=True),
        "method": proj.method,
        "params": json.dumps(proj.params, sort_keys=True),
        "seed": str(int(seed)),
    }


PROBE_ATOL = 1e-3  # latents computed elsewhere (other BLAS, threads) differ by far less


def _probe(latents: np.ndarray) -> np.ndarray:
    """One number per row that any change of the latents (weights, rows, order) moves: (N,)."""
    return np.ascontiguousarray(latents.astype(np.float64).mean(axis=1), np.float32)


def _read_shipped(path: Path, full_key: dict[str, Any], latents: np.ndarray) -> Projection | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata() or {}
        arrays = {name: f.get_tensor(name) for name in f.keys()}
    if meta.get("format") != "vae-projection-shipped":
        raise ValueError("not a shipped map")
    if json.loads(meta["key"]) != json.loads(json.dumps(full_key, sort_keys=True)):
        return None
    emb, probe = arrays["embedding"], arrays["probe"]
    n = latents.shape[0]
    if emb.shape != (n, 2) or probe.shape != (n,) or not np.isfinite(emb).all():
        return None  # made from another number of latents
    if not np.allclose(probe, _probe(latents), atol=PROBE_ATOL, rtol=0.0):
        logging.getLogger(__name__).info("shipped map %s is stale: recomputing", path.name)
        return None
    method, params, seed = meta["method"], json.loads(meta["params"]), int(meta["seed"])
    if method == "tsne":
        return TSNEProjection(emb, latents, params)
    if method == "umap":
        return UMAPProjection(emb, latents, params, seed)
    raise ValueError(f"unknown shipped method {method!r}")


def cached_fit(
    cache_dir: str | Path,
    key: dict[str, Any],
    latents: np.ndarray,
    method: str = "pca",
    seed: int = 0,
    progress: Progress | None = None,
    *,
    shipped: str | Path | None = None,
    snapshot: Snapshot | None = None,
    **params: Any,
) -> Projection:
    """`ProjectionCache(cache_dir, shipped).get_or_fit(...)` in one call."""
    cache = ProjectionCache(cache_dir, shipped)
    return cache.get_or_fit(key, latents, method, seed, progress, snapshot=snapshot, **params)


def _key_hash(full_key: dict[str, Any]) -> str:
    text = json.dumps(full_key, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _library_version(method: str) -> str:
    """Library versions are part of the key: a different openTSNE/umap gives a different map."""
    from importlib.metadata import PackageNotFoundError, version

    name = {"pca": "numpy", "tsne": "openTSNE", "umap": "umap-learn"}[method]
    try:
        return f"{name}=={version(name)}"
    except PackageNotFoundError:
        return f"{name}==unknown"


def _fitted_shape(proj: Projection) -> tuple[int, int]:
    """(N, D) of the latents the map was fit on."""
    dim = proj.mean.shape[0] if isinstance(proj, PCAProjection) else proj.latents.shape[1]
    return (proj.embedding.shape[0], dim)


def _read_entry(path: Path, full_key: dict[str, Any]) -> Projection:
    """Parse one cache file (safetensors: no code runs on load). Raises on anything amiss."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata() or {}
        arrays = {name: f.get_tensor(name) for name in f.keys()}
    if meta.get("format") != "vae-projection":
        raise ValueError("not a projection cache file")
    if json.loads(meta["key"]) != json.loads(json.dumps(full_key, sort_keys=True)):
        raise ValueError("file holds a different key")
    method, params, seed = meta["method"], json.loads(meta["params"]), int(meta["seed"])
    for name, a in arrays.items():
        if not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
            raise ValueError(f"array {name} is not finite floats")
    emb = arrays["embedding"]  # (N, 2)
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise ValueError(f"embedding has shape {emb.shape}")
    n = emb.shape[0]
    if method == "pca":
        mean, comp = arrays["mean"], arrays["components"]  # (D,), (2, D)
        if mean.ndim != 1 or comp.shape != (2, mean.shape[0]):
            raise ValueError("PCA arrays have inconsistent shapes")
        return PCAProjection(mean, comp, arrays["explained_variance_ratio"], emb, params)
    latents = arrays["latents"]  # (N, D)
    if latents.ndim != 2 or latents.shape[0] != n:
        raise ValueError("latents and embedding disagree in length")
    if method == "tsne":
        return TSNEProjection(emb, latents, params)
    if method == "umap":
        return UMAPProjection(emb, latents, params, seed)
    raise ValueError(f"unknown method {method!r}")
