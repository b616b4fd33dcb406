"""2-D maps of latent codes: PCA, t-SNE (openTSNE) and UMAP behind one `fit`, plus a disk cache.

    proj = fit(latents, "tsne", seed=0, progress=lambda f, msg: ...)  # latents (N, D)
    proj.embedding          # (N, 2) float32
    proj.transform(new)     # (M, 2): places new points without refitting
    proj.inverse_transform  # PCA only: (M, 2) -> (M, D), for a decoded grid over the PC plane

The cache stores each map as one safetensors file named by the sha256 of its key JSON. Nothing is
ever unpickled: t-SNE and UMAP keep the embedding plus the training latents, and rebuild what
`transform` needs from them (t-SNE at once, in milliseconds; UMAP lazily, on the first `transform`,
because that redoes its nearest-neighbour descent).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

Progress = Callable[[float, str], None]  # (fraction in [0, 1], message)
METHODS = ("pca", "tsne", "umap")
CACHE_VERSION = 1
MAX_TSNE_EXACT_NN = 50_000  # exact neighbours beat Annoy on 2 cores up to about here (D ~ 32)

TSNE_DEFAULTS: dict[str, Any] = {
    "perplexity": 30.0,
    "early_exaggeration_iter": 100,  # openTSNE's 250 + 500, cut to 100 + 250: the same 10-NN
    "n_iter": 250,  # preservation on MNIST latents in half the time (benchmarks/README.md)
    "neighbors": "auto",  # "exact" up to MAX_TSNE_EXACT_NN points, else "annoy"
    "n_jobs": "auto",  # threads: the idle cores right now (same result for any count)
    "transform_perplexity": 5.0,  # openTSNE's default for placing new points
    "transform_n_iter": 100,  # of its 250: a new point starts at the median of its neighbours
}
RUNTIME_PARAMS = ("n_jobs",)  # change speed, not the map: left out of cache keys
UMAP_DEFAULTS: dict[str, Any] = {"n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean"}


class ProjectionError(ValueError):
    """Bad input to a projection, or a method that is not available. The message says why."""


def available_methods() -> list[str]:
    """The methods this installation can run; "umap" only when umap-learn is importable."""
    methods = ["pca", "tsne"]
    if importlib.util.find_spec("umap") is not None:
        methods.append("umap")
    return methods


# --- the projections -----------------------------------------------------------------------------
class Projection:
    """A fitted 2-D map. `embedding` is (N, 2) float32; `transform` places new latents on it."""

    method: str = ""

    def __init__(self, embedding: np.ndarray, params: dict[str, Any]) -> None:
        self.embedding = np.ascontiguousarray(embedding, dtype=np.float32)  # (N, 2)
        self.params = dict(params)
        self.cached = False  # True when this came from a ProjectionCache file

    def transform(self, latents: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inverse_transform(self, points: np.ndarray) -> np.ndarray:
        raise ProjectionError(f"{self.method} has no inverse map; only PCA can decode a grid")

    def arrays(self) -> dict[str, np.ndarray]:
        """What the cache stores: plain float arrays, read back by `_read_entry`."""
        raise NotImplementedError

    def _check_new(self, latents: np.ndarray, dim: int) -> np.ndarray:
        x = _as_matrix(latents, "new latents", min_rows=1)
        if x.shape[1] != dim:
            raise ProjectionError(f"new latents have {x.shape[1]} dims, the map was fit on {dim}")
        return x


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
    def fit(cls, x: np.ndarray, params: dict[str, Any]) -> PCAProjection:
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
        var = np.clip(var[::-1], 0.0, None)
        ratio = var[:2] / max(var.sum(), 1e-300)
        return cls(mean, vt, ratio, emb, params)

    def transform(self, latents: np.ndarray) -> np.ndarray:
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


class TSNEProjection(Projection):
    """t-SNE (van der Maaten & Hinton 2008) with FFT-accelerated gradients (Linderman et al. 2019)
    as implemented by openTSNE (Poličar et al. 2024). New points are placed by openTSNE's
    `TSNEEmbedding.transform`: each is optimised against the fixed map, attracted to its
    nearest training latents."""

    method = "tsne"

    def __init__(self, embedding: np.ndarray, latents: np.ndarray, params: dict[str, Any]) -> None:
        super().__init__(embedding, params)
        self.latents = np.ascontiguousarray(latents, dtype=np.float32)  # (N, D)
        self._lock = threading.Lock()
        self._reference = _reference_embedding(self.embedding, self.latents, self.params)

    @classmethod
    def fit(
        cls, x: np.ndarray, seed: int, progress: Progress | None, params: dict[str, Any]
    ) -> TSNEProjection:
        from openTSNE import TSNE, affinity

        n = x.shape[0]
        p = dict(params)
        p["perplexity"] = float(min(p["perplexity"], (n - 1) / 3))  # openTSNE needs k = 3 * perp
        p["transform_perplexity"] = float(min(p["transform_perplexity"], (n - 1) / 3))
        if p["n_jobs"] == "auto":
            p["n_jobs"] = free_cores()
        if p["neighbors"] == "auto":
            p["neighbors"] = "exact" if n <= MAX_TSNE_EXACT_NN else "annoy"
        total = p["early_exaggeration_iter"] + p["n_iter"]
        report = progress or (lambda f, m: None)

        report(0.0, f"t-SNE: finding {int(3 * p['perplexity'])} nearest neighbours of {n} points")
        knn_kwargs = {"algorithm": "brute"} if p["neighbors"] == "exact" else None
        with _quiet():
            aff = affinity.PerplexityBasedNN(
                x.astype(np.float64),
                perplexity=p["perplexity"],
                method=p["neighbors"],
                n_jobs=p["n_jobs"],
                random_state=seed,
                knn_kwargs=knn_kwargs,
            )
        affinity_share = 0.1
        report(affinity_share, "t-SNE: affinities ready, optimising")
        tracker = _TSNEProgress(report, affinity_share, p["early_exaggeration_iter"], total)
        tsne = TSNE(
            perplexity=p["perplexity"],
            early_exaggeration_iter=p["early_exaggeration_iter"],
            n_iter=p["n_iter"],
            initialization="pca",
            negative_gradient_method="auto",  # openTSNE: Barnes-Hut below 10,000 points, else FFT
            n_jobs=p["n_jobs"],
            random_state=seed,
            callbacks=tracker,
            callbacks_every_iters=max(1, min(25, total // 20)),
        )
        with _quiet():
            emb = np.asarray(tsne.fit(x.astype(np.float64), affinities=aff))  # (N, 2)
        emb = emb - (emb.max(axis=0) + emb.min(axis=0)) / 2  # the centring transform() applies
        report(1.0, "t-SNE: done")
        return cls(emb, x, p)

    def transform(self, latents: np.ndarray) -> np.ndarray:
        x = self._check_new(latents, self.latents.shape[1]).astype(np.float64)
        with self._lock, _single_thread():  # transform re-centres the shared reference
            out = self._reference.transform(
                x,
                perplexity=min(self.params["transform_perplexity"], (len(self.latents) - 1) / 3),
                n_iter=self.params["transform_n_iter"],
            )
        return np.asarray(out, dtype=np.float32)  # (M, 2)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"embedding": self.embedding, "latents": self.latents}


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
        init = self.embedding.astype(np.float32)
        model = _umap_model({**self.params, "n_epochs": 0, "init": init}, self.seed)
        with _quiet():
            model.fit(self.latents)
        model.set_params(n_epochs=self.params.get("n_epochs"), init="spectral")
        model.embedding_ = self.embedding.copy()
        return model

    def transform(self, latents: np.ndarray) -> np.ndarray:
        x = self._check_new(latents, self.latents.shape[1])
        with self._lock:
            if self._model is None:
                self._model = self._rebuild()
            out = self._model.transform(x)
        return np.asarray(out, dtype=np.float32)  # (M, 2)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"embedding": self.embedding, "latents": self.latents}


# --- fitting -------------------------------------------------------------------------------------
def fit(
    latents: np.ndarray,
    method: str = "pca",
    seed: int = 0,
    progress: Progress | None = None,
    **params: Any,
) -> Projection:
    """Fit a 2-D map of `latents` (N, D). `params` override the method's defaults
    (`TSNE_DEFAULTS`, `UMAP_DEFAULTS`; PCA takes none)."""
    x = _as_matrix(latents, "latents", min_rows=3)
    p = resolve_params(method, params)
    if method == "pca":
        proj: Projection = PCAProjection.fit(x, p)
        if progress:
            progress(1.0, "PCA: done")
        return proj
    if method == "tsne":
        return TSNEProjection.fit(x, int(seed), progress, p)
    return UMAPProjection.fit(x, int(seed), progress, p)


def resolve_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with `params`; unknown names or methods raise `ProjectionError`."""
    if method not in METHODS:
        raise ProjectionError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "umap" and "umap" not in available_methods():
        raise ProjectionError("UMAP needs the umap-learn package: pip install umap-learn")
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


def free_cores() -> int:
    """Threads worth using now: the idle cores by the 1-minute load average, at least 1.

    openTSNE's threads spin-wait: on a 2-core machine busy with other jobs, t-SNE of 10,000
    points took 110 s with 2 threads and 43 s with 1. The map is the same for any count."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return min(cores, 2)
    return max(1, min(cores, round(cores - load)))


def _umap_model(params: dict[str, Any], seed: int) -> Any:
    import umap

    return umap.UMAP(n_components=2, random_state=seed, n_jobs=1, **params)  # seeded: 1 thread


def _reference_embedding(embedding: np.ndarray, latents: np.ndarray, params: dict[str, Any]) -> Any:
    """An openTSNE `TSNEEmbedding` of the stored map whose affinity object can place new points.

    Built from plain arrays in milliseconds, so a fresh fit and a cache reload share one code
    path and give identical `transform` results."""
    from openTSNE import TSNEEmbedding

    return TSNEEmbedding(
        embedding.astype(np.float64),
        _NewPointAffinities(latents, params["perplexity"]),
        negative_gradient_method="fft",  # the interpolation grid is built once, then reused
        n_jobs=1,  # a handful of new points gains nothing from threads
    )


class _NewPointAffinities:
    """Perplexity-calibrated affinities from new points to the training latents (exact
    neighbours): all that `TSNEEmbedding.transform` asks of an openTSNE `Affinities` object.
    `P` is an empty (N, N) placeholder, since the training affinities only serve to optimise the
    map itself, which is done. (Duck-typed so that importing this module stays light.)"""

    def __init__(self, latents: np.ndarray, perplexity: float) -> None:
        import scipy.sparse as sp
        from sklearn.neighbors import NearestNeighbors

        self.n_samples = latents.shape[0]
        self.perplexity = perplexity
        self.P = sp.csr_matrix((self.n_samples, self.n_samples))
        self.index = NearestNeighbors(algorithm="brute").fit(latents.astype(np.float64))

    def to_new(
        self, data: np.ndarray, perplexity: float | None = None, return_distances: bool = False
    ) -> Any:
        from openTSNE.affinity import joint_probabilities_nn

        perplexity = self.perplexity if perplexity is None else perplexity
        k = min(self.n_samples, max(1, int(3 * perplexity)))
        distances, neighbors = self.index.kneighbors(data, n_neighbors=k)  # (M, k) each
        P = joint_probabilities_nn(
            neighbors,
            distances,
            [perplexity],
            symmetrize=False,
            normalization="point-wise",
            n_reference_samples=self.n_samples,
        )
        return (P, neighbors, distances) if return_distances else P


class _TSNEProgress:
    """openTSNE callback: maps (phase, iteration) to one overall fraction."""

    def __init__(self, report: Progress, start: float, first_phase: int, total: int) -> None:
        self.report, self.start, self.first_phase, self.total = report, start, first_phase, total
        self.phase = -1

    def optimization_about_to_start(self) -> None:
        self.phase += 1

    def __call__(self, iteration: int, error: float, embedding: np.ndarray) -> bool:
        done = iteration + (self.first_phase if self.phase >= 1 else 0)
        frac = self.start + (1 - self.start) * min(done / max(self.total, 1), 1.0)
        stage = "early exaggeration" if self.phase < 1 else "refining"
        self.report(
            min(frac, 0.99), f"t-SNE: {stage}, iteration {done}/{self.total}, KL {error:.3f}"
        )
        return False  # never stop early


_BLAS_LOCK = threading.Lock()
_BLAS_CONTROLLER: Any = None


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run small numeric work on one BLAS/OpenMP thread. It is as fast alone, and many times
    faster when other work keeps the cores busy, as idle threads spin-wait (on a loaded 2-core
    machine a 10,000 x 32 SVD took 1 s with 2 threads, 15 ms with one; sklearn's k-NN query for
    one point 90 ms). threadpoolctl changes process-wide state, so callers take turns."""
    global _BLAS_CONTROLLER
    from threadpoolctl import ThreadpoolController

    with _BLAS_LOCK:
        if _BLAS_CONTROLLER is None:
            _BLAS_CONTROLLER = ThreadpoolController()
        with _BLAS_CONTROLLER.limit(limits=1):
            yield


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence library warnings during a fit (e.g. umap's notes on small data sets)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- metrics and sampling ------------------------------------------------------------------------
def knn_preservation(high: np.ndarray, low: np.ndarray, k: int = 10) -> float:
    """Mean overlap |kNN_high(i) ∩ kNN_low(i)| / k over points, self excluded (in [0, 1])."""
    from sklearn.neighbors import NearestNeighbors

    high, low = _as_matrix(high, "high"), _as_matrix(low, "low")
    if high.shape[0] != low.shape[0]:
        raise ProjectionError(f"high has {high.shape[0]} rows, low has {low.shape[0]}")
    if not 1 <= k < high.shape[0]:
        raise ProjectionError(f"k must be in 1..{high.shape[0] - 1}, got {k}")
    a = NearestNeighbors(n_neighbors=k).fit(high).kneighbors(return_distance=False)  # (N, k)
    b = NearestNeighbors(n_neighbors=k).fit(low).kneighbors(return_distance=False)  # (N, k)
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)  # (N, 2k): shared ids appear twice
    shared = (both[:, 1:] == both[:, :-1]).sum(axis=1)  # (N,)
    return float(shared.mean() / k)


def stratified_sample(
    labels: np.ndarray | None, n: int, seed: int = 0, total: int | None = None
) -> np.ndarray:
    """Sorted indices of up to `n` items, each class in proportion to its size (largest-remainder
    quotas), deterministic for a seed. With `labels=None`, `total` items form one class."""
    if labels is None:
        if total is None or total < 0:
            raise ProjectionError("stratified_sample needs labels, or total=N for unlabelled data")
        labels = np.zeros(total, dtype=np.int64)
    y = np.asarray(labels).reshape(-1)
    if n < 1:
        raise ProjectionError(f"n must be >= 1, got {n}")
    if n >= y.shape[0]:
        return np.arange(y.shape[0], dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = n * counts / y.shape[0]
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")  # largest remainders first
    take[order[: n - take.sum()]] += 1
    picked = [
        rng.choice(np.flatnonzero(inverse == c), size=int(t), replace=False)
        for c, t in enumerate(take)
        if t > 0
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _as_matrix(a: Any, name: str, min_rows: int = 1) -> np.ndarray:
    try:
        x = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ProjectionError(f"{name} must be a numeric array: {e}") from None
    if x.ndim != 2:
        raise ProjectionError(f"{name} must be a 2-D array (N, D), got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise ProjectionError(f"{name} needs at least {min_rows} rows, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ProjectionError(f"{name} holds NaN or Inf values")
    return x


# --- disk cache ----------------------------------------------------------------------------------
class ProjectionCache:
    """Fitted maps on disk, one `<sha256 of key JSON>.safetensors` per (key, method, params, seed).

    `key` should name what the latents came from, e.g. {"checkpoint": weights_hash(run),
    "dataset": "mnist", "split": "test", "subset": "stratified-10000-seed0"}. A file that cannot
    be read, or that does not match its key, is a miss: the map is recomputed and overwritten.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def full_key(
        self, key: dict[str, Any], method: str, seed: int, params: dict[str, Any]
    ) -> dict[str, Any]:
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
        **params: Any,
    ) -> Projection:
        """The cached map for this key if there is a valid one, else `fit` and store it."""
        try:
            json.dumps(key, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ProjectionError(f"cache key must be plain JSON data: {e}") from None
        full = self.full_key(key, method, seed, params)
        x = _as_matrix(latents, "latents", min_rows=3)
        hit = self.load(full, expected_shape=x.shape)
        if hit is not None:
            if progress:
                progress(1.0, f"{method}: loaded from cache")
            return hit
        proj = fit(x, method, seed=seed, progress=progress, **params)
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
        proj.cached = True
        return proj

    def save(self, full_key: dict[str, Any], proj: Projection, seed: int = 0) -> Path:
        from safetensors.numpy import save

        from vae.checkpoint import atomic_write_bytes

        meta = {
            "format": "vae-projection",
            "key": json.dumps(full_key, sort_keys=True),
            "method": proj.method,
            "params": json.dumps(proj.params, sort_keys=True),
            "seed": str(int(seed)),
        }
        arrays = {k: np.ascontiguousarray(v) for k, v in proj.arrays().items()}
        path = self.path_for(full_key)
        atomic_write_bytes(path, save(arrays, metadata=meta))
        return path


def cached_fit(
    cache_dir: str | Path,
    key: dict[str, Any],
    latents: np.ndarray,
    method: str = "pca",
    seed: int = 0,
    progress: Progress | None = None,
    **params: Any,
) -> Projection:
    """`ProjectionCache(cache_dir).get_or_fit(...)` in one call."""
    return ProjectionCache(cache_dir).get_or_fit(key, latents, method, seed, progress, **params)


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
    emb = arrays["embedding"]
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise ValueError(f"embedding has shape {emb.shape}")
    n = emb.shape[0]
    if method == "pca":
        mean, comp = arrays["mean"], arrays["components"]
        if mean.ndim != 1 or comp.shape != (2, mean.shape[0]):
            raise ValueError("PCA arrays have inconsistent shapes")
        return PCAProjection(mean, comp, arrays["explained_variance_ratio"], emb, params)
    latents = arrays["latents"]
    if latents.ndim != 2 or latents.shape[0] != n:
        raise ValueError("latents and embedding disagree in length")
    if method == "tsne":
        return TSNEProjection(emb, latents, params)
    if method == "umap":
        return UMAPProjection(emb, latents, params, seed)
    raise ValueError(f"unknown method {method!r}")
