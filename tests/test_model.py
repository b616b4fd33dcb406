import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vae import VAE, DiagonalGaussian, ModelConfig
from vae.config import ConfigError
from vae.model import interpolate_path
from vae.objectives import elbo, iwae


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    q = DiagonalGaussian(mean, logvar)
    ref = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(q.kl(), ref)


def test_kl_is_zero_at_standard_normal():
    q = DiagonalGaussian(torch.zeros(3, 4), torch.zeros(3, 4))
    assert torch.all(q.kl() == 0)


def test_log_prob_matches_torch_distributions():
    mean, logvar = torch.randn(4, 3), torch.randn(4, 3)
    q = DiagonalGaussian(mean, logvar)
    z = torch.randn(6, 4, 3)
    ref = Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(q.log_prob(z), ref)


def test_sample_is_reparameterised_and_seeded():
    mean = torch.zeros(2, 3, requires_grad=True)
    q = DiagonalGaussian(mean, torch.zeros(2, 3))
    a = q.sample(torch.Generator().manual_seed(1))
    b = q.sample(torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    a.sum().backward()
    assert torch.equal(mean.grad, torch.ones(2, 3))


@pytest.mark.parametrize("arch,hidden", [("mlp", (64, 32)), ("conv", (8, 16)), ("conv", (8,))])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 13, 9), (3, 32, 32), (1, 64, 64)])
def test_shapes_every_arch_and_size(arch, hidden, shape):
    m = VAE(ModelConfig(image_shape=shape, arch=arch, hidden=hidden, dense=16, latent_dim=5))
    x = torch.rand(3, *shape)
    q = m.encode(x)
    assert q.mean.shape == (3, 5) and q.logvar.shape == (3, 5)
    assert m.decode(q.mode()).shape == (3, *shape)
    assert m.reconstruct(x).shape == (3, *shape)
    assert m.embed(x).shape == (3, 5)
    s = m.sample(4, torch.Generator().manual_seed(0))
    assert s.shape == (4, *shape) and 0 <= s.min() and s.max() <= 1


def test_mlp_reproduces_pytorch_examples_shape():
    m = VAE(ModelConfig(image_shape=(1, 28, 28), arch="mlp", hidden=(400,), latent_dim=20))
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [
        (784, 400),
        (400, 40),  # fc21 + fc22 of the example, stacked
        (20, 400),
        (400, 784),
    ]


@pytest.mark.parametrize(
    "kw",
    [
        {"image_shape": (2, 28, 28)},
        {"image_shape": (1, 7, 28)},
        {"image_shape": (1, 28, 65)},
        {"latent_dim": 1},
        {"latent_dim": 129},
        {"arch": "resnet"},
        {"likelihood": "poisson"},
        {"hidden": ()},
    ],
)
def test_config_validation(kw):
    with pytest.raises(ConfigError):
        ModelConfig(**kw)


def test_config_round_trip_and_unknown_keys():
    cfg = ModelConfig(arch="conv", hidden=(8, 16), latent_dim=4, likelihood="gaussian")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_verbs_are_deterministic_and_gradient_free():
    m = VAE(ModelConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(m.reconstruct(x), m.reconstruct(x))
    assert not m.embed(x).requires_grad


def test_interpolate_lerp_and_slerp():
    z0, z1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    lerp = interpolate_path(z0, z1, 5, "lerp")
    slerp = interpolate_path(z0, z1, 5, "slerp")
    assert torch.allclose(lerp[0], z0) and torch.allclose(lerp[-1], z1)
    assert torch.allclose(slerp[-1], z1, atol=1e-6)
    assert torch.allclose(slerp.norm(dim=1), torch.ones(5), atol=1e-5)  # stays on the circle
    assert lerp[2].norm() < 0.8
    m = VAE(ModelConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=2))
    assert m.interpolate(z0, z1, 7, "slerp").shape == (7, 1, 8, 8)
    with pytest.raises(ValueError):
        interpolate_path(z0, z1, 5, "cubic")


@pytest.mark.parametrize("likelihood,mode", [("bernoulli", "fixed"), ("gaussian", "learned")])
def test_iwae_at_least_elbo_and_non_decreasing_in_k(likelihood, mode):
    torch.manual_seed(0)
    cfg = ModelConfig(
        image_shape=(1, 8, 8), hidden=(32,), latent_dim=4, likelihood=likelihood, sigma_mode=mode
    )
    m = VAE(cfg)
    x = (torch.rand(16, 1, 8, 8) > 0.5).float()
    g = torch.Generator().manual_seed(0)
    elbo_mc = torch.stack([elbo(m, x, generator=g).elbo for _ in range(200)]).mean()
    bounds = [iwae(m, x, k, chunk=7, generator=g).mean().item() for k in (1, 10, 100, 1000)]
    assert abs(bounds[0] - elbo_mc.item()) < 0.05 * abs(elbo_mc.item())  # k=1 is the ELBO
    assert bounds[-1] >= elbo_mc.item()
    # non-decreasing up to Monte-Carlo noise (the gain saturates once k covers the posterior)
    assert all(b2 >= b1 - 0.05 for b1, b2 in zip(bounds, bounds[1:], strict=False))
    assert bounds[-1] > bounds[0] + 0.3


def test_iwae_chunking_does_not_change_the_result():
    torch.manual_seed(0)
    m = VAE(ModelConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
    x = torch.rand(4, 1, 8, 8).round()
    a = iwae(m, x, 64, chunk=64, generator=torch.Generator().manual_seed(3))
    b = iwae(m, x, 64, chunk=64, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b)
    c = iwae(m, x, 5000, chunk=1000)  # fits in memory through chunking
    assert c.shape == (4,) and torch.isfinite(c).all()


def test_elbo_terms_and_free_bits():
    torch.manual_seed(0)
    m = VAE(ModelConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
    x = torch.rand(8, 1, 8, 8).round()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    t = elbo(m, x, generator=g())
    torch.testing.assert_close(t.elbo, -(t.recon + t.kl))
    torch.testing.assert_close(t.kl_per_dim.sum(), t.kl)
    fb = elbo(m, x, free_bits=5.0, generator=g())
    assert math.isclose(fb.loss.item(), t.recon.item() + 15.0, rel_tol=1e-5)  # every dim < 5 nats
    beta0 = elbo(m, x, beta=0.0, generator=g())
    torch.testing.assert_close(beta0.loss, t.recon)
