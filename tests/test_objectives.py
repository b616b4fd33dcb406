"""β-TCVAE (Chen et al. 2018): the KL's three parts against independent computations, the TC of
factorised and correlated Gaussian aggregates against closed forms, the objective against the
ELBO, and short training runs through `train()` and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from tests.helpers import tiny_vae
from vae import ModelConfig, TrainConfig
from vae.checkpoint import read_jsonl
from vae.config import ConfigError
from vae.distributions import DiagonalGaussian
from vae.objectives import btcvae_objective, check_pair_terms, elbo, kl_decomposition
from vae.runschema import check_config, check_metrics, log_problem
from vae.train import TrainingError, train
from vae.train.cli import build_parser, configs_from_args


def random_posteriors(n: int = 48, d: int = 3, seed: int = 0) -> DiagonalGaussian:
    """q(z|x_j) of a small random encoder on random images, with its means spread out and its
    variances narrowed (last layer set so), so that the three terms are all well above 0."""
    model = tiny_vae(latent_dim=d, seed=seed)
    with torch.no_grad():
        weight, bias = model.encoder.out.weight, model.encoder.out.bias  # rows: means, logvars
        weight[:d] *= 8.0
        weight[d:], bias[d:] = 0.0, -3.0  # σ = e^-1.5 = 0.22
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.encode(x)


def test_the_three_terms_are_the_mixtures_log_densities_when_the_batch_is_the_dataset():
    """N = M: the aggregate posterior is exactly the batch's mixture (1/N) Σ_j q(z|x_j), so each
    term must match torch.distributions' mixture densities (this checks the normaliser log M
    and which pairs go where: the sum alone telescopes whatever they are)."""
    q = random_posteriors()
    z = q.sample(torch.Generator().manual_seed(1))  # (N, D)
    n, d = z.shape
    mix = Categorical(logits=torch.zeros(n))
    joint = MixtureSameFamily(mix, Independent(Normal(q.mean, q.std), 1))
    marginals = sum(
        MixtureSameFamily(mix, Normal(q.mean[:, k], q.std[:, k])).log_prob(z[:, k])
        for k in range(d)
    )  # (N,): log Π_d q(z_d)
    log_qzx = Independent(Normal(q.mean, q.std), 1).log_prob(z)
    log_pz = Independent(Normal(torch.zeros(d), torch.ones(d)), 1).log_prob(z)
    t = kl_decomposition(z, q)
    torch.testing.assert_close(t.mi, log_qzx - joint.log_prob(z), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(t.tc, joint.log_prob(z) - marginals, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(t.dwkl, marginals - log_pz, atol=1e-4, rtol=1e-5)
    assert min(t.mi.mean(), t.tc.mean(), t.dwkl.mean()) > 0.4  # all three terms at work


def test_the_three_terms_add_up_to_the_kl_in_expectation():
    """mean(MI + TC + dwKL) over many draws of z equals the analytic KL(q(z|x) || p(z))."""
    q = random_posteriors()
    g = torch.Generator().manual_seed(2)
    sums, parts = [], torch.zeros(3)
    for _ in range(400):
        t = kl_decomposition(q.sample(g), q)
        sums.append((t.mi + t.tc + t.dwkl).mean())
        parts += torch.stack([t.mi.mean(), t.tc.mean(), t.dwkl.mean()]) / 400
    sums = torch.stack(sums)  # (400,): one batch mean per draw
    estimate, se = sums.mean().item(), sums.std().item() / math.sqrt(len(sums))
    kl = q.kl().mean().item()
    assert abs(estimate - kl) < 4 * se + 1e-3, (estimate, kl, se)
    # a term with the wrong sign would move the sum by twice its size, far past the tolerance
    assert 2 * parts.abs().min().item() > 10 * (4 * se + 1e-3), (parts, se)


def gaussian_aggregate(correlated: bool, n: int = 2000, d: int = 3, seed: int = 0):
    """Posteriors N(μ_j, σ² I), μ_j ~ N(0, I) drawn independently per dimension, or (correlated)
    with μ_j1 = μ_j0: the aggregate is N(0, Σ) with Σ = I + σ² I (plus 1 at (0, 1) and (1, 0)).
    Returns (terms from z ~ q(z|x_j), one per posterior, and the closed forms of MI, TC, dwKL)."""
    sigma = 0.4
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, d, generator=g)  # (N, D)
    if correlated:
        mu[:, 1] = mu[:, 0]
    q = DiagonalGaussian(mu, torch.full_like(mu, 2 * math.log(sigma)))
    t = kl_decomposition(q.sample(g), q)
    cov = torch.eye(d, dtype=torch.float64) * (1 + sigma**2)
    if correlated:
        cov[0, 1] = cov[1, 0] = 1.0
    var = cov.diagonal()  # (D,): every marginal is N(0, 1 + σ²)
    # I(z; x) = H(z) - H(z|x);  TC = Σ_d H(z_d) - H(z);  KL(N(0, v) || N(0, 1)) per dimension
    mi = 0.5 * (torch.logdet(cov) - d * math.log(sigma**2))
    tc = 0.5 * (var.log().sum() - torch.logdet(cov))
    dwkl = 0.5 * (var - 1 - var.log()).sum()
    return t, (mi.item(), tc.item(), dwkl.item())


@pytest.mark.parametrize("seed", [0, 1])
def test_tc_is_about_zero_for_a_factorised_aggregate(seed):
    t, (mi, tc, dwkl) = gaussian_aggregate(correlated=False, seed=seed)
    assert tc == 0.0
    assert abs(t.tc.mean().item()) < 0.1, t.tc.mean()
    # Chen et al.'s log(N·M) normaliser would put this TC at (D - 1) log N = 15.2 nats
    assert t.mi.mean().item() == pytest.approx(mi, abs=0.15)
    assert t.dwkl.mean().item() == pytest.approx(dwkl, abs=0.1)


@pytest.mark.parametrize("seed", [0, 1])
def test_tc_is_clearly_positive_for_a_correlated_aggregate(seed):
    t, (mi, tc, dwkl) = gaussian_aggregate(correlated=True, seed=seed)
    assert tc > 0.5  # -1/2 log(1 - ρ²) with ρ = 1 / 1.16: 0.68 nats
    assert t.tc.mean().item() == pytest.approx(tc, abs=0.1)
    assert t.mi.mean().item() == pytest.approx(mi, abs=0.15)
    assert t.dwkl.mean().item() == pytest.approx(dwkl, abs=0.1)


def test_with_tc_weight_1_the_objective_is_the_elbo_in_expectation():
    model = tiny_vae(latent_dim=3, seed=3)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(3)).round()
    diffs = []
    with torch.no_grad():
        for seed in range(300):
            t = btcvae_objective(model, x, 1.0, generator=torch.Generator().manual_seed(seed))
            e = elbo(model, x, generator=torch.Generator().manual_seed(seed))
            assert t.elbo == e.elbo and t.recon == e.recon and t.kl == e.kl  # the true ELBO
            diffs.append(t.loss - e.loss)
    diffs = torch.stack(diffs)  # the sampled KL minus the analytic one, per draw
    se = diffs.std().item() / math.sqrt(len(diffs))
    assert abs(diffs.mean().item()) < 4 * se + 1e-4, (diffs.mean(), se)
    assert diffs.abs().max() > 10 * se  # each draw differs; only the expectation agrees
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    with torch.no_grad():
        t1 = btcvae_objective(model, x, 1.0, generator=g())
        t6 = btcvae_objective(model, x, 6.0, generator=g())
        half = btcvae_objective(model, x, 6.0, beta=0.5, generator=g())
    torch.testing.assert_close(t6.loss - t1.loss, 5 * t1.tc)  # the weight goes on the TC only
    torch.testing.assert_close(half.loss - t6.recon, 0.5 * (t6.loss - t6.recon))  # warm-up β


def test_config_cli_and_schema():
    assert TrainConfig().objective == "elbo"  # an old config.json without the fields
    old = {"format_version": 1, "model": ModelConfig().to_dict(), "train": {"beta": 4.0}}
    assert check_config(old)[1].objective == "elbo"
    with pytest.raises(ConfigError, match="objective must be"):
        TrainConfig(objective="factor")
    with pytest.raises(ConfigError, match="iw_samples = 1"):
        TrainConfig(objective="btcvae", iw_samples=5)
    with pytest.raises(ConfigError, match="free_bits = 0"):
        TrainConfig(objective="btcvae", free_bits=0.5)
    with pytest.raises(ConfigError, match="tc_beta must be >= 0"):
        TrainConfig(objective="btcvae", tc_beta=-1)
    with pytest.raises(ConfigError, match="batch size of at most 4096"):
        check_pair_terms(8192, 8)  # a 2 GiB pairwise matrix
    check_pair_terms(4096, 8)
    argv = ["--dataset", "digits", "--out", "r", "--objective", "btcvae", "--tc-beta", "4"]
    _, cfg, _, _ = configs_from_args(build_parser().parse_args(argv), argv)
    assert (cfg.objective, cfg.tc_beta) == ("btcvae", 4.0)
    argv = ["--dataset", "digits", "--out", "r", "--tc-beta", "4"]
    with pytest.raises(TrainingError, match="add --objective btcvae"):
        configs_from_args(build_parser().parse_args(argv), argv)


def test_the_train_form_builds_a_btcvae_config(tmp_path, monkeypatch):
    from vae.ui.training.form import parse_form

    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    v = {"name": "tc", "data_ok": True, "device_ok": True, "device": "cpu", "dataset": "shapes",
         "image_size": 16, "latent_dim": 4, "arch": "mlp", "hidden": "", "likelihood": "bernoulli",
         "epochs": 1, "batch_size": 64, "lr": "1e-3", "beta": 1.0, "warmup_steps": 0,
         "free_bits": 0.0, "seed": 0, "objective": "btcvae", "tc_beta": 6.0}  # fmt: skip
    _, cfg, errors = parse_form(v, (1, 16, 16))
    assert not errors and (cfg.objective, cfg.tc_beta) == ("btcvae", 6.0)
    _, cfg, errors = parse_form({**v, "batch_size": 65_536}, (1, 16, 16))
    assert cfg is None and "batch size of at most" in errors[0]


TINY = ModelConfig(image_shape=(1, 8, 8), arch="mlp", hidden=(32,), latent_dim=4)


def test_a_short_btcvae_run_logs_finite_terms_that_add_up_to_its_kl(tmp_path):
    cfg = TrainConfig(dataset="digits", epochs=2, batch_size=64, lr=3e-3, seed=1,
                      objective="btcvae", tc_beta=6.0)  # fmt: skip
    steps = []
    res = train(TINY, cfg, tmp_path / "r", on_step=steps.append, log_every=2,
                progress_bar=False)  # fmt: skip
    assert res.state == "finished" and res.epoch == 2
    assert steps[-1].loss < steps[0].loss
    for s in steps:
        assert all(math.isfinite(v) for v in (s.loss, s.elbo, s.mi, s.tc, s.dwkl)), s
        assert s.loss == pytest.approx(s.recon + s.mi + 6 * s.tc + s.dwkl, rel=1e-5)
    lines = read_jsonl(tmp_path / "r" / "steps.jsonl")
    assert {"mi", "tc", "dwkl"} <= set(lines[0]) and not any(log_problem(r, "steps") for r in lines)
    for r in read_jsonl(tmp_path / "r" / "metrics.jsonl"):
        parts = r["train_mi"] + r["train_tc"] + r["train_dwkl"]
        assert parts == pytest.approx(r["train_kl"], abs=0.15), r  # sampled vs analytic KL
        assert r["train_elbo"] == pytest.approx(-(r["train_recon"] + r["train_kl"]))
    check_metrics(json.loads((tmp_path / "r" / "metrics.json").read_text()))
    meta = json.loads((tmp_path / "r" / "config.json").read_text())
    assert check_config(meta)[1].objective == "btcvae"
    elbo_run = train(TINY, TrainConfig(dataset="digits", epochs=1, batch_size=64, seed=1),
                     tmp_path / "e", log_every=2, progress_bar=False)  # fmt: skip
    assert elbo_run.state == "finished"
    assert "tc" not in read_jsonl(tmp_path / "e" / "steps.jsonl")[0]
    assert "train_tc" not in read_jsonl(tmp_path / "e" / "metrics.jsonl")[0]


def test_a_btcvae_run_resumed_mid_epoch_logs_what_an_uninterrupted_one_does(tmp_path):
    cfg = TrainConfig(dataset="digits", epochs=2, batch_size=64, lr=3e-3, seed=1,
                      objective="btcvae", tc_beta=6.0)  # fmt: skip
    train(TINY, cfg, tmp_path / "full", progress_bar=False)

    def stop_at_step_30(info):
        if info.step == 30:  # mid-epoch 2 (22 steps per epoch)
            (tmp_path / "part" / "STOP").touch()

    part = train(TINY, cfg, tmp_path / "part", on_step=stop_at_step_30, log_every=1,
                 progress_bar=False)  # fmt: skip
    assert part.state == "stopped" and part.step == 30
    train(TINY, cfg, tmp_path / "part", resume=True, progress_bar=False)
    full = read_jsonl(tmp_path / "full" / "metrics.jsonl")
    resumed = read_jsonl(tmp_path / "part" / "metrics.jsonl")
    keys = ("train_loss", "train_kl", "train_mi", "train_tc", "train_dwkl")
    assert [[r[k] for k in keys] for r in full] == [[r[k] for k in keys] for r in resumed]
