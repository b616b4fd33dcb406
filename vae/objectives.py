"""Training objectives: the ELBO (with β, warm-up and free bits), β-TCVAE and the IWAE bound."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vae.config import ConfigError
from vae.distributions import LOG_2PI, DiagonalGaussian, standard_normal_log_prob
from vae.model import VAE, unwrap


@dataclass
class ELBOTerms:
    """Per-batch means. `loss` is what is minimised; `elbo` is the true (β=1) bound in nats."""

    loss: torch.Tensor
    elbo: torch.Tensor
    recon: torch.Tensor  # -E_q[log p(x|z)] per sample
    kl: torch.Tensor  # KL(q(z|x) || p(z)) per sample
    kl_per_dim: torch.Tensor  # (D,)
    mi: torch.Tensor | None = None  # β-TCVAE only: the KL's three parts (`kl_decomposition`)
    tc: torch.Tensor | None = None
    dwkl: torch.Tensor | None = None


def elbo(
    model: VAE,
    x: torch.Tensor,
    beta: float = 1.0,
    free_bits: float = 0.0,
    generator: torch.Generator | None = None,
) -> ELBOTerms:
    """ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z))   (Kingma & Welling 2013, Eq. 3).

    β scales the KL (Higgins et al. 2017). Free bits (Kingma et al. 2016, Eq. 15) replace each
    dimension's batch-mean KL by max(λ, KL_d) in the loss only.
    """
    params, q, z = model(x, generator)  # model may be wrapped by DDP or torch.compile
    vae = unwrap(model)
    ll = vae.log_likelihood(params.float(), x.float())  # (B,)
    recon = -ll.mean()
    if vae.learned_prior:  # no closed form: log q(z|x) - log p(z) at the sample (Tomczak 2018)
        kl = vae.kl(q, z).mean()
        with torch.no_grad():
            kl_per_dim = vae.kl_per_dim(q).mean(0)  # (D,), to the prior's marginals: a log only
        kl_loss = kl
    else:
        kl_d = q.kl_per_dim().float()  # (B, D)
        kl_per_dim = kl_d.mean(0)  # (D,)
        kl = kl_d.sum(-1).mean()
        kl_loss = kl_per_dim.clamp_min(free_bits).sum() if free_bits > 0 else kl
    return ELBOTerms(
        loss=recon + beta * kl_loss,
        elbo=-(recon + kl),
        recon=recon,
        kl=kl,
        kl_per_dim=kl_per_dim,
    )


MAX_PAIR_TERMS = 1 << 27  # batch² × latent dims of β-TCVAE's pairwise matrix (512 MiB float32)


@dataclass
class KLDecomposition:
    """Per-sample terms, each (B,), adding up to log q(z|x) - log p(z) (Chen et al. 2018, Eq. 2):

    mi    log q(z|x) - log q(z)                index-code mutual information I_q(z; n)
    tc    log q(z) - Σ_d log q(z_d)            total correlation KL(q(z) || Π_d q(z_d))
    dwkl  Σ_d log q(z_d) - log p(z)            dimension-wise KL Σ_d KL(q(z_d) || p(z_d))
    """

    mi: torch.Tensor
    tc: torch.Tensor
    dwkl: torch.Tensor


def pairwise_log_q(z: torch.Tensor, q: DiagonalGaussian) -> torch.Tensor:
    """log q(z_id | x_j) for every sample i and posterior j of the batch: (B, B, D), float32."""
    mean, logvar = q.mean.float(), q.logvar.float()  # (B, D)
    diff = z.float()[:, None, :] - mean[None, :, :]  # (B, B, D): z_i - μ_j
    return -0.5 * (LOG_2PI + logvar[None] + diff.pow(2) * torch.exp(-logvar)[None])  # (B, B, D)


def kl_decomposition(z: torch.Tensor, q: DiagonalGaussian) -> KLDecomposition:
    """Split the single-sample KL of z (B, D) ~ q(z|x) into MI, TC and dimension-wise KL, with the
    batch's aggregate posterior q(z) = (1/B) Σ_j q(z|x_j):

        log q(z_i)   ≈ logsumexp_j log q(z_i|x_j) - log B
        log q(z_id)  ≈ logsumexp_j log q(z_id|x_j) - log B

    These are the sums of minibatch-weighted sampling (MWS, Chen et al. 2018), which weight
    every pair alike; the normaliser is log B where the paper has log(N·B), N the dataset size.
    A constant changes no gradient, so training is the paper's, but log(N·B) would move the
    logged terms by +log N (MI), +(D-1) log N (TC) and -D log N (dimension-wise KL): a TC of
    (D-1) log N for a factorised q(z). With log B the terms are exact for the batch's own
    aggregate posterior (the whole posterior when the batch is the dataset).
    """
    b = z.shape[0]
    log_pairs = pairwise_log_q(z, q)  # (B, B, D)
    log_qzx = log_pairs.diagonal(dim1=0, dim2=1).sum(0)  # (B,): log q(z_i | x_i), in float32
    log_qz = torch.logsumexp(log_pairs.sum(-1), 1) - math.log(b)  # (B,)
    log_prod = (torch.logsumexp(log_pairs, 1) - math.log(b)).sum(-1)  # (B,)
    log_pz = standard_normal_log_prob(z.float())  # (B,): β-TCVAE is for the N(0, I) prior
    return KLDecomposition(mi=log_qzx - log_qz, tc=log_qz - log_prod, dwkl=log_prod - log_pz)


def check_pair_terms(batch_size: int, latent_dim: int) -> None:
    """Refuse a β-TCVAE batch whose (B, B, D) pairwise matrix would not fit in memory."""
    n = batch_size * batch_size * latent_dim
    if n > MAX_PAIR_TERMS:
        most = math.isqrt(MAX_PAIR_TERMS // latent_dim)
        raise ConfigError(
            f"β-TCVAE compares every pair of images in a batch: batch size {batch_size} with a "
            f"{latent_dim}-d latent needs {n * 4 / 2**30:.1f} GiB per copy of the pairwise "
            f"matrix; use a batch size of at most {most}"
        )


def btcvae_objective(
    model: VAE,
    x: torch.Tensor,
    tc_beta: float,
    beta: float = 1.0,
    alpha: float = 1.0,
    gamma: float = 1.0,
    generator: torch.Generator | None = None,
) -> ELBOTerms:
    """β-TCVAE (Chen et al. 2018): the ELBO with its KL split by `kl_decomposition`,

        L = E_q[log p(x|z)] - β (α MI + tc_beta TC + γ dwKL),

    α = γ = 1 by default; β is the KL weight with its warm-up (1 after it), so with
    tc_beta = 1 this is the ELBO in expectation. `loss` is -L; `elbo`, `recon` and `kl` are
    the true ELBO's terms (analytic KL), as for ELBO training; `mi`, `tc`, `dwkl` the batch means.
    """
    params, q, z = model(x, generator)  # (B, C, H, W), q, (B, D)
    ll = unwrap(model).log_likelihood(params.float(), x.float())  # (B,)
    parts = kl_decomposition(z, q)
    kl_d = q.kl_per_dim().float()  # (B, D)
    recon = -ll.mean()
    kl = kl_d.sum(-1).mean()
    mi, tc, dwkl = parts.mi.mean(), parts.tc.mean(), parts.dwkl.mean()
    return ELBOTerms(
        loss=recon + beta * (alpha * mi + tc_beta * tc + gamma * dwkl),
        elbo=-(recon + kl),
        recon=recon,
        kl=kl,
        kl_per_dim=kl_d.mean(0),
        mi=mi,
        tc=tc,
        dwkl=dwkl,
    )


def _log_prior_ratio(model: VAE, z: torch.Tensor, q: DiagonalGaussian) -> torch.Tensor:
    """log p(z) - log q(z|x) for samples z of shape (k, B, D); returns (k, B)."""
    return model.prior_log_prob(z) - q.log_prob(z).float()


def iwae_objective(
    model: VAE,
    x: torch.Tensor,
    k: int,
    beta: float = 1.0,
    generator: torch.Generator | None = None,
) -> ELBOTerms:
    """Train on the k-sample importance-weighted bound (Burda et al. 2015, Eq. 8):

        L_k = E[log (1/k) Σ_i w_i],   log w_i = log p(x|z_i) + β (log p(z_i) - log q(z_i|x)).

    With β = 1 this is the IWAE bound; β < 1 (KL warm-up) down-weights the prior term as in the
    ELBO. `loss` is -L_k; `elbo`, `recon` and `kl` are the usual single-sample terms, averaged
    over the k samples, so they stay comparable with ELBO training.
    """
    params, q, z = model(x, generator, samples=k)  # (k, B, C, H, W), q, (k, B, D)
    vae = unwrap(model)
    ll = vae.log_likelihood(params.float(), x.float())  # (k, B)
    ratio = _log_prior_ratio(vae, z, q)  # (k, B)
    bound = torch.logsumexp(ll + beta * ratio, 0) - math.log(k)  # (B,)
    recon = -ll.mean()
    with torch.no_grad():
        kl_d = vae.kl_per_dim(q)  # (B, D)
    # closed form for N(0, I); for a mixture prior the k-sample mean of log q(z|x) - log p(z)
    kl = -ratio.mean().detach() if vae.learned_prior else kl_d.sum(-1).mean()
    return ELBOTerms(
        loss=-bound.mean(), elbo=-(recon + kl), recon=recon, kl=kl, kl_per_dim=kl_d.mean(0)
    )


@torch.no_grad()
def iwae(
    model: VAE,
    x: torch.Tensor,
    k: int = 5000,
    chunk: int = 250,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Importance-weighted bound log (1/k) Σ_i p(x, z_i) / q(z_i|x)  (Burda et al. 2015, Eq. 8).

    Computed over chunks of samples, merged with a running logsumexp, so k = 5000 fits in memory.
    Returns one bound per image, (B,). With k = 1 it is an unbiased single-sample ELBO estimate.
    """
    q = model.encode(x)
    lse = torch.full((x.shape[0],), -math.inf, device=x.device)  # (B,)
    done = 0
    while done < k:
        n = min(chunk, k - done)
        z = q.sample(generator, n=n)  # (n, B, D)
        params = model.decode_params(z.flatten(0, 1)).float()  # (n*B, C, H, W)
        params = params.view(n, x.shape[0], *params.shape[1:])  # (n, B, C, H, W)
        log_w = model.log_likelihood(params, x.float()) + _log_prior_ratio(model, z, q)  # (n, B)
        lse = torch.logaddexp(lse, torch.logsumexp(log_w, 0))
        done += n
    return lse - math.log(k)


def dynamic_binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Resample binary pixels x ~ Bernoulli(intensity) every time (Salakhutdinov & Murray 2008).

    P(u < p) = p for u ~ U(0, 1); comparing uniforms is 3x faster than torch.bernoulli on CPU.
    """
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (u < x).to(x.dtype)
