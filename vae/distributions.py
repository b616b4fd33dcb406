"""The diagonal Gaussian posterior q(z|x) = N(mean, diag(exp(logvar)))."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian:
    """A batch of diagonal Gaussians over the last dimension; `mean` and `logvar` are (B, D)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor) -> None:
        self.mean = mean
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(
        self, generator: torch.Generator | None = None, n: int | None = None
    ) -> torch.Tensor:
        """Reparameterised sample z = mean + std * eps (Kingma & Welling 2013, Sec. 2.4).

        (B, D), or (n, B, D) with `n` independent samples per posterior.
        """
        shape = self.mean.shape if n is None else (n, *self.mean.shape)
        eps = torch.randn(
            shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps  # (B, D) or (n, B, D)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl_per_dim(self) -> torch.Tensor:
        """KL(q || N(0, I)) per dimension, -1/2 (1 + logvar - mean^2 - var) (K&W 2013, App. B)."""
        return -0.5 * (1 + self.logvar - self.mean.pow(2) - self.var)  # (B, D)

    def kl(self) -> torch.Tensor:
        return self.kl_per_dim().sum(-1)  # (B,)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z) summed over the last dim; z may have extra leading dims, e.g. (K, B, D)."""
        return -0.5 * (LOG_2PI + self.logvar + (z - self.mean).pow(2) / self.var).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
