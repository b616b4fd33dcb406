"""Model calls for the app, numpy in and numpy out, so pages never touch torch.

All functions run without gradients on the model's device and return float32 numpy arrays.
Batches decoded by `decode` are remembered per model's weights (a page that is opened again
draws its grids without decoding them again).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from vae.checkpoint import WEIGHTS_FILE, Run
from vae.threads import app_threads

_threads_set = False


def configure_threads() -> int:
    """Set the app process's torch threads once, by `vae.threads.app_threads`."""
    global _threads_set
    if not _threads_set:
        torch.set_num_threads(app_threads())
        _threads_set = True
    return torch.get_num_threads()


def _dev(run: Run) -> torch.device:
    return next(run.model.parameters()).device


def _t(run: Run, a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32), device=_dev(run))


def decode(run: Run, z: np.ndarray) -> np.ndarray:
    """Image means for latent vectors: z (D,) -> (C, H, W), or (B, D) -> (B, C, H, W).

    A batch (B > 1) is remembered for the run's weights, so the same grid is decoded once; one
    vector (a slider's z, new each time) is always decoded afresh."""
    z = np.asarray(z, dtype=np.float32)
    key = _weights_key(run) if z.ndim == 2 and len(z) > 1 else None
    if key is None:
        return _decode(run, z)
    return _decode_batch(key, z, run)


def _weights_key(run: Run) -> str | None:
    """The run folder, its weights' (mtime, size) and the device; None without a weights file."""
    try:
        s = (run.path / WEIGHTS_FILE).stat()
    except (OSError, TypeError):
        return None
    return f"{run.path}|{s.st_mtime_ns}|{s.st_size}|{_dev(run)}"


@st.cache_data(max_entries=32, show_spinner=False)
def _decode_batch(key: str, z: np.ndarray, _run: Run) -> np.ndarray:
    return _decode(_run, z)  # (B, C, H, W); Streamlit hands each caller its own copy


@torch.no_grad()
def _decode(run: Run, z: np.ndarray) -> np.ndarray:
    zt = _t(run, z)
    out = run.model.decode(zt.reshape(-1, zt.shape[-1])).float().cpu().numpy()  # (B, C, H, W)
    return out[0] if np.ndim(z) == 1 else out


@torch.no_grad()
def encode(run: Run, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior (mean, logvar) of images x (B, C, H, W), each (B, D)."""
    q = run.model.encode(_t(run, x))
    return q.mean.float().cpu().numpy(), q.logvar.float().cpu().numpy()


@torch.no_grad()
@torch.no_grad()
def log_likelihood(run: Run, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log p(x|z) in nats of one image x (C, H, W) under each code of z (S, D): (S,).

    The reconstruction term of the ELBO, one Monte Carlo sample per code."""
    model = run.model
    params = model.decode_params(_t(run, z)).float()  # (S, C, H, W)
    return model.log_likelihood(params, _t(run, x)[None].float()).cpu().numpy()


def reconstruct(run: Run, x: np.ndarray) -> np.ndarray:
    """Decoding of each image's posterior mean, (B, C, H, W)."""
    return run.model.reconstruct(_t(run, x)).float().cpu().numpy()


@dataclass
class PriorInfo:
    """What the pages say and draw about a model's prior p(z)."""

    learned: bool  # a learned mixture (vae.priors) rather than N(0, I)
    name: str  # "N(0, I)" or "a learned mixture of 64 Gaussians"
    weights: np.ndarray | None = None  # (K,) mixture weights
    means: np.ndarray | None = None  # (K, D)
    stds: np.ndarray | None = None  # (K, D)
    mean: np.ndarray | None = None  # (D,) the prior's mean
    std: np.ndarray | None = None  # (D,) the standard deviation of each marginal p(z_d)


_NORMAL = PriorInfo(learned=False, name="N(0, I)")


@torch.no_grad()
def prior_info(run: Run | None) -> PriorInfo:
    """The prior of `run`'s model; N(0, I) for a model without a learned prior (and for None)."""
    prior = getattr(getattr(run, "model", None), "prior", None)
    if run is None or not getattr(run.model, "learned_prior", False) or prior is None:
        return _NORMAL
    mean, logvar, log_pi = prior._parts()
    mu, sd = prior.mean_std()
    k = int(mean.shape[0])
    return PriorInfo(
        learned=True,
        name=f"a learned mixture of {k} Gaussians",
        weights=log_pi.exp().cpu().numpy().astype(np.float64),
        means=mean.cpu().numpy(),
        stds=torch.exp(0.5 * logvar).cpu().numpy(),
        mean=mu.cpu().numpy(),
        std=sd.cpu().numpy(),
    )


def typical_norm(info: PriorInfo, dim: int) -> float:
    """The root-mean-square length of prior samples, sqrt(E‖z‖²): √D for N(0, I), and for a
    mixture Σ_k π_k (‖μ_k‖² + Σ_d σ_kd²) under the square root."""
    if not info.learned:
        return float(np.sqrt(dim))
    w = info.weights / info.weights.sum()  # (K,)
    second = (info.means.astype(np.float64) ** 2 + info.stds.astype(np.float64) ** 2).sum(1)  # (K,)
    return float(np.sqrt(w @ second))


def mixture_kl(
    run: Run, mean: np.ndarray, logvar: np.ndarray, seed: int = 0
) -> tuple[float, np.ndarray]:
    """For a model with a mixture prior, one posterior's KL(q(z|x) || p(z)) (a seeded
    1000-sample estimate) and its KL per dimension to the prior's marginals, (D,)."""
    from vae.mapping import prior_kls

    m, lv = (
        torch.from_numpy(np.asarray(mean[None], np.float32)),
        torch.from_numpy(np.asarray(logvar[None], np.float32)),
    )
    total, per_dim = prior_kls(run.model, m, lv, seed, samples=1000)
    return float(total[0]), per_dim[0].numpy()


def prior_draws(dim: int, n: int, seed: int | None = None, run: Run | None = None) -> np.ndarray:
    """n seeded draws z ~ p(z), (n, D): N(0, I), or for `run` with a mixture prior a component
    k ~ π for each, then z = μ_k + σ_k ε."""
    rng = np.random.default_rng(seed)
    info = prior_info(run)
    if not info.learned:
        return rng.standard_normal((n, dim)).astype(np.float32)
    k = rng.choice(len(info.weights), size=n, p=info.weights / info.weights.sum())  # (n,)
    return (info.means[k] + info.stds[k] * rng.standard_normal((n, dim))).astype(np.float32)


def prior_sample(dim: int, seed: int | None = None, run: Run | None = None) -> np.ndarray:
    """One z ~ p(z), (D,) (see `prior_draws`)."""
    return prior_draws(dim, 1, seed, run)[0]


def nearest(query: np.ndarray, means: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `means` (N, D) closest to `query` (D,): (indices (k,), distances (k,))."""
    from vae.latents import nearest as _nearest

    idx, dist = _nearest(
        torch.from_numpy(np.asarray(query, np.float32)), torch.from_numpy(means), k
    )
    return idx.numpy(), dist.numpy()


@dataclass
class Encoding:
    """One uploaded image seen through the model, as numpy (see `vae.encode.encode_image`)."""

    steps: list  # [(step name, PIL.Image)], the preprocessing of `vae.preprocess`
    x: np.ndarray  # (C, H, W) model input
    mean: np.ndarray  # (D,) posterior mean
    std: np.ndarray  # (D,) posterior standard deviation
    recon: np.ndarray  # (C, H, W) decoding of the mean
    elbo: float  # nats
    neighbours: np.ndarray  # (k,) positions in the latent table, nearest first
    distances: np.ndarray  # (k,) Euclidean distances in latent space


def encode_upload(
    run: Run, img, means: np.ndarray, labels: np.ndarray | None = None, k: int = 8
) -> Encoding:
    """Preprocess a PIL image like the run's data, encode it, and find its k nearest rows of
    `means` (N, D). Raises `vae.preprocess.PreprocessError` for images it cannot use."""
    from vae.encode import encode_image

    enc = encode_image(
        run,
        img,
        torch.from_numpy(np.asarray(means, np.float32)),
        None if labels is None else torch.from_numpy(np.asarray(labels)),
        k,
    )
    x = enc.pre.x[0].float().cpu().numpy()  # (C, H, W)
    return Encoding(
        steps=list(enc.pre.steps),
        x=x,
        mean=enc.mean.numpy(),
        std=enc.std.numpy(),
        recon=decode(run, enc.mean.numpy()),
        elbo=float(enc.elbo),
        neighbours=np.array([h["index"] for h in enc.nearest], dtype=np.int64),
        distances=np.array([h["distance"] for h in enc.nearest], dtype=np.float32),
    )


# --- the Train page's checkpoint preview ---------------------------------------------------------
@torch.no_grad()
def prior_images(run: Run, n: int, seed: int = 0) -> np.ndarray:
    """Decodings of n seeded prior draws z ~ p(z), (n, C, H, W): the same n images for the
    same seed, so successive checkpoints of a run draw comparable samples."""
    gen = torch.Generator().manual_seed(seed)
    if getattr(run.model, "learned_prior", False):
        z = run.model.prior.sample(n, gen)  # (n, D)
    else:
        z = torch.randn(n, run.config.latent_dim, generator=gen)  # (n, D)
    return run.model.decode(z.to(_dev(run))).float().cpu().numpy()


@dataclass
class ImageSample:
    """A fixed random sample of a dataset split, as numpy (see `dataset_sample`)."""

    x: np.ndarray  # (N, C, H, W) float32 images
    y: np.ndarray | None  # (N,) class indices
    label_names: list[str]


def dataset_sample(
    name: str,
    data_dir: str | None = None,
    image_size: int | None = None,
    n: int = 1000,
    split: str = "test",
    seed: int = 0,
) -> ImageSample:
    """Up to n images (and labels) of a dataset split, drawn by a seeded permutation so every
    call picks the same ones. Raises `vae.data.DatasetError` when the dataset is missing."""
    from vae.data import load_dataset

    ds = load_dataset(name, split, data_dir, image_size=image_size)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]
    return ImageSample(
        x=ds.x[idx].float().numpy(),
        y=None if ds.y is None else ds.y[idx].numpy(),
        label_names=list(ds.label_names or []),
    )
