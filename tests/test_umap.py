"""UMAP: neighbours kept, new points placed by `UMAP.transform` (also after a cache reload),
epoch progress, and the one-off numba compile in a low-priority background thread."""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
import time

import numpy as np
import pytest

from vae import projection as P
from vae.projection import umap as U

needs_umap = pytest.mark.skipif(
    importlib.util.find_spec("umap") is None,
    reason="umap-learn not installed (pip install umap-learn)",
)
K = 10


def sheet(n: int = 400, dim: int = 8, seed: int = 0) -> np.ndarray:
    """A curved 2-D sheet (a quarter of a Swiss roll) rotated into `dim` dimensions: (n, dim)."""
    rng = np.random.default_rng(seed)
    t, h = rng.uniform(1.0, 2.5, n), rng.uniform(0.0, 3.0, n)
    flat = np.stack([t * np.cos(t), t * np.sin(t), h], axis=1)  # (n, 3)
    rot = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:3]  # (3, dim), orthonormal rows
    return (flat @ rot + 0.01 * rng.normal(size=(n, dim))).astype(np.float32)


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int = K) -> float:
    """Mean share of each point's k nearest neighbours in `a` that are also its k nearest in `b`
    (sklearn's exact search, not vae.metrics)."""
    from sklearn.neighbors import NearestNeighbors

    ia = NearestNeighbors(n_neighbors=k + 1).fit(a).kneighbors(a, return_distance=False)[:, 1:]
    ib = NearestNeighbors(n_neighbors=k + 1).fit(b).kneighbors(b, return_distance=False)[:, 1:]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ia, ib, strict=True)]))


@pytest.fixture(scope="module")
def fitted() -> tuple[np.ndarray, P.UMAPProjection, list[tuple[float, str]]]:
    if importlib.util.find_spec("umap") is None:
        pytest.skip("umap-learn not installed (pip install umap-learn)")
    x = sheet()
    calls: list[tuple[float, str]] = []
    proj = P.fit(x, "umap", seed=0, progress=lambda f, m: calls.append((f, m)))
    return x, proj, calls


@needs_umap
def test_umap_keeps_neighbours_far_better_than_a_random_map(fitted) -> None:
    x, proj, _ = fitted
    assert proj.embedding.shape == (len(x), 2) and proj.embedding.dtype == np.float32
    ours = knn_overlap(x, proj.embedding)
    chance = knn_overlap(x, np.random.default_rng(1).normal(size=(len(x), 2)))
    assert chance < 0.1  # about K / N
    assert ours > 0.5, ours  # a 2-D sheet unrolls into the plane


@needs_umap
def test_umap_reports_epochs_and_finishes(fitted) -> None:
    _, _, calls = fitted
    fracs = [f for f, _ in calls]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0 and all(0 <= f <= 1 for f in fracs)
    epochs = [m for _, m in calls if "epoch" in m]
    assert epochs and re.fullmatch(r"UMAP: optimising the layout, epoch (\d+) of \1", epochs[-1])


@needs_umap
def test_transform_puts_training_points_near_their_own_place(fitted) -> None:
    x, proj, _ = fitted
    placed = proj.transform(x[:40])  # (40, 2)
    assert placed.shape == (40, 2) and placed.dtype == np.float32
    span = np.linalg.norm(proj.embedding.max(0) - proj.embedding.min(0))
    dist = np.linalg.norm(placed - proj.embedding[:40], axis=1)
    assert np.median(dist) < 0.05 * span, (np.median(dist), span)


@needs_umap
def test_cache_reload_rebuilds_the_model_and_places_points_the_same(tmp_path, monkeypatch) -> None:
    x = sheet(n=300, seed=2)
    fits: list[str] = []
    real_fit = P.cache.fit
    monkeypatch.setattr(P.cache, "fit", lambda *a, **k: fits.append(a[1]) or real_fit(*a, **k))
    key = {"checkpoint": "abc"}
    fresh = P.cached_fit(tmp_path, key, x, "umap", n_neighbors=10)
    new = x[[0, 100, 200]] + 0.02  # (3, 8)
    want = fresh.transform(new)
    reloaded = P.cached_fit(tmp_path, key, x, "umap", n_neighbors=10)
    assert fits == ["umap"] and reloaded.cached and reloaded._model is None
    np.testing.assert_array_equal(reloaded.embedding, fresh.embedding)
    got = reloaded.transform(new)  # rebuilds the neighbour index from the stored latents
    span = np.linalg.norm(fresh.embedding.max(0) - fresh.embedding.min(0))
    assert np.abs(got - want).max() < 0.01 * span
    # and each lands next to the training point it was nudged from
    nearest = np.linalg.norm(got[:, None] - reloaded.embedding[None], axis=2).argsort(1)[:, :K]
    assert all(i in row for i, row in zip([0, 100, 200], nearest, strict=True))


# --- the one-off compile -------------------------------------------------------------------------
def _nice(native_id: int) -> int:
    """A thread's niceness from /proc (field 19 of its stat line)."""
    stat = open(f"/proc/self/task/{native_id}/stat").read()
    return int(stat.rsplit(")", 1)[1].split()[16])


@pytest.fixture
def fake_compile(monkeypatch):
    """A fresh warm-up state whose compile just waits until `release` is set."""
    release, ran = threading.Event(), []
    monkeypatch.setattr(U, "_WARM_UP", U._WarmUp())
    monkeypatch.setattr(U, "_compile", lambda: ran.append(1) or release.wait(10))
    monkeypatch.setattr(U, "available_methods", lambda: ["pca", "tsne", "umap"])
    monkeypatch.delenv("VAE_UMAP_WARMUP", raising=False)
    yield release, ran
    release.set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread niceness is Linux-only")
def test_warm_up_runs_once_in_a_low_priority_thread(fake_compile, monkeypatch) -> None:
    release, ran = fake_compile
    monkeypatch.setattr(U, "WARM_UP_DELAY", 0.0)
    assert U.warm_up_umap() and U.warm_up_umap()
    warm = U._WARM_UP
    for _ in range(100):
        if ran:
            break
        time.sleep(0.02)
    assert ran == [1] and warm.thread.name == "umap-warm-up" and warm.thread.daemon
    assert _nice(warm.native_id) == U.WARM_UP_NICE > 0
    assert not U.is_compiled()
    release.set()
    warm.thread.join(5)
    assert U.is_compiled() and ran == [1]


def test_a_fit_waits_for_the_compile_and_says_so(fake_compile, monkeypatch) -> None:
    release, ran = fake_compile
    monkeypatch.setattr(U, "WARM_UP_DELAY", 60.0)  # a fit must not wait for the delay
    assert U.warm_up_umap()
    calls: list[tuple[float, str]] = []

    def report(frac: float, message: str) -> None:
        calls.append((frac, message))
        if len(calls) == 3:
            release.set()

    t = time.monotonic()
    share = U.wait_for_compile(report)
    assert time.monotonic() - t < 10 and ran == [1] and U.is_compiled()
    assert share == pytest.approx(0.5) and len(calls) >= 3
    assert all("compiling" in m and 0 <= f < share for f, m in calls)


def test_no_warm_up_without_umap_or_when_switched_off(fake_compile, monkeypatch) -> None:
    _, ran = fake_compile
    monkeypatch.setenv("VAE_UMAP_WARMUP", "0")
    assert not U.warm_up_umap()
    monkeypatch.delenv("VAE_UMAP_WARMUP")
    monkeypatch.setattr(U, "available_methods", lambda: ["pca", "tsne"])
    assert not U.warm_up_umap()
    assert U._WARM_UP.thread is None and not ran


def test_without_umap_learn_the_method_is_refused_with_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` fails, find_spec finds nothing
    assert P.available_methods() == ["pca", "tsne"]
    with pytest.raises(P.ProjectionError, match="pip install umap-learn"):
        P.fit(np.zeros((10, 3)), "umap")
