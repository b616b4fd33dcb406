"""What every projection shares: the `Projection` base class, its error, input checks, threads."""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from vae.threads import idle_cores

Progress = Callable[[float, str], None]  # (fraction in [0, 1], message)
Snapshot = Callable[[np.ndarray, float], None]  # (the map as it forms (N, 2), fraction done)
METHODS = ("pca", "tsne", "umap")


class ProjectionError(ValueError):
    """Bad input to a projection, or a method that is not available. The message says why."""


def available_methods() -> list[str]:
    """The methods this installation can run; "umap" only when umap-learn is importable."""
    methods = ["pca", "tsne"]
    if importlib.util.find_spec("umap") is not None:
        methods.append("umap")
    return methods


class Projection:
    """A fitted 2-D map. `embedding` is (N, 2) float32; `transform` places new latents on it."""

    method: str = ""

    def __init__(self, embedding: np.ndarray, params: dict[str, Any]) -> None:
        self.embedding = np.ascontiguousarray(embedding, dtype=np.float32)  # (N, 2)
        self.params = dict(params)
        self.cached = False  # True when this came from a ProjectionCache file

    def transform(self, latents: np.ndarray) -> np.ndarray:
        """Place new latents (M, D) on the map: (M, 2) float32."""
        raise NotImplementedError

    def inverse_transform(self, points: np.ndarray) -> np.ndarray:
        """Map 2-D points (M, 2) back to latents (M, D); only PCA can."""
        raise ProjectionError(f"{self.method} has no inverse map; only PCA can decode a grid")

    def arrays(self) -> dict[str, np.ndarray]:
        """What the cache stores: plain float arrays, read back by `cache._read_entry`."""
        raise NotImplementedError

    def _check_new(self, latents: np.ndarray, dim: int) -> np.ndarray:
        x = _as_matrix(latents, "new latents", min_rows=1)  # (M, D)
        if x.shape[1] != dim:
            raise ProjectionError(f"new latents have {x.shape[1]} dims, the map was fit on {dim}")
        return x


def _as_matrix(a: Any, name: str, min_rows: int = 1) -> np.ndarray:
    """`a` as a finite (N, D) float64 array with N >= min_rows, else a `ProjectionError`."""
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


# --- threads and warnings ------------------------------------------------------------------------
def free_cores() -> int:
    """Threads for a map fit: `vae.threads.idle_cores` (the one thread policy), leaving the
    cores of this app's running CPU training jobs to them."""
    return idle_cores(reserved=reserved_cores())


def reserved_cores() -> int:
    """Threads held by this app's active CPU training jobs (0 when none, or unknown)."""
    try:
        from vae.jobs.state import active_jobs
        from vae.threads import job_threads

        return sum(job_threads("cpu") for s in active_jobs() if s.device in ("", "cpu"))
    except Exception:  # noqa: BLE001 - a listing problem must never stop a map
        return 0


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
