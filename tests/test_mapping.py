"""vae.mapping: the default map of a run, from the cache, from the maps shipped with a model
(without any fit), or recomputed when a shipped map no longer matches."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from tests.helpers import tiny_digits_checkpoint
from vae import mapping
from vae.checkpoint import load_run
from vae.projection import tsne as tsne_mod

FAST = {"n_iter": 60, "early_exaggeration_iter": 30}  # a small t-SNE, the same for every call


@pytest.fixture
def shipped_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "user"))
    path = tiny_digits_checkpoint(tmp_path / "model", latent_dim=3, steps=30)
    run = load_run(path)
    table = mapping.latent_table(run)
    fitted = mapping.projection(run, table, "tsne", **FAST)
    from vae.projection import ProjectionCache

    cache = ProjectionCache(path / ".cache", path / mapping.SHIPPED_DIR)
    full = cache.full_key(mapping.projection_key(run, len(table["mean"]), 0), "tsne", 0, FAST)
    cache.save_shipped(full, fitted, table["mean"], 0)
    shutil.rmtree(path / ".cache")  # a fresh machine: only what ships with the model
    return run, np.asarray(fitted.embedding)


def _forbid_fits(monkeypatch):
    def no_fit(*a, **k):
        raise AssertionError("a shipped map must open without a fit")

    monkeypatch.setattr(tsne_mod.TSNEProjection, "fit", classmethod(no_fit))


def test_a_shipped_map_opens_without_a_fit(shipped_run, monkeypatch):
    run, embedding = shipped_run
    (f,) = (run.path / mapping.SHIPPED_DIR).glob("*.safetensors")
    assert f.stat().st_size < 60_000  # 1,797 points: the embedding and a probe, no latents
    _forbid_fits(monkeypatch)
    table = mapping.latent_table(run)  # computed again here, as on a new machine
    proj = mapping.projection(run, table, "tsne", **FAST)
    assert proj.cached
    np.testing.assert_array_equal(proj.embedding, embedding)
    # the same transform as a fitted map: a training latent lands near its own dot
    i = 5
    placed = proj.transform(table["mean"][i : i + 1])[0]
    spread = np.ptp(embedding, axis=0).max()
    assert np.linalg.norm(placed - embedding[i]) < 0.1 * spread


def test_a_shipped_map_of_other_weights_is_recomputed(shipped_run, monkeypatch):
    import torch

    from vae.checkpoint import save_model

    run, embedding = shipped_run
    with torch.no_grad():  # "retrained": new weights, so a new run id and other latents
        for p in run.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(run.path, run.model, dataset=run.dataset, train=run.meta["train"])
    fits = []
    real = tsne_mod.TSNEProjection.fit.__func__

    def counting(cls, *a, **k):
        fits.append(1)
        return real(cls, *a, **k)

    monkeypatch.setattr(tsne_mod.TSNEProjection, "fit", classmethod(counting))
    run2 = load_run(run.path)
    proj = mapping.projection(run2, mapping.latent_table(run2), "tsne", **FAST)
    assert fits == [1] and not getattr(proj, "cached", False)


def test_a_shipped_map_of_other_latents_is_not_trusted(shipped_run, monkeypatch):
    run, _ = shipped_run
    table = dict(mapping.latent_table(run))
    table["mean"] = table["mean"][::-1].copy()  # same key, other rows: the probe disagrees
    from vae.projection import ProjectionCache

    cache = ProjectionCache(run.path / ".cache", run.path / mapping.SHIPPED_DIR)
    full = cache.full_key(mapping.projection_key(run, len(table["mean"]), 0), "tsne", 0, FAST)
    assert cache.load_shipped(full, table["mean"]) is None
    assert cache.load_shipped(full, mapping.latent_table(run)["mean"]) is not None


def test_a_forming_tsne_map_is_handed_out_and_ends_the_same(monkeypatch):
    from sklearn.decomposition import PCA

    from vae.projection import fit
    from vae.projection import tsne as t

    monkeypatch.setattr(t, "SNAPSHOT_EVERY_S", 0.0)  # every callback, for the test
    x = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    x[:150] += 4.0  # two clusters
    seen: list[tuple[np.ndarray, float]] = []
    params = {"n_iter": 50, "early_exaggeration_iter": 25, "n_jobs": 1}
    watched = fit(x, "tsne", seed=0, snapshot=lambda e, f: seen.append((e.copy(), f)), **params)
    plain = fit(x, "tsne", seed=0, **params)
    np.testing.assert_array_equal(watched.embedding, plain.embedding)  # watching changes nothing
    assert len(seen) >= 10 and all(e.shape == (300, 2) for e, _ in seen)
    fracs = [f for _, f in seen]
    assert fracs == sorted(fracs) and fracs[0] == 0.0
    # the first picture is where the optimisation starts: the PCA of the latents (up to sign)
    pc1 = PCA(2).fit_transform(x.astype(np.float64))[:, 0]
    assert abs(np.corrcoef(seen[0][0][:, 0], pc1)[0, 1]) > 0.99
    # ... and the layout moves on from there
    assert not np.allclose(seen[0][0], seen[-1][0])


@pytest.mark.parametrize("name", ["digits-mlp", "digits-2d", "digits-beta0", "shapes-conv"])
def test_every_shipped_model_opens_its_tsne_map_without_a_fit(name, tmp_path, monkeypatch):
    """The maps committed in assets/<model>/maps match what this code computes (run id, sample,
    latents), so a fresh clone shows t-SNE at once. (mnist-conv needs MNIST: see below.)"""
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "assets" / name
    shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns(".cache"))
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "user"))
    run = load_run(tmp_path / name)
    table = mapping.latent_table(run)
    _forbid_fits(monkeypatch)
    assert mapping.projection(run, table, "tsne").cached
    if importlib.util.find_spec("umap") is not None:  # and UMAP's, shipped beside it
        from vae.projection import umap as umap_mod

        def no_fit(*a, **k):
            raise AssertionError("a shipped UMAP map must open without a fit")

        monkeypatch.setattr(umap_mod.UMAPProjection, "fit", classmethod(no_fit))
        assert mapping.projection(run, table, "umap").cached


@pytest.mark.parametrize("name", ["mnist-conv", "mnist-mixture"])
def test_the_shipped_mnist_map_opens_without_a_fit(name, mnist_root, tmp_path, monkeypatch):
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "assets" / name
    shutil.copytree(src, tmp_path / "m", ignore=shutil.ignore_patterns(".cache"))
    run = load_run(tmp_path / "m")
    table = mapping.latent_table(run)
    _forbid_fits(monkeypatch)
    assert mapping.projection(run, table, "tsne").cached


def test_explore_shows_a_shipped_tsne_map_without_a_fit(tmp_path, monkeypatch):
    from pathlib import Path

    from tests.helpers import app_test, ok

    src = Path(__file__).resolve().parents[1] / "assets" / "digits-mlp"
    assets = tmp_path / "assets"
    shutil.copytree(src, assets / "digits-mlp", ignore=shutil.ignore_patterns(".cache"))
    dirs = {"assets": assets, "runs": tmp_path / "runs", "cache": tmp_path / "cache"}
    _forbid_fits(monkeypatch)
    at = app_test(dirs, monkeypatch, {"proj": "tsne"})
    ok(at)
    chart = next(c for c in at.get("plotly_chart") if c.key == "latent_map")
    assert chart is not None and any("t-SNE" in c.value for c in at.caption)


def test_cached_projection_never_fits(shipped_run, monkeypatch):
    run, embedding = shipped_run
    _forbid_fits(monkeypatch)
    table = mapping.latent_table(run)
    hit = mapping.cached_projection(run, table, "tsne", **FAST)
    assert hit is not None and np.array_equal(hit.embedding, embedding)
    assert mapping.cached_projection(run, {"mean": table["mean"][:-1]}, "tsne", **FAST) is None
    assert mapping.cached_projection(run, table, "tsne") is None  # other params: another map
