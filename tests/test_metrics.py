"""Metrics on tiny models and synthetic latents: active units, KL per dim, ELBO, IWAE, MIG."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import tiny_vae
from vae.config import ModelConfig
from vae.latents import encode_dataset, nearest
from vae.metrics import (
    active_units,
    evaluate_elbo,
    iwae_nll,
    kl_per_dim,
    mig,
    mutual_info_matrix,
    per_image_elbo,
)
from vae.model import VAE, cpu_inference_layout


def _digits(n: int = 256) -> torch.Tensor:
    from vae.data import load_dataset

    return load_dataset("digits", "train").x[:n]  # (n, 1, 8, 8)


def _tiny(latent_dim: int = 4, seed: int = 0) -> VAE:
    return tiny_vae(latent_dim, seed=seed)


@pytest.fixture(scope="module")
def sharp() -> tuple[VAE, torch.Tensor]:
    """An untrained VAE whose decoder is very sensitive to z, so its random posterior is a poor
    proposal and the IWAE bound is several nats tighter than the ELBO."""
    model = _tiny(latent_dim=4)
    with torch.no_grad():
        model.decoder.body[0].weight.mul_(5.0)
    return model, _digits(128)


def test_active_units_counts_dimensions_the_encoder_uses() -> None:
    model = _tiny(latent_dim=5)
    out = model.encoder.out  # Linear(32, 2 * 5): rows 0..4 are means, 5..9 log-variances
    with torch.no_grad():
        out.weight[[1, 3]] = 0.0  # means of z1 and z3 ignore the input ...
        out.bias[[1, 3]] = 0.0  # ... and sit at the prior mean
        out.weight[5:] = 0.0
        out.bias[5:] = 0.0  # unit posterior variance everywhere
        out.weight[[0, 2, 4]] *= 20.0  # the others move a lot with the input
    x = _digits()
    count, activity = active_units(model, x)
    assert count == 3
    assert activity.shape == (5,)
    assert torch.all(activity[[1, 3]] == 0)
    assert torch.all(activity[[0, 2, 4]] > 0.01)
    kl = kl_per_dim(model, x)  # KL(N(0, 1) || N(0, 1)) = 0 for the ignored dims
    assert kl.shape == (5,)
    assert torch.allclose(kl[[1, 3]], torch.zeros(2), atol=1e-6)
    assert torch.all(kl[[0, 2, 4]] > 0.01)
    # kl_per_dim agrees with the batch formula, whatever the batch size
    assert torch.allclose(kl, kl_per_dim(model, x, batch_size=7), atol=1e-5)
    assert torch.allclose(kl, model.encode(x).kl_per_dim().mean(0), atol=1e-5)


def test_encode_dataset_and_nearest() -> None:
    model, x = _tiny(), _digits(100)
    mean, logvar = encode_dataset(model, x, batch_size=32)
    q = model.encode(x)
    assert mean.shape == logvar.shape == (100, 4)
    assert torch.allclose(mean, q.mean, atol=1e-6) and torch.allclose(logvar, q.logvar, atol=1e-6)
    idx, dist = nearest(mean[17], mean, k=3)
    assert idx[0] == 17 and dist[0] == 0.0
    brute = ((mean - mean[17]) ** 2).sum(1).sqrt().argsort()[:3]
    assert set(idx.tolist()) == set(brute.tolist())
    assert torch.all(dist[1:] >= dist[:-1])
    assert len(nearest(mean[0], mean[:2], k=10)[0]) == 2  # k clipped to N


def test_elbo_metrics_agree_and_are_seeded(sharp: tuple[VAE, torch.Tensor]) -> None:
    model, x = sharp
    per = per_image_elbo(model, x, batch_size=100, seed=3)
    assert per.shape == (x.shape[0],) and torch.isfinite(per).all()
    assert torch.equal(per, per_image_elbo(model, x, batch_size=100, seed=3))
    ev = evaluate_elbo(model, x, batch_size=100, seed=3)
    assert ev["elbo"] == pytest.approx(-(ev["recon"] + ev["kl"]))
    assert ev["elbo"] == pytest.approx(per.mean().item(), rel=1e-5)  # same seed, same batches
    assert ev["kl"] == pytest.approx(kl_per_dim(model, x).sum().item(), rel=1e-4)


def test_iwae_nll_is_below_negative_elbo_and_tightens_with_k(
    sharp: tuple[VAE, torch.Tensor],
) -> None:
    model, x = sharp
    neg_elbo = -evaluate_elbo(model, x, seed=0)["elbo"]
    calls: list[tuple[int, int]] = []
    nll = {
        k: iwae_nll(
            model, x, k=k, batch_size=50, seed=1, progress=lambda d, t: calls.append((d, t))
        )
        for k in (1, 10, 100)
    }
    assert calls[:3] == [(50, 128), (100, 128), (128, 128)]
    # k = 1 is an unbiased single-sample ELBO: close to the analytic-KL estimate.
    assert nll[1] == pytest.approx(neg_elbo, rel=0.02)
    assert nll[100] <= nll[10] <= nll[1]  # Burda et al. 2015, Theorem 1
    assert nll[100] < neg_elbo - 1.0  # measured gap: about 5 nats
    assert 0 < nll[100] < 200  # nats for 64 pixels: a sane scale


def test_iwae_nll_binarization_is_seeded() -> None:
    model, x = _tiny(), _digits(64)
    a = iwae_nll(model, x, k=5, batch_size=32, binarize=True, seed=7)
    b = iwae_nll(model, x, k=5, batch_size=32, binarize=True, seed=7)
    c = iwae_nll(model, x, k=5, batch_size=32, binarize=False, seed=7)
    assert a == b and a != c


def test_mig_high_for_noisy_copy_of_factors_and_low_for_random_latents() -> None:
    rng = np.random.default_rng(0)
    sizes = [3, 6, 10]
    factors = np.stack([rng.integers(0, s, 4000) for s in sizes], 1)  # (N, 3)
    noise = rng.normal(size=(4000, 5))
    copy = np.concatenate([factors + 0.1 * noise[:, :3], noise[:, 3:]], 1)  # (N, 5)
    good = mig(copy, factors, sizes)
    assert good["mig"] > 0.5
    assert all(s > 0.5 for s in good["per_factor"])
    assert good["mi"].shape == (3, 5)
    bad = mig(noise, factors, sizes)
    assert bad["mig"] < 0.05
    # Two latents copying the same factor: no gap for it, whatever the MI.
    dup = np.concatenate([copy[:, :1], copy[:, :1] + 1e-3 * noise[:, :1], copy[:, 1:3]], 1)
    assert mig(dup, factors, sizes)["per_factor"][0] < 0.1


def test_mutual_info_matrix_matches_entropy_for_exact_copies() -> None:
    v = np.repeat(np.arange(4), 250)[:, None]  # uniform over 4 values: H = log 4
    z = np.concatenate([v.astype(float), np.zeros_like(v, dtype=float)], 1)
    mi = mutual_info_matrix(z, v, n_bins=20)
    assert mi[0, 0] == pytest.approx(np.log(4), rel=1e-6)
    assert mi[0, 1] == pytest.approx(0.0, abs=1e-9)


def test_mig_skips_constant_factor_and_rejects_bad_input() -> None:
    rng = np.random.default_rng(1)
    f = np.stack([rng.integers(0, 4, 500), np.zeros(500, dtype=int)], 1)
    z = np.concatenate([f[:, :1] + 0.05 * rng.normal(size=(500, 1)), rng.normal(size=(500, 2))], 1)
    res = mig(z, f, [4, 1])
    assert res["per_factor"][1] is None and res["mig"] == res["per_factor"][0] > 0.5
    with pytest.raises(ValueError, match="factor"):
        mig(z, f, [4])
    with pytest.raises(ValueError, match="indices"):
        mig(z, f, [3, 1])


def test_iwae_objective_is_the_iwae_bound_with_gradients(sharp: tuple[VAE, torch.Tensor]) -> None:
    from vae.objectives import elbo, iwae, iwae_objective

    model, x = sharp
    terms = iwae_objective(model, x, k=8, generator=torch.Generator().manual_seed(3))
    bound = iwae(model, x, k=8, chunk=8, generator=torch.Generator().manual_seed(3))  # (B,)
    assert torch.allclose(terms.loss, -bound.mean(), atol=1e-4)  # same draws, same number
    single = elbo(model, x, generator=torch.Generator().manual_seed(3))
    assert terms.loss.item() < -single.elbo.item() - 1.0  # several nats tighter than the ELBO
    assert abs(terms.elbo.item() - single.elbo.item()) < 3.0  # elbo: the k-sample ELBO average
    terms.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.zero_grad(set_to_none=True)


def test_iwae_nll_of_a_conv_model_matches_contiguous_weights_and_restores_them() -> None:
    from vae.objectives import iwae

    torch.manual_seed(0)
    cfg = ModelConfig(image_shape=(1, 16, 16), arch="conv", hidden=(8, 16), dense=0, latent_dim=3)
    model = VAE(cfg).eval()
    x = torch.rand(6, 1, 16, 16)
    nll = iwae_nll(model, x, k=20, batch_size=6, seed=4)  # runs channels-last on CPU
    assert all(p.is_contiguous() for p in model.parameters())  # and gives the weights back
    ref = -iwae(model, x, k=20, chunk=20, generator=torch.Generator().manual_seed(4)).mean()
    assert nll == pytest.approx(ref.item(), abs=1e-3)


def _tiny_conv(seed: int = 0) -> VAE:
    return tiny_vae(3, arch="conv", image_shape=(1, 16, 16), hidden=(8, 16), dense=0, seed=seed)


def test_cpu_inference_layout_is_counted_and_restores_contiguous_weights(tmp_path) -> None:
    from vae.checkpoint import load_run, save_model

    model = _tiny_conv()
    conv = model.encoder.body[2].weight
    x = torch.rand(5, 1, 16, 16)
    with torch.no_grad():
        ref = model.decode(model.encode(x).mean)
    with cpu_inference_layout(model):
        assert model.encoder.body[2].weight.is_contiguous(memory_format=torch.channels_last)
        assert not model.encoder.body[2].weight.is_contiguous()
        with cpu_inference_layout(model):  # a second user (nested, or another session)
            pass
        assert not model.encoder.body[2].weight.is_contiguous()  # still in use: not restored
        with torch.no_grad():
            out = model.decode(model.encode(x).mean)
    assert torch.allclose(out, ref, atol=1e-5)
    assert all(p.is_contiguous() for p in model.parameters())
    assert model.encoder.body[2].weight is conv  # the same Parameter objects throughout
    save_model(tmp_path / "run", model, dataset={"name": "npz"})  # safetensors needs contiguous
    assert torch.equal(load_run(tmp_path / "run").model.encoder.body[2].weight, conv)
    mlp = _tiny()
    with cpu_inference_layout(mlp):  # nothing to do for MLPs
        assert all(p.is_contiguous() for p in mlp.parameters())


@pytest.mark.parametrize("make", [_tiny, _tiny_conv], ids=["mlp", "conv"])
def test_per_image_elbo_matches_the_plain_computation_in_either_layout(make) -> None:
    model = make()
    x = _digits(70) if model.config.arch == "mlp" else torch.rand(70, 1, 16, 16)
    elbo = per_image_elbo(model, x, batch_size=32, seed=5)  # conv: channels-last on CPU
    assert all(p.is_contiguous() for p in model.parameters())  # and gives the weights back
    assert torch.equal(elbo, per_image_elbo(model, x, batch_size=32, seed=5))
    gen, ref = torch.Generator().manual_seed(5), []
    with torch.no_grad():  # the same draws in the default layout, batch by batch
        for i in range(0, 70, 32):
            params, q, _ = model(x[i : i + 32], gen)
            ref.append(model.log_likelihood(params, x[i : i + 32]) - q.kl())
    assert torch.allclose(elbo, torch.cat(ref), rtol=1e-5, atol=1e-4)
    mean, logvar = encode_dataset(model, x, batch_size=32)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1)  # K&W 2013, App. B
    with torch.no_grad():
        assert torch.allclose(model.encode(x).kl(), kl, rtol=1e-5, atol=1e-5)  # the project's KL
    assert torch.all(elbo <= -kl + 1e-4)  # a Bernoulli log-likelihood is <= 0
    assert per_image_elbo(model, x[:0]).shape == (0,)
