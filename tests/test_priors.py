"""The learned mixture prior (vae.priors), each figure checked against an independent computation:
scipy's densities and quadrature, closed forms, and sample statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.special import logsumexp

from vae.config import ConfigError, ModelConfig, TrainConfig
from vae.distributions import DiagonalGaussian
from vae.model import VAE
from vae.objectives import elbo, iwae, iwae_objective
from vae.priors import MixturePrior


def mixture(k: int = 3, d: int = 2, seed: int = 0) -> MixturePrior:
    torch.manual_seed(seed)
    p = MixturePrior(k, d)
    with torch.no_grad():
        p.means.copy_(torch.randn(k, d) * 2)
        p.logvars.copy_(torch.randn(k, d) * 0.5)
        p.logits.copy_(torch.randn(k))
    return p


def scipy_log_prob(p: MixturePrior, z: np.ndarray) -> np.ndarray:
    w = torch.softmax(p.logits, 0).detach().numpy()
    mu, var = p.means.detach().numpy(), p.logvars.detach().exp().numpy()
    comps = [
        np.log(w[k]) + stats.multivariate_normal(mu[k], np.diag(var[k])).logpdf(z)
        for k in range(len(w))
    ]
    return logsumexp(np.stack(comps), axis=0)


def test_log_prob_matches_scipy_mixture_density():
    p = mixture(4, 3)
    z = np.random.default_rng(1).normal(size=(50, 3)) * 3
    ours = p.log_prob(torch.from_numpy(z).float()).detach().numpy()
    np.testing.assert_allclose(ours, scipy_log_prob(p, z), rtol=1e-4, atol=1e-4)


def test_log_prob_keeps_leading_dimensions():
    p = mixture(3, 2)
    z = torch.randn(5, 7, 2)
    assert p.log_prob(z).shape == (5, 7)


def test_marginal_kl_matches_numerical_integration():
    p = mixture(3, 2)
    q = DiagonalGaussian(torch.tensor([[0.7, -1.5]]), torch.tensor([[-1.0, 0.4]]))
    ours = p.marginal_kl(q)[0].detach().numpy()  # (2,)
    w = torch.softmax(p.logits, 0).detach().numpy()
    mu, sd = p.means.detach().numpy(), p.logvars.detach().mul(0.5).exp().numpy()
    for d in range(2):
        m, s = float(q.mean[0, d]), float(q.std[0, d])

        def integrand(z, d=d, m=m, s=s):
            lq = stats.norm(m, s).logpdf(z)
            lp = logsumexp(
                [np.log(w[k]) + stats.norm(mu[k, d], sd[k, d]).logpdf(z) for k in range(3)]
            )
            return math.exp(lq) * (lq - lp)

        expected, _ = integrate.quad(integrand, m - 12 * s, m + 12 * s, limit=200)
        assert ours[d] == pytest.approx(expected, abs=2e-3)


def test_one_standard_component_is_the_normal_prior():
    p = MixturePrior(1, 4)
    with torch.no_grad():
        p.means.zero_()
    q = DiagonalGaussian(torch.randn(6, 4), torch.randn(6, 4) * 0.5)
    np.testing.assert_allclose(p.marginal_kl(q).detach().numpy(), q.kl_per_dim().numpy(), atol=1e-4)
    z = torch.randn(9, 4)
    closed = -0.5 * (math.log(2 * math.pi) + z.pow(2)).sum(-1)
    np.testing.assert_allclose(p.log_prob(z).detach().numpy(), closed.numpy(), atol=1e-5)
    mc = p.kl_estimate(q, samples=20000, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(mc.detach().numpy(), q.kl().numpy(), atol=0.1)


def test_samples_follow_the_weights_and_moments():
    p = mixture(3, 2, seed=3)
    z = p.sample(40000, torch.Generator().manual_seed(0)).numpy()  # (n, 2)
    mean, std = p.mean_std()
    np.testing.assert_allclose(z.mean(0), mean.numpy(), atol=0.06)
    np.testing.assert_allclose(z.std(0), std.numpy(), rtol=0.03)
    # the empirical log-density under the mixture beats that under any single component
    w = torch.softmax(p.logits, 0).detach().numpy()
    # nearest component by posterior responsibility: the counts follow π
    mu, var = p.means.detach().numpy(), p.logvars.detach().exp().numpy()
    logr = np.stack(
        [
            np.log(w[k]) + stats.multivariate_normal(mu[k], np.diag(var[k])).logpdf(z)
            for k in range(3)
        ]
    )
    resp = np.exp(logr - logsumexp(logr, axis=0))  # (K, n)
    np.testing.assert_allclose(resp.mean(1), w, atol=0.02)


def test_same_seed_same_draws():
    p = mixture()
    a = p.sample(5, torch.Generator().manual_seed(4))
    b = p.sample(5, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


# --- in the model and the objectives --------------------------------------------------------------
def mixture_vae(k: int = 5) -> VAE:
    torch.manual_seed(0)
    cfg = ModelConfig(
        image_shape=(1, 8, 8), latent_dim=3, arch="mlp", hidden=(16,), prior="mixture",
        prior_components=k,
    )  # fmt: skip
    return VAE(cfg).eval()


def test_config_checks_the_prior():
    with pytest.raises(ConfigError, match="components"):
        ModelConfig(prior="mixture", prior_components=0)
    with pytest.raises(ConfigError, match="prior must be"):
        ModelConfig(prior="vamp")
    with pytest.raises(ConfigError, match="mixture prior only"):
        ModelConfig(prior_components=8)
    cfg = ModelConfig(latent_dim=6, prior="mixture", prior_components=8)
    shapes = cfg.state_shapes()
    assert shapes["prior.means"] == (8, 6) and shapes["prior.logits"] == (8,)
    built = {k: tuple(v.shape) for k, v in VAE(cfg).state_dict().items()}
    assert built == shapes


def test_elbo_kl_is_the_sampled_log_ratio():
    m = mixture_vae()
    x = (torch.rand(16, 1, 8, 8) > 0.5).float()
    g = torch.Generator().manual_seed(0)
    t = elbo(m, x, generator=g)
    g = torch.Generator().manual_seed(0)
    params, q, z = m(x, g)
    expected = (q.log_prob(z) - m.prior.log_prob(z)).mean()
    assert float(t.kl.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert t.kl_per_dim.shape == (3,)


def test_iwae_bound_with_a_mixture_prior():
    m = mixture_vae()
    x = (torch.rand(4, 1, 8, 8) > 0.5).float()
    # independently: log (1/k) Σ p(x|z) p(z) / q(z|x), by numpy from the parts
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        q = m.encode(x)
        z = q.sample(g, n=3000)  # (k, B, D)
        ll = m.log_likelihood(m.decode_params(z.flatten(0, 1)).view(3000, 4, 1, 8, 8), x)
        log_w = (ll + torch.from_numpy(scipy_log_prob(m.prior, z.numpy().reshape(-1, 3)))
                 .float().view(3000, 4) - q.log_prob(z)).numpy()  # fmt: skip
    expected = logsumexp(log_w, axis=0) - math.log(3000)
    ours = iwae(m, x, k=3000, chunk=3000, generator=torch.Generator().manual_seed(1)).numpy()
    np.testing.assert_allclose(ours, expected, atol=2e-3)
    t = iwae_objective(m, x, k=4, generator=torch.Generator().manual_seed(2))
    t.loss.backward()
    assert m.prior.means.grad is not None and m.prior.means.grad.abs().sum() > 0


def test_sample_draws_from_the_mixture():
    m = mixture_vae()
    with torch.no_grad():
        m.prior.means.fill_(5.0)
        m.prior.logvars.fill_(-4.0)
    z = m.sample_prior(200, torch.Generator().manual_seed(0))
    assert z.shape == (200, 3) and abs(float(z.mean()) - 5.0) < 0.05


def test_btcvae_and_free_bits_refuse_a_mixture_prior(tmp_path):
    from vae.train.setup import setup

    cfg = ModelConfig(image_shape=(1, 8, 8), latent_dim=3, arch="mlp", hidden=(8,),
                      prior="mixture", prior_components=4)  # fmt: skip
    for train in (TrainConfig(dataset="digits", objective="btcvae"),
                  TrainConfig(dataset="digits", free_bits=0.5)):  # fmt: skip
        with pytest.raises(ConfigError, match="--prior normal"):
            setup(cfg, train, tmp_path / "run")


# --- training with --init and --prior mixture -----------------------------------------------------
def test_init_starts_from_the_run_and_trains_a_mixture_prior(make_run, tmp_path):
    from vae.checkpoint import load_run, read_config
    from vae.data import load_dataset
    from vae.train.cli import build_parser, configs_from_args, main
    from vae.train.setup import setup

    src = make_run("src", latent_dim=4, steps=60)
    argv = ["--init", str(src), "--prior", "mixture", "--prior-components", "6",
            "--iw-samples", "4", "--epochs", "1", "--max-steps", "5", "--prior-lr", "0.01",
            "--no-progress", "--preview-every-s", "0", "--out", str(tmp_path / "mix")]  # fmt: skip
    model_cfg, cfg, out, resume = configs_from_args(build_parser().parse_args(argv), argv)
    assert (model_cfg.prior, model_cfg.prior_components, cfg.dataset) == ("mixture", 6, "digits")
    assert model_cfg.hidden == (64,) and cfg.init == str(src) and cfg.prior_lr == 0.01
    s = setup(model_cfg, cfg, out)
    source = load_run(src).model.state_dict()
    for k, v in s.model.state_dict().items():
        if not k.startswith("prior."):
            assert torch.equal(v, source[k]), k
    # each component starts at the posterior mean of one training image, unit variance
    x = load_dataset("digits", "train").x
    x = (x > 0.5).float() if s.binarize else x
    with torch.no_grad():
        means = s.model.encode(x.to(s.device)).mean  # (N, D)
    gaps = torch.cdist(s.model.prior.means.detach(), means).min(1).values  # (K,)
    assert float(gaps.max()) < 1e-3  # float rounding of batched encodes
    assert torch.equal(s.model.prior.logvars.detach(), torch.zeros(6, 4))
    assert [g["lr"] for g in s.opt.param_groups] == [cfg.lr, 0.01]

    assert main(argv) == 0
    run = load_run(out)
    assert run.model.learned_prior and read_config(out)["train"]["init"] == str(src)
    assert not torch.equal(run.model.prior.logvars.detach(), torch.zeros(6, 4))  # it learned


def test_the_shipped_mixture_prior_beats_n01_on_real_mnist(mnist_root):
    """assets/mnist-mixture: its learned prior, swapped for N(0, I) under the same encoder and
    decoder, gives a worse bound on the same images and samples; its stored whole-test-set figure
    (written by `vae.evaluate --save`) agrees with a fresh estimate on the first 500 images."""
    import dataclasses
    from pathlib import Path

    from vae.checkpoint import load_run, read_json
    from vae.data import load_dataset
    from vae.metrics import iwae_nll

    torch.set_num_threads(2)
    folder = Path(__file__).resolve().parents[1] / "assets" / "mnist-mixture"
    run = load_run(folder)
    x = load_dataset("mnist", "test", mnist_root).x[:500]
    x = (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < x).float()
    learned = iwae_nll(run.model, x, k=100, seed=0)
    plain = VAE(dataclasses.replace(run.config, prior="normal", prior_components=0)).eval()
    state = {k: v for k, v in run.model.state_dict().items() if not k.startswith("prior.")}
    plain.load_state_dict(state)
    assert iwae_nll(plain, x, k=100, seed=0) > learned + 0.5
    stored = read_json(folder / "metrics.json")["evaluation"]["test"]
    assert stored["iw_samples"] == 1000 and stored["n"] == 10_000 and stored["iwae_nll"] <= 84.0
    assert abs(learned - stored["iwae_nll"]) < 2.0
