"""t-SNE via openTSNE: a fit that reports progress, and new points placed on the fixed map."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from vae.projection.base import Progress, Projection, Snapshot, _quiet, _single_thread, free_cores

MAX_TSNE_EXACT_NN = 50_000  # exact neighbours beat Annoy on 2 cores up to about here (D ~ 32)
TSNE_DEFAULTS: dict[str, Any] = {
    "perplexity": 30.0,
    "early_exaggeration_iter": 80,  # openTSNE's 250 + 500, cut to 80 + 200: 10-NN preservation
    "n_iter": 200,  # on MNIST latents 0.391 vs sklearn 0.396, in a fifth of its time (benchmarks/)
    "neighbors": "auto",  # "exact" up to MAX_TSNE_EXACT_NN points, else "annoy"
    "n_jobs": "auto",  # threads: the idle cores right now (same result for any count)
    "transform_perplexity": 5.0,  # openTSNE's default for placing new points
    "transform_n_iter": 100,  # of its 250: a new point starts at the median of its neighbours
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
        cls,
        x: np.ndarray,
        seed: int,
        progress: Progress | None,
        params: dict[str, Any],
        snapshot: Snapshot | None = None,
    ) -> TSNEProjection:
        """Fit on checked latents `x` (N, D); "auto" params are resolved into the stored ones.

        `snapshot(embedding (N, 2), fraction)` gets the map as it forms, a few times a second:
        first its PCA start, then the optimisation's current layout (same result either way)."""
        from openTSNE import TSNE, affinity
        from openTSNE.initialization import pca as pca_init

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
        if snapshot is not None:  # where the optimisation starts, shown before the slow kNN
            snapshot(_centred(pca_init(x.astype(np.float64), random_state=seed)), 0.0)
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
        tracker = _TSNEProgress(
            report, affinity_share, p["early_exaggeration_iter"], total, snapshot=snapshot
        )
        tsne = TSNE(
            perplexity=p["perplexity"],
            early_exaggeration_iter=p["early_exaggeration_iter"],
            n_iter=p["n_iter"],
            initialization="pca",
            negative_gradient_method="auto",  # openTSNE: Barnes-Hut below 10,000 points, else FFT
            n_jobs=p["n_jobs"],
            random_state=seed,
            callbacks=tracker,
            # callbacks only watch (the layout is the same for any interval): often when drawn
            callbacks_every_iters=5 if snapshot else max(1, min(25, total // 20)),
        )
        with _quiet():
            emb = np.asarray(tsne.fit(x.astype(np.float64), affinities=aff))  # (N, 2)
        emb = emb - (emb.max(axis=0) + emb.min(axis=0)) / 2  # the centring transform() applies
        report(1.0, "t-SNE: done")
        return cls(emb, x, p)

    def transform(self, latents: np.ndarray) -> np.ndarray:
        """Optimise new latents (M, D) against the fixed map: (M, 2) float32."""
        x = self._check_new(latents, self.latents.shape[1]).astype(np.float64)  # (M, D)
        with self._lock, _single_thread():  # transform re-centres the shared reference
            out = self._reference.transform(
                x,
                perplexity=min(self.params["transform_perplexity"], (len(self.latents) - 1) / 3),
                n_iter=self.params["transform_n_iter"],
            )
        return np.asarray(out, dtype=np.float32)  # (M, 2)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"embedding": self.embedding, "latents": self.latents}


def _reference_embedding(embedding: np.ndarray, latents: np.ndarray, params: dict[str, Any]) -> Any:
    """An openTSNE `TSNEEmbedding` of the stored map whose affinity object can place new points.

    Built from plain arrays in milliseconds, so a fresh fit and a cache reload share one code
    path and give identical `transform` results."""
    from openTSNE import TSNEEmbedding

    return TSNEEmbedding(
        embedding.astype(np.float64),  # (N, 2)
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
        self.P = sp.csr_matrix((self.n_samples, self.n_samples))  # (N, N), empty
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
        )  # (M, N) sparse
        return (P, neighbors, distances) if return_distances else P


SNAPSHOT_EVERY_S = 0.3  # a forming map is handed out about three times a second


def _centred(emb: np.ndarray) -> np.ndarray:
    e = np.asarray(emb, dtype=np.float32)  # (N, 2)
    return e - (e.max(axis=0) + e.min(axis=0)) / 2


class _TSNEProgress:
    """openTSNE callback: maps (phase, iteration) to one overall fraction, and hands the current
    layout to `snapshot` every SNAPSHOT_EVERY_S seconds."""

    def __init__(
        self,
        report: Progress,
        start: float,
        first_phase: int,
        total: int,
        snapshot: Snapshot | None = None,
    ) -> None:
        self.report, self.start, self.first_phase, self.total = report, start, first_phase, total
        self.phase = -1
        self.snapshot, self.last = snapshot, 0.0

    def optimization_about_to_start(self) -> None:
        self.phase += 1

    def __call__(self, iteration: int, error: float, embedding: np.ndarray) -> bool:
        done = iteration + (self.first_phase if self.phase >= 1 else 0)
        frac = self.start + (1 - self.start) * min(done / max(self.total, 1), 1.0)
        stage = "pulling clusters apart" if self.phase < 1 else "refining the layout"
        # (the error openTSNE reports is the map's own KL divergence, not the VAE's: not shown)
        self.report(min(frac, 0.99), f"t-SNE: {stage}, iteration {done} of {self.total}")
        now = time.perf_counter()
        if self.snapshot is not None and now - self.last >= SNAPSHOT_EVERY_S:
            self.last = now
            self.snapshot(_centred(embedding), min(frac, 0.99))
        return False  # never stop early
