"""How good is a trained VAE, and what did its latent space learn?

- ELBO and its parts, per image or averaged (Kingma & Welling 2013, Eq. 3).
- IWAE negative log-likelihood estimate (Burda et al. 2015, "Importance Weighted Autoencoders").
- KL per latent dimension and active units (Burda et al. 2015, Sec. 5.2).
- MIG, the mutual information gap (Chen et al. 2018, "Isolating Sources of Disentanglement in
  VAEs", Sec. 4), with the histogram estimator of disentanglement_lib (Locatello et al. 2019).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vae.latents import encode_dataset
from vae.model import VAE, cpu_inference_layout
from vae.objectives import dynamic_binarize, iwae
from vae.thresholds import ACTIVE_UNIT

Progress = Callable[[int, int], None]  # (images done, total)


def _device(model: VAE) -> torch.device:
    return next(model.parameters()).device


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


# --- ELBO -----------------------------------------------------------------------------------------
@torch.no_grad()
def _elbo_parts(
    model: VAE, x: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-sample log p(x|z), z ~ q(z|x), and KL(q(z|x) || p(z)); both (B,). The KL is in
    closed form for N(0, I), and log q(z|x) - log p(z) at the same z for a mixture prior."""
    params, q, z = model(x, generator)
    return model.log_likelihood(params.float(), x.float()), model.kl(q, z)


@torch.no_grad()
def per_image_elbo(
    model: VAE, x: torch.Tensor, batch_size: int = 512, seed: int = 0
) -> torch.Tensor:
    """ELBO of every image in nats, (N,), CPU. Higher means the model finds the image more typical.

    Seeded, so the same image gets the same value every time it is asked about.
    """
    dev = _device(model)
    gen = _generator(dev, seed)
    out = []
    with cpu_inference_layout(model):
        for i in range(0, x.shape[0], batch_size):
            ll, kl = _elbo_parts(model, x[i : i + batch_size].to(dev), gen)  # (b,), (b,)
            out.append((ll - kl).cpu())
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def evaluate_elbo(
    model: VAE,
    x: torch.Tensor,
    batch_size: int = 512,
    binarize: bool = False,
    seed: int = 0,
) -> dict[str, float]:
    """Dataset means of the ELBO, the reconstruction term -E_q[log p(x|z)] and the KL, in nats."""
    dev = _device(model)
    gen = _generator(dev, seed)
    ll_sum = kl_sum = 0.0
    with cpu_inference_layout(model):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size].to(dev)
            if binarize:
                xb = dynamic_binarize(xb, gen)
            ll, kl = _elbo_parts(model, xb, gen)
            ll_sum += ll.sum().item()
            kl_sum += kl.sum().item()
    n = max(1, x.shape[0])
    recon, kl = -ll_sum / n, kl_sum / n
    return {"elbo": -(recon + kl), "recon": recon, "kl": kl}


@torch.no_grad()
def iwae_nll(
    model: VAE,
    x: torch.Tensor,
    k: int = 5000,
    batch_size: int = 100,
    binarize: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
) -> float:
    """Mean of -log p̂_k(x) in nats, the importance-weighted bound of Burda et al. 2015, Eq. 8.

    With `binarize`, each test image is binarized once with a seeded Bernoulli draw
    (Salakhutdinov & Murray 2008), as is usual for Bernoulli models of grey MNIST.
    """
    dev = _device(model)
    gen = _generator(dev, seed)
    n = x.shape[0]
    pixels = int(np.prod(x.shape[1:]))
    # Samples decoded at once per chunk: keep each chunk's (chunk * batch, C, H, W) under ~64 MB.
    chunk = max(1, min(k, (16 * 1024 * 1024) // max(1, batch_size * pixels)))
    total = 0.0
    with cpu_inference_layout(model):
        for i in range(0, n, batch_size):
            xb = x[i : i + batch_size].to(dev)
            if binarize:
                xb = dynamic_binarize(xb, gen)
            bound = iwae(model, xb, k=k, chunk=chunk, generator=gen)  # (b,)
            total -= bound.double().sum().item()
            if progress is not None:
                progress(min(i + batch_size, n), n)
    return total / max(1, n)


# --- latent usage ---------------------------------------------------------------------------------
@torch.no_grad()
def kl_per_dim(model: VAE, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Mean over the dataset of KL(q(z_d|x) || p(z_d)) for each dimension d, (D,), CPU: p(z_d)
    is N(0, 1), or a mixture prior's marginal (`VAE.kl_per_dim`)."""
    dev = _device(model)
    total = torch.zeros(model.config.latent_dim, dtype=torch.float64)
    with cpu_inference_layout(model):
        for i in range(0, x.shape[0], batch_size):
            q = model.encode(x[i : i + batch_size].to(dev))
            total += model.kl_per_dim(q).double().sum(0).cpu()  # (D,)
    return (total / max(1, x.shape[0])).float()


def active_units(
    model: VAE, x: torch.Tensor, threshold: float = ACTIVE_UNIT, batch_size: int = 1024
) -> tuple[int, torch.Tensor]:
    """Number of active units and the activity A_d = Cov_x(E_{q(z|x)}[z_d]) of every dimension.

    A unit is active when A_d > 0.01 (Burda et al. 2015, Sec. 5.2, Eq. 16): its posterior mean
    moves with the input. Returns (count, activity (D,)).
    """
    mean, _ = encode_dataset(model, x, batch_size)  # (N, D)
    activity = mean.double().var(0, correction=0).float()  # (D,)
    return int((activity > threshold).sum().item()), activity


# --- MIG ------------------------------------------------------------------------------------------
def _discretize(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of every value in `n_bins` equal-width bins over its range, (N,)."""
    edges = np.histogram_bin_edges(values, bins=n_bins)
    return np.digitize(values, edges[1:-1])


def mutual_info_matrix(
    latent_means: np.ndarray | torch.Tensor, factors: np.ndarray | torch.Tensor, n_bins: int = 20
) -> np.ndarray:
    """I(v_k; z_d) in nats between every factor k and every discretised latent mean d, (F, D).

    Each latent mean is discretised into `n_bins` equal-width bins, then the plug-in estimate of
    `sklearn.metrics.mutual_info_score` is used, as in disentanglement_lib.
    """
    from sklearn.metrics import mutual_info_score  # lazy: sklearn takes seconds to import

    z = np.asarray(latent_means, dtype=np.float64)  # (N, D)
    v = np.asarray(factors)  # (N, F)
    if z.ndim != 2 or v.ndim != 2 or z.shape[0] != v.shape[0]:
        raise ValueError(f"need latent_means (N, D) and factors (N, F), got {z.shape}, {v.shape}")
    if z.shape[1] < 2:
        raise ValueError("MIG needs at least 2 latent dimensions")
    zb = [_discretize(z[:, d], n_bins) for d in range(z.shape[1])]
    return np.array(
        [[mutual_info_score(v[:, k], zb[d]) for d in range(z.shape[1])] for k in range(v.shape[1])]
    )


def mig(
    latent_means: np.ndarray | torch.Tensor,
    factors: np.ndarray | torch.Tensor,
    factor_sizes: list[int],
    n_bins: int = 20,
) -> dict[str, Any]:
    """Mutual information gap, Chen et al. 2018, Eq. 6:

        MIG = 1/K Σ_k (I(v_k; z_j(k)) - I(v_k; z_j'(k))) / H(v_k),

    with j(k), j'(k) the latents of highest and second highest MI with factor k. Factors with a
    single value (H = 0) get `None` and are left out of the mean.
    """
    v = np.asarray(factors)
    if v.ndim != 2 or v.shape[1] != len(factor_sizes):
        raise ValueError(f"factors has shape {v.shape} but {len(factor_sizes)} factor sizes given")
    if v.min() < 0 or (v >= np.asarray(factor_sizes)).any():
        raise ValueError("factor values must be indices in 0..size-1")
    from sklearn.metrics import mutual_info_score

    mi = mutual_info_matrix(latent_means, v, n_bins)  # (F, D)
    per_factor: list[float | None] = []
    for k in range(v.shape[1]):
        entropy = mutual_info_score(v[:, k], v[:, k])  # H(v_k) = I(v_k; v_k)
        if entropy <= 1e-12:
            per_factor.append(None)
            continue
        top = np.sort(mi[k])[::-1]
        per_factor.append(float((top[0] - top[1]) / entropy))
    scores = [s for s in per_factor if s is not None]
    return {
        "mig": float(np.mean(scores)) if scores else float("nan"),
        "per_factor": per_factor,
        "mi": mi,
    }


# --- 2-D maps -------------------------------------------------------------------------------------
def knn_preservation(high: np.ndarray, low: np.ndarray, k: int = 10) -> float:
    """Mean overlap |kNN_high(i) ∩ kNN_low(i)| / k over points, self excluded (in [0, 1]): how
    well a 2-D map `low` (N, 2) keeps the neighbourhoods of `high` (N, D). Bad input raises
    `vae.projection.ProjectionError` (a ValueError)."""
    from sklearn.neighbors import NearestNeighbors

    from vae.projection.base import ProjectionError, _as_matrix

    high, low = _as_matrix(high, "high"), _as_matrix(low, "low")  # (N, D), (N, d)
    if high.shape[0] != low.shape[0]:
        raise ProjectionError(f"high has {high.shape[0]} rows, low has {low.shape[0]}")
    if not 1 <= k < high.shape[0]:
        raise ProjectionError(f"k must be in 1..{high.shape[0] - 1}, got {k}")
    a = NearestNeighbors(n_neighbors=k).fit(high).kneighbors(return_distance=False)  # (N, k)
    b = NearestNeighbors(n_neighbors=k).fit(low).kneighbors(return_distance=False)  # (N, k)
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)  # (N, 2k): shared ids appear twice
    shared = (both[:, 1:] == both[:, :-1]).sum(axis=1)  # (N,)
    return float(shared.mean() / k)
