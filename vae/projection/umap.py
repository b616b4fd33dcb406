"""UMAP via umap-learn, with its numba compilation done once per process, off the critical path.

umap-learn compiles its numba code the first time it is used in a process: 30-80 s on 2 cores
(by load), longer than a 10,000-point fit, and about 150 s on the first start after installing,
when numba's disk cache is still empty (benchmarks/README.md, umap_bench.py; that cache saves the
import part only). `warm_up_umap()`, called when Explore opens, compiles it in a background
thread on one core at low priority with a tiny fit on random data. A fit that comes first waits
for that compile, saying so through `progress`, then reports umap-learn's epochs as they run.

After a cache reload the model is rebuilt on first `transform`. (`import umap` below is the
umap-learn package: imports are absolute, never this module.)
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from typing import Any

import numpy as np

from vae.projection.base import Progress, Projection, ProjectionError, _quiet, available_methods

UMAP_DEFAULTS: dict[str, Any] = {"n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean"}
COMPILE_SECONDS = 40  # the compile on 2 busy cores, for the progress text (umap_bench.py)
WARM_UP_NICE = 10  # the background compile yields the CPU to training jobs and the app
UMAP_INSTALL = "pip install umap-learn"  # shown where UMAP is offered but not installed
WARM_UP_DELAY = 3.0  # seconds: the page that starts the warm-up finishes drawing first
_COMPILE_SHARE = 0.5  # of the progress bar, when a fit has to wait for the compile
_NEIGHBOUR_SHARE = 0.25  # of the rest: neighbours, fuzzy graph and spectral init, before epochs


class UMAPProjection(Projection):
    """UMAP (McInnes et al. 2018) via umap-learn. New points are placed by umap-learn's
    `UMAP.transform`: each starts at the weighted mean of its nearest training points' positions
    and is optimised against the fixed map. After a cache reload the umap model is rebuilt on the
    first `transform` (its neighbour index; the stored layout is kept as is)."""

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
        start = wait_for_compile(report)
        n, k = x.shape[0], params["n_neighbors"]
        report(start, f"UMAP: finding the {k} nearest neighbours of {n} points")
        epochs = _EpochProgress(report, start + (1 - start) * _NEIGHBOUR_SHARE)
        model = _umap_model(params, seed, tqdm_kwds=epochs.tqdm_kwds())
        try:
            with _quiet():
                emb = model.fit_transform(x)  # (N, 2)
        finally:
            epochs.report = None  # the model's later `transform` calls report nothing
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
            with _quiet():
                out = self._model.transform(x)
        return np.asarray(out, dtype=np.float32)  # (M, 2)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"embedding": self.embedding, "latents": self.latents}


def _umap_model(params: dict[str, Any], seed: int, tqdm_kwds: dict | None = None) -> Any:
    try:
        import umap
    except ImportError as e:  # installed but broken, e.g. a numba that does not match numpy
        raise ProjectionError(f"umap-learn failed to import ({e}); try: {UMAP_INSTALL}") from None
    return umap.UMAP(
        n_components=2,
        random_state=seed,
        n_jobs=1,  # seeded: one thread
        # NN-descent for every size, not exact distances below 4,096 points: one code path to
        # compile (the warm-up covers every map size) and no N x N distance matrix
        force_approximation_algorithm=True,
        tqdm_kwds=tqdm_kwds or {"disable": True},
        **params,
    )


class _EpochProgress:
    """A file for umap-learn's tqdm bar over epochs (umap-learn has no epoch callback): each
    "n/total" that tqdm writes becomes one `report` call, in the fitting thread."""

    def __init__(self, report: Progress, start: float) -> None:
        self.report: Progress | None = report
        self.start = start

    def tqdm_kwds(self) -> dict[str, Any]:
        return {"disable": False, "file": self, "bar_format": "{n}/{total}", "mininterval": 0.25}

    def write(self, text: str) -> int:
        found = re.findall(r"(\d+)/(\d+)", text)
        if found and self.report is not None:
            done, total = (int(v) for v in found[-1])
            frac = self.start + (1 - self.start) * done / max(total, 1)
            self.report(min(frac, 0.99), f"UMAP: optimising the layout, epoch {done} of {total}")
        return len(text)

    def flush(self) -> None:
        pass


# --- the one-off numba compile --------------------------------------------------------------------
class _WarmUp:
    """The process's one compile of umap-learn's numba code, in a daemon thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.hurry = threading.Event()  # a fit is waiting: no delay, normal priority
        self.thread: threading.Thread | None = None
        self.native_id: int | None = None
        self.started = 0.0
        self.seconds: float | None = None  # how long the compile took, once done
        self.error: BaseException | None = None

    def start(self, nice: int, delay: float = 0.0) -> None:
        """Start the compile after `delay` s at this niceness; `nice=0` means a fit is waiting:
        a running compile starts at once and gets normal priority (where that is allowed)."""
        with self.lock:
            if nice == 0:
                self.hurry.set()
            if self.thread is None:
                self.started = time.monotonic()
                self.thread = threading.Thread(
                    target=self._run, args=(nice, delay), name="umap-warm-up", daemon=True
                )
                self.thread.start()
            elif not self.done.is_set():
                _renice(self.native_id, nice)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _run(self, nice: int, delay: float) -> None:
        self.native_id = threading.get_native_id()
        _renice(self.native_id, 0 if self.hurry.is_set() else nice)
        self.hurry.wait(delay)
        self.started = time.monotonic()
        try:
            _compile()
        except Exception as e:  # noqa: BLE001 - the fit that needs it reports the error itself
            self.error = e
            logging.getLogger(__name__).warning("UMAP warm-up failed: %s", e)
        finally:
            self.seconds = self.elapsed()
            self.done.set()


_WARM_UP = _WarmUp()


def _compile() -> None:
    """A tiny seeded fit and two transforms on random data: what compiles every numba function a
    map fit, a cache rebuild and `transform` use (checked by umap_bench.py)."""
    x = np.random.default_rng(0).normal(size=(300, 8))  # (300, 8) float64, as fits pass
    model = _umap_model({**UMAP_DEFAULTS, "n_epochs": 10}, seed=0)
    with _quiet():
        model.fit(x)
        model.transform(x[:1])
        model.transform(x[:3])


def _renice(native_id: int | None, nice: int) -> None:
    """Set one thread's niceness (Linux: a thread id names the thread); else do nothing."""
    if native_id is None or not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, native_id, nice)
    except OSError:  # e.g. lowering niceness needs privileges: stay as it is
        pass


def warm_up_umap() -> bool:
    """Compile umap-learn's numba code in the background, once per process, on one thread at
    low priority, a few seconds from now. False (and nothing started) when umap-learn is missing
    or `$VAE_UMAP_WARMUP` is "0"; a later fit then compiles on demand."""
    if os.environ.get("VAE_UMAP_WARMUP") == "0" or "umap" not in available_methods():
        return False
    _WARM_UP.start(WARM_UP_NICE, WARM_UP_DELAY)
    return True


def is_compiled() -> bool:
    """True once this process has compiled umap-learn's numba code."""
    return _WARM_UP.done.is_set() and _WARM_UP.error is None


def wait_for_compile(report: Progress) -> float:
    """Block until the compile is done (starting it at normal priority if need be), reporting
    progress; returns the share of the progress bar it took (0 when it was done already)."""
    if _WARM_UP.done.is_set():
        return 0.0
    _WARM_UP.start(0)
    while not _WARM_UP.done.wait(0.25):
        t = _WARM_UP.elapsed()
        frac = _COMPILE_SHARE * min(t / COMPILE_SECONDS, 0.95)
        report(
            frac,
            f"UMAP: compiling its numba code, once per server process (about {COMPILE_SECONDS} "
            f"s on 2 cores, longer just after installing; {t:.0f} s so far)",
        )
    return _COMPILE_SHARE
