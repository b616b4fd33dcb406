"""Map fits in the background: a t-SNE (or UMAP) map is fitted in a server thread, so no page
waits for it.

    proj = fits.ready(run, table, "tsne")   # the map if it is in memory, on disk or shipped
    job = fits.start(run, table, "tsne")    # else: fit it in the background (once per server)
    job.partial, job.frac, job.message      # the map as it forms, for a page to draw meanwhile

While it runs the user can switch to PCA, or to another page: the fit carries on, is saved to
the disk cache, and every session that asks for the same map gets the same job (and then the
same result). The thread runs at the priority of the server process; its thread count follows
the one policy in `vae.threads` (idle cores, leaving training jobs theirs).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vae import mapping
from vae.checkpoint import Run

_log = logging.getLogger(__name__)


@dataclass
class FitJob:
    """One background fit; read by pages while it runs (fields are replaced, never mutated)."""

    method: str
    started: float = field(default_factory=time.monotonic)
    frac: float = 0.0
    message: str = "starting"
    partial: np.ndarray | None = None  # (N, 2): the layout as it forms
    partial_at: float | None = None  # monotonic time of the first partial layout
    result: Any = None  # the Projection, when done
    error: str | None = None  # a plain message, when it failed
    thread: threading.Thread | None = None

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None


_LOCK = threading.Lock()
_JOBS: dict[tuple, FitJob] = {}  # per server process: (run path, weights stamp, n, seed, method)
_RESULTS: dict[tuple, Any] = {}  # finished maps kept in memory (the disk cache has them too)
MAX_RESULTS = 32


def _key(run: Run, n: int, seed: int, method: str) -> tuple:
    from vae.ui import models

    return (str(run.path), models.stamp(run.path), int(n), int(seed), method)


def ready(run: Run, table: Any, method: str, seed: int = 0) -> Any:
    """The map without fitting: from memory, the disk cache or the maps shipped with the model;
    None when it has to be fitted."""
    key = _key(run, len(table), seed, method)
    with _LOCK:
        if key in _RESULTS:
            return _RESULTS[key]
        job = _JOBS.get(key)
        if job is not None and job.result is not None:
            return job.result
    if job is not None and not job.done:
        return None  # being fitted: no need to look on disk again
    proj = mapping.cached_projection(run, {"mean": table.mean}, method, seed)
    if proj is not None:
        _remember(key, proj)
    return proj


def _remember(key: tuple, proj: Any) -> None:
    with _LOCK:
        _RESULTS[key] = proj
        while len(_RESULTS) > MAX_RESULTS:
            _RESULTS.pop(next(iter(_RESULTS)))


def start(run: Run, table: Any, method: str, seed: int = 0, retry: bool = False) -> FitJob:
    """The background fit of this map: started now, or the one already running or finished
    (a failed one too, so that its message shows, unless `retry`)."""
    key = _key(run, len(table), seed, method)
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and (job.error is None or not retry):
            return job
        job = FitJob(method)
        _JOBS[key] = job
    mean = np.array(table.mean, copy=True)  # the thread never touches a session's arrays

    def work() -> None:
        def progress(frac: float, message: str) -> None:
            job.frac, job.message = float(frac), message

        def snapshot(embedding: np.ndarray, frac: float) -> None:
            job.partial = embedding
            if job.partial_at is None:
                job.partial_at = time.monotonic()

        try:
            proj = mapping.projection(run, {"mean": mean}, method, seed, progress, snapshot)
        except Exception as e:  # noqa: BLE001 - shown to the user as a message, logged in full
            _log.exception("the %s fit of %s failed", method, run.path)
            job.error = str(e) or type(e).__name__
            return
        _remember(key, proj)
        job.frac, job.message, job.result = 1.0, "done", proj

    job.thread = threading.Thread(target=work, name=f"fit-{method}", daemon=True)
    job.thread.start()
    return job


_WARM = threading.Event()


def warm_up() -> None:
    """Import openTSNE (about 1-2 s on 2 cores) in a background thread, once per server, so
    that the first t-SNE map a visitor asks for, even a cached or shipped one, does not wait."""
    if _WARM.is_set():
        return
    _WARM.set()
    # sklearn imports pandas. Plotly takes pandas from sys.modules when it is there, so a page
    # building a figure while this thread is halfway through importing pandas gets a partially
    # initialised module (AttributeError: ... 'pandas' has no attribute 'Series'). Importing it
    # here first (0.5 s, once per server) closes that window.
    try:
        import pandas  # noqa: F401
    except ImportError:
        pass

    def work() -> None:
        try:
            import openTSNE  # noqa: F401
            import sklearn.neighbors  # noqa: F401
        except ImportError:  # t-SNE then says so when asked for
            pass

    threading.Thread(target=work, name="warm-tsne", daemon=True).start()


def running(run: Run, n: int, method: str, seed: int = 0) -> FitJob | None:
    """The job fitting this map right now, if any."""
    job = _JOBS.get(_key(run, n, seed, method))
    return job if job is not None and not job.done else None
