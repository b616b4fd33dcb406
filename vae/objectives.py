"""Training objectives: the ELBO (with β, warm-up and free bits) and the IWAE bound."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vae.distributions import DiagonalGaussian, standard_normal_log_prob
from vae.model import VAE, unwrap


@dataclass
class ELBOTerms:
    """Per-batch means. `loss` is what is minimised; `elbo` is the true (β=1) bound in nats."""

    loss: torch.Tensor
    elbo: torch.Tensor
    recon: torch.Tensor  # -E_q[log p(x|z)] per sample
    kl: torch.Tensor  # KL(q(z|x) || p(z)) per sample
    kl_per_dim: torch.Tensor  # (D,)


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
    params, q, _ = model(x, generator)  # model may be wrapped by DDP or torch.compile
    ll = unwrap(model).log_likelihood(params.float(), x.float())  # (B,)
    kl_d = q.kl_per_dim().float()  # (B, D)
    kl_per_dim = kl_d.mean(0)  # (D,)
    recon = -ll.mean()
    kl = kl_d.sum(-1).mean()
    kl_loss = kl_per_dim.clamp_min(free_bits).sum() if free_bits > 0 else kl
    return ELBOTerms(
        loss=recon + beta * kl_loss,
        elbo=-(recon + kl),
        recon=recon,
        kl=kl,
        kl_per_dim=kl_per_dim,
    )


def _log_prior_ratio(z: torch.Tensor, q: DiagonalGaussian) -> torch.Tensor:
    """log p(z) - log q(z|x) for samples z of shape (k, B, D); returns (k, B)."""
    return standard_normal_log_prob(z.float()) - q.log_prob(z).float()


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
    ll = unwrap(model).log_likelihood(params.float(), x.float())  # (k, B)
    bound = torch.logsumexp(ll + beta * _log_prior_ratio(z, q), 0) - math.log(k)  # (B,)
    kl_d = q.kl_per_dim().float()  # (B, D)
    recon = -ll.mean()
    kl = kl_d.sum(-1).mean()
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
        log_w = model.log_likelihood(params, x.float()) + _log_prior_ratio(z, q)  # (n, B)
        lse = torch.logaddexp(lse, torch.logsumexp(log_w, 0))
        done += n
    return lse - math.log(k)


def dynamic_binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Resample binary pixels x ~ Bernoulli(intensity) every time (Salakhutdinov & Murray 2008).

    P(u < p) = p for u ~ U(0, 1); comparing uniforms is 3x faster than torch.bernoulli on CPU.
    """
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (u < x).to(x.dtype)
