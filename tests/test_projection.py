"""Projections: PCA exactness, t-SNE cluster structure and transform, the disk cache, and the
two helpers that moved out of vae.projection (knn_preservation, stratified_sample)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from vae import projection as P
from vae.data.sampling import stratified_sample
from vae.metrics import knn_preservation
from vae.projection import cache as projection_cache

FAST_TSNE = {"early_exaggeration_iter": 100, "n_iter": 150, "n_jobs": 1}


def clusters(n_per: int = 100, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three tight, far-apart Gaussian blobs: (3 * n_per, dim) float32 and their labels."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, dim))
    centres[0, 0], centres[1, 1], centres[2, 2] = 20.0, 20.0, 20.0
    y = np.repeat(np.arange(3), n_per)
    x = centres[y] + rng.normal(size=(3 * n_per, dim))
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return clusters()


@pytest.fixture(scope="module")
def tsne(blobs: tuple[np.ndarray, np.ndarray]) -> P.TSNEProjection:
    return P.fit(blobs[0], "tsne", seed=0, **FAST_TSNE)


# --- PCA -----------------------------------------------------------------------------------------
def test_pca_matches_sklearn_up_to_sign() -> None:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))  # correlated
    ours = P.fit(x, "pca")
    ref = PCA(n_components=2).fit(x)
    emb = ref.transform(x)
    for j in range(2):
        sign = np.sign(emb[:, j] @ ours.embedding[:, j])
        np.testing.assert_allclose(ours.embedding[:, j], sign * emb[:, j], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.explained_variance_ratio, ref.explained_variance_ratio_, 1e-6)
    assert ours.embedding.dtype == np.float32 and ours.embedding.shape == (400, 2)


def test_pca_transform_reproduces_embedding_and_inverse_projects() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 6)) * np.array([5, 3, 1, 0.5, 0.2, 0.1]) + 7.0
    proj = P.fit(x, "pca")
    np.testing.assert_allclose(proj.transform(x), proj.embedding, atol=1e-5)
    new = rng.normal(size=(20, 6)) * 4
    back = proj.inverse_transform(proj.transform(new))  # (20, 6)
    # orthogonal projection onto the PC plane: mean + V^T V (x - mean)
    v = proj.components
    expected = proj.mean + (new - proj.mean) @ v.T @ v
    np.testing.assert_allclose(back, expected, atol=1e-4)
    assert back.shape == (20, 6)
    residual = new - back
    np.testing.assert_allclose(residual @ v.T, 0.0, atol=1e-4)  # residual is orthogonal to plane


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(P.ProjectionError, match="2-D"):
        P.fit(np.zeros(10), "pca")
    with pytest.raises(P.ProjectionError, match="NaN"):
        P.fit(np.full((10, 3), np.nan), "pca")
    with pytest.raises(P.ProjectionError, match="method"):
        P.fit(np.zeros((10, 3)), "isomap")
    with pytest.raises(P.ProjectionError, match="unknown tsne parameter"):
        P.fit(np.zeros((10, 3)), "tsne", perplexty=5)
    proj = P.fit(np.random.default_rng(0).normal(size=(10, 3)), "pca")
    with pytest.raises(P.ProjectionError, match="3"):
        proj.transform(np.zeros((1, 4)))
    with pytest.raises(P.ProjectionError, match="inverse"):
        P.Projection(np.zeros((3, 2)), {}).inverse_transform(np.zeros((1, 2)))


def test_available_methods() -> None:
    methods = P.available_methods()
    assert methods[:2] == ["pca", "tsne"]
    assert ("umap" in methods) == (importlib.util.find_spec("umap") is not None)


# --- t-SNE ---------------------------------------------------------------------------------------
def test_tsne_keeps_clusters_apart(blobs, tsne) -> None:
    x, y = blobs
    emb = tsne.embedding
    assert emb.shape == (len(x), 2) and emb.dtype == np.float32
    centres = np.stack([emb[y == c].mean(0) for c in range(3)])  # (3, 2)
    spread = max(np.linalg.norm(emb[y == c] - centres[c], axis=1).max() for c in range(3))
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert min(gaps) > 2 * spread, (gaps, spread)
    assert knn_preservation(x, emb, k=10) > 0.3


def test_tsne_transform_places_new_point_in_its_cluster(blobs, tsne) -> None:
    x, y = blobs
    rng = np.random.default_rng(5)
    new = np.stack([x[y == c].mean(0) + 0.3 * rng.normal(size=x.shape[1]) for c in range(3)])
    placed = tsne.transform(new)  # (3, 2)
    assert placed.shape == (3, 2) and placed.dtype == np.float32
    centres = np.stack([tsne.embedding[y == c].mean(0) for c in range(3)])
    nearest = np.linalg.norm(placed[:, None] - centres[None], axis=2).argmin(1)
    assert nearest.tolist() == [0, 1, 2]


def test_tsne_thread_count_changes_neither_map_nor_cache_key(tmp_path) -> None:
    x, _ = clusters(n_per=40)
    one = P.fit(x, "tsne", **{**FAST_TSNE, "n_jobs": 1})
    two = P.fit(x, "tsne", **{**FAST_TSNE, "n_jobs": 2})
    np.testing.assert_array_equal(one.embedding, two.embedding)
    assert P.fit(x, "tsne", n_iter=20, early_exaggeration_iter=10).params["n_jobs"] >= 1  # auto
    cache = P.ProjectionCache(tmp_path)
    keys = [cache.full_key({"a": 1}, "tsne", 0, {"n_jobs": j}) for j in (1, 2, "auto")]
    assert keys[0] == keys[1] == keys[2]
    with pytest.raises(P.ProjectionError, match="n_jobs"):
        P.fit(x, "tsne", n_jobs=0)


def test_tsne_progress_increases_to_one() -> None:
    x, _ = clusters(n_per=40)
    calls: list[tuple[float, str]] = []
    P.fit(x, "tsne", progress=lambda f, m: calls.append((f, m)), **FAST_TSNE)
    fracs = [f for f, _ in calls]
    assert len(fracs) >= 5, calls
    assert fracs[0] == 0.0 and fracs[-1] == 1.0
    assert all(b >= a for a, b in zip(fracs, fracs[1:], strict=False)), fracs
    assert any("neighbour" in m for _, m in calls)  # the affinity phase is reported too


# --- cache ---------------------------------------------------------------------------------------
def count_fits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = projection_cache.fit

    def spy(latents, method="pca", *args, **kwargs):
        calls.append(method)
        return real(latents, method, *args, **kwargs)

    monkeypatch.setattr(projection_cache, "fit", spy)  # the `fit` that ProjectionCache calls
    return calls


def test_cache_hit_is_identical_and_does_not_refit(tmp_path, blobs, monkeypatch) -> None:
    x, _ = blobs
    calls = count_fits(monkeypatch)
    key = {"checkpoint": "abc", "dataset": "blobs", "subset": "all"}
    first = P.cached_fit(tmp_path, key, x, "tsne", **FAST_TSNE)
    assert calls == ["tsne"] and not first.cached
    second = P.cached_fit(tmp_path, key, x, "tsne", **FAST_TSNE)
    assert calls == ["tsne"] and second.cached
    np.testing.assert_array_equal(first.embedding, second.embedding)
    new = x[:2] + 0.1
    np.testing.assert_allclose(first.transform(new), second.transform(new), atol=1e-5)

    pca1 = P.cached_fit(tmp_path, key, x, "pca")
    pca2 = P.cached_fit(tmp_path, key, x, "pca")
    assert calls == ["tsne", "pca"] and pca2.cached
    np.testing.assert_array_equal(pca1.embedding, pca2.embedding)
    np.testing.assert_allclose(
        pca2.inverse_transform([[1.0, -1.0]]), pca1.inverse_transform([[1.0, -1.0]])
    )
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temp files


def test_different_keys_are_different_entries(tmp_path, blobs, monkeypatch) -> None:
    x, _ = blobs
    calls = count_fits(monkeypatch)
    cache = P.ProjectionCache(tmp_path)
    cache.get_or_fit({"checkpoint": "a"}, x, "pca")
    cache.get_or_fit({"checkpoint": "b"}, x, "pca")
    cache.get_or_fit({"checkpoint": "a"}, x, "pca", seed=1)
    cache.get_or_fit({"checkpoint": "a"}, x, "tsne", perplexity=10.0, **FAST_TSNE)
    cache.get_or_fit({"checkpoint": "a"}, x, "tsne", perplexity=20.0, **FAST_TSNE)
    assert len(calls) == 5
    assert len(list(tmp_path.glob("*.safetensors"))) == 5
    cache.get_or_fit({"checkpoint": "b"}, x, "pca")
    assert len(calls) == 5
    cache.get_or_fit({"checkpoint": "b"}, x[:100], "pca")  # same key, other latents: refit
    assert len(calls) == 6


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty", "wrong-key"])
def test_corrupt_cache_file_is_a_miss(tmp_path, blobs, monkeypatch, damage) -> None:
    x, _ = blobs
    calls = count_fits(monkeypatch)
    cache = P.ProjectionCache(tmp_path)
    key = {"checkpoint": "abc"}
    good = cache.get_or_fit(key, x, "pca")
    path = cache.path_for(cache.full_key(key, "pca", 0, {}))
    blob = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x80\x04not a safetensors file")
    elif damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a valid file for another key, renamed onto this key's name
        other = cache.get_or_fit({"checkpoint": "zzz"}, x[::-1].copy(), "pca")
        path.write_bytes(
            cache.path_for(cache.full_key({"checkpoint": "zzz"}, "pca", 0, {})).read_bytes()
        )
        assert not np.array_equal(other.embedding, good.embedding)
    n = len(calls)
    again = cache.get_or_fit(key, x, "pca")
    assert len(calls) == n + 1 and not again.cached
    np.testing.assert_allclose(again.embedding, good.embedding, atol=1e-6)
    assert cache.get_or_fit(key, x, "pca").cached  # overwritten with a good file


def test_cache_key_must_be_json(tmp_path, blobs) -> None:
    with pytest.raises(P.ProjectionError, match="JSON"):
        P.cached_fit(tmp_path, {"bad": object()}, blobs[0], "pca")


def test_cache_key_hash_is_stable() -> None:
    """File names of users' cached maps: this hash must never change (or bump CACHE_VERSION)."""
    full = {
        "cache_version": 1,
        "key": {"run": "mnist-conv", "n": 10000, "seed": 0, "table": 1},
        "method": "tsne",
        "seed": 0,
        "params": {  # the t-SNE defaults before 80 + 200 iterations: a fixed example
            "perplexity": 30.0,
            "early_exaggeration_iter": 100,
            "n_iter": 250,
            "neighbors": "auto",
            "transform_perplexity": 5.0,
            "transform_n_iter": 100,
        },
        "library": "openTSNE==1.0.4",
    }
    expected = "bbeaa25c57159291f05296ec5b0d8e480fca4f75555cc82bce565cb4833282b0"
    assert projection_cache._key_hash(full) == expected
    cache = P.ProjectionCache("/cache")
    assert cache.path_for(full).name == f"{expected}.safetensors"
    # a key holds every parameter that shapes the map (defaults included), never n_jobs
    made = cache.full_key(full["key"], "tsne", 0, {"n_jobs": 2})
    defaults = {k: v for k, v in P.TSNE_DEFAULTS.items() if k != "n_jobs"}
    assert made == {
        **full,
        "params": defaults,
        "library": projection_cache._library_version("tsne"),
    }


# --- moved helpers: knn_preservation (vae.metrics), stratified_sample (vae.data.sampling) --------
def test_moved_helpers_are_still_importable_from_projection() -> None:
    from vae.projection import knn_preservation as knn
    from vae.projection import stratified_sample as sample

    assert knn is knn_preservation and sample is stratified_sample
    assert P.knn_preservation is knn_preservation and P.stratified_sample is stratified_sample
    with pytest.raises(AttributeError):
        P.no_such_name  # noqa: B018


def test_knn_preservation_bounds() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    assert knn_preservation(x, x, k=10) == pytest.approx(1.0)
    assert knn_preservation(x, x * 3 + 1, k=5) == pytest.approx(1.0)
    shuffled = x[rng.permutation(200)]
    assert knn_preservation(x, shuffled, k=10) < 0.2
    with pytest.raises(P.ProjectionError, match="rows"):
        knn_preservation(x, x[:10])
    with pytest.raises(P.ProjectionError, match="k must be"):
        knn_preservation(x, x, k=200)


def test_stratified_sample_is_proportional_and_deterministic() -> None:
    y = np.array([0] * 600 + [1] * 300 + [2] * 100)
    idx = stratified_sample(y, 100, seed=0)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    assert np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist() == [60, 30, 10]
    np.testing.assert_array_equal(idx, stratified_sample(y, 100, seed=0))
    assert not np.array_equal(idx, stratified_sample(y, 100, seed=1))
    odd = stratified_sample(np.array([0] * 5 + [1] * 5 + [2] * 5), 7)
    assert len(odd) == 7
    assert stratified_sample(y, 5000).tolist() == list(range(1000))
    plain = stratified_sample(None, 10, seed=0, total=50)
    assert len(plain) == 10 and plain.max() < 50
    with pytest.raises(P.ProjectionError):
        stratified_sample(None, 10)
    with pytest.raises(P.ProjectionError, match="n must be"):
        stratified_sample(y, 0)
