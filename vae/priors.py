"""Priors p(z): the standard normal N(0, I), or a learned mixture of diagonal Gaussians.

A mixture prior p(z) = Σ_k π_k N(z; μ_k, diag σ_k²) with learned π, μ, σ is the "MoG prior" of
Tomczak & Welling 2018 ("VAE with a VampPrior", Sec. 2.2 and their Table 2): it lets the prior
follow the aggregate posterior instead of pulling every code towards one round blob.

With a mixture the KL(q(z|x) || p(z)) has no closed form. Per image it is estimated by sampling
(`MixturePrior.kl_estimate`); per dimension the app shows KL(q(z_d|x) || p(z_d)) to the prior's
marginal of that dimension, a 1-D mixture, computed by Gauss–Hermite quadrature. The mixture ties
the dimensions together, so the per-dimension values do not add up to the total KL.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from vae.distributions import LOG_2PI, DiagonalGaussian

LOGVAR_RANGE = (-9.0, 5.0)  # component σ in about 0.011..12: keeps log N finite and gradients sane
QUADRATURE_NODES = 24  # Gauss–Hermite nodes for the 1-D marginal KL (exact to ~1e-4 nats here)
CHUNK = 256  # posteriors per quadrature block: (256, D, nodes, K) stays under ~100 MB for K=64


class MixturePrior(nn.Module):
    """p(z) = Σ_k softmax(logits)_k N(z; means_k, diag exp(logvars_k)), K components over D dims."""

    def __init__(self, components: int, dim: int) -> None:
        super().__init__()
        self.means = nn.Parameter(torch.randn(components, dim))  # (K, D)
        self.logvars = nn.Parameter(torch.zeros(components, dim))  # (K, D)
        self.logits = nn.Parameter(torch.zeros(components))  # (K,)

    def _parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logvar = self.logvars.float().clamp(*LOGVAR_RANGE)  # (K, D)
        return self.means.float(), logvar, torch.log_softmax(self.logits.float(), 0)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z of shape (..., D); returns (...), float32."""
        mean, logvar, log_pi = self._parts()
        d = z.float().unsqueeze(-2) - mean  # (..., K, D)
        comp = -0.5 * (LOG_2PI + logvar + d.pow(2) * torch.exp(-logvar)).sum(-1)  # (..., K)
        return torch.logsumexp(comp + log_pi, -1)  # (...)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws z ~ p(z), (n, D): a component k ~ π, then z = μ_k + σ_k ε."""
        mean, logvar, log_pi = self._parts()
        dev = mean.device
        k = torch.multinomial(log_pi.exp().cpu(), n, replacement=True, generator=_cpu(generator))
        eps = torch.randn(n, mean.shape[1], generator=_cpu(generator))  # (n, D)
        z = mean[k.to(dev)] + torch.exp(0.5 * logvar[k.to(dev)]) * eps.to(dev)  # (n, D)
        return z.to(self.means.dtype)

    def kl_estimate(
        self, q: DiagonalGaussian, samples: int = 16, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Monte Carlo KL(q(z|x) || p(z)) = E_q[log q(z|x) - log p(z)] per posterior, (B,)."""
        z = q.sample(generator, n=samples)  # (S, B, D)
        return (q.log_prob(z).float() - self.log_prob(z)).mean(0)

    def marginal_kl(self, q: DiagonalGaussian) -> torch.Tensor:
        """KL(q(z_d|x) || p(z_d)) for every posterior and dimension, (B, D), float32.

        E_q[log q(z_d)] is -(log 2π + logvar + 1) / 2; E_q[log p(z_d)] is a 1-D Gaussian
        expectation, Σ_i w_i f(μ + √2 σ t_i) / √π with Gauss–Hermite nodes t_i and weights w_i.
        """
        t, w = np.polynomial.hermite.hermgauss(QUADRATURE_NODES)
        mean_k, logvar_k, log_pi = self._parts()  # (K, D), (K, D), (K,)
        dev = mean_k.device
        t = torch.as_tensor(t, dtype=torch.float32, device=dev)  # (n,)
        log_w = torch.as_tensor(np.log(w / math.sqrt(math.pi)), dtype=torch.float32, device=dev)
        out = []
        for i in range(0, q.mean.shape[0], CHUNK):
            m = q.mean[i : i + CHUNK].float()  # (b, D)
            lv = q.logvar[i : i + CHUNK].float()  # (b, D)
            z = m[..., None] + math.sqrt(2) * torch.exp(0.5 * lv)[..., None] * t  # (b, D, n)
            d = z[..., None] - mean_k.T[:, None, :]  # (b, D, n, K)
            comp = -0.5 * (
                LOG_2PI + logvar_k.T[:, None, :] + d.pow(2) * torch.exp(-logvar_k.T)[:, None, :]
            )
            log_p = torch.logsumexp(comp + log_pi, -1)  # (b, D, n): log p(z_d) at the nodes
            cross = (log_p * log_w.exp()).sum(-1)  # (b, D): E_q[log p(z_d)]
            out.append(-0.5 * (LOG_2PI + lv + 1) - cross)
        return torch.cat(out) if out else torch.zeros(0, mean_k.shape[1], device=dev)

    @torch.no_grad()
    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior's mean and per-dimension standard deviation (of each marginal), (D,) each."""
        mean, logvar, log_pi = self._parts()
        pi = log_pi.exp()[:, None]  # (K, 1)
        mu = (pi * mean).sum(0)  # (D,)
        second = (pi * (logvar.exp() + mean.pow(2))).sum(0)  # (D,)
        return mu, (second - mu.pow(2)).clamp_min(0).sqrt()

    @torch.no_grad()
    def init_from_posteriors(self, q: DiagonalGaussian) -> None:
        """Start the components at K posteriors' means with unit variance, equal weights."""
        self.means.copy_(q.mean[: self.means.shape[0]].to(self.means))
        self.logvars.zero_()
        self.logits.zero_()


def _cpu(generator: torch.Generator | None) -> torch.Generator | None:
    """Component draws are made on the CPU; a CUDA generator is replaced by a seeded CPU one."""
    if generator is None or generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(int(generator.initial_seed()))
