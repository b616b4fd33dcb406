"""The default map of a run: its latent table and its 2-D projections, on disk.

The app, a finished training job and the shipping command all make the same map the same way
and find it under the same key in the same cache, so whoever makes it first saves the others
the wait.

    arrays = latent_table(run)                 # a class-balanced sample of the test split, encoded
    proj = projection(run, arrays, "tsne")     # cached, shipped, or fitted (and then cached)
    python -m vae.mapping runs/my-vae                          # make the t-SNE map now
    python -m vae.mapping assets/mnist-conv --methods tsne umap --ship   # the shipped maps

The latent table holds the sample's rows, posterior means and log-variances, each image's KL
and the mean KL per dimension (Kingma & Welling 2013, App. B). A shipped map
(`<run>/maps/*.safetensors`) holds only the embedding and a per-row probe of the latents it
was made from: it is used when key and latents match, and recomputed otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vae import diskcache
from vae.checkpoint import Run
from vae.data import ImageDataset

TABLE_VERSION = 3  # 2: the ELBO columns moved out; 3: recon = -elbo - kl (was kl - elbo)
MEANS_VERSION = 1  # part of projection cache keys: bump when the table's latent means change
DEFAULT_N = 10_000  # images on a map unless the user picks another number
MIN_TEST_IMAGES = 1000  # below this the map uses the whole dataset (sklearn digits: 270 test)
SHIPPED_DIR = "maps"  # inside a run folder: maps shipped with the model
Progress = Callable[[float, str], None]


def map_dataset(run: Run) -> ImageDataset:
    """The images a map shows: the test split, or all of the data when the test split is tiny.

    `ds.extra["split"]` says which. Raises DatasetError when the data is not on disk."""
    from vae.latents import run_dataset

    ds = run_dataset(run, "test", download=False)
    if len(ds) < MIN_TEST_IMAGES:
        ds = run_dataset(run, "all", download=False)
        ds.extra["split"] = "all"
    else:
        ds.extra["split"] = "test"
    return ds


def default_size(n_images: int) -> int:
    return int(min(DEFAULT_N, n_images))


def prior_kls(model: Any, mean: Any, logvar: Any, seed: int, samples: int = 64) -> tuple[Any, Any]:
    """For a mixture prior: each image's KL (a seeded `samples`-sample estimate) and the KL of
    every dimension to the prior's marginal; CPU tensors (N,) and (N, D)."""
    import torch

    from vae.distributions import DiagonalGaussian

    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    kl, kl_d = [], []
    with torch.no_grad():
        for i in range(0, mean.shape[0], 512):
            q = DiagonalGaussian(mean[i : i + 512].to(dev), logvar[i : i + 512].to(dev))
            kl.append(model.prior.kl_estimate(q, samples=samples, generator=gen).cpu())
            kl_d.append(model.kl_per_dim(q).cpu())
    return torch.cat(kl), torch.cat(kl_d)


def compute_table(run: Run, n: int, seed: int, ds: ImageDataset | None = None) -> dict:
    """Encode a class-balanced sample of `n` images of `map_dataset(run)` (one encoder pass)."""
    import torch

    from vae.latents import encode_dataset
    from vae.projection import stratified_sample

    ds = ds if ds is not None else map_dataset(run)
    labels = None if ds.y is None else ds.y.numpy()
    rows = stratified_sample(labels, n, seed, total=len(ds)).astype(np.int64)  # sorted
    x = ds.x[torch.from_numpy(rows)]  # (N, C, H, W)
    mean, logvar = encode_dataset(run.model, x)  # (N, D), (N, D)
    if getattr(run.model, "learned_prior", False):
        kl, kl_d = prior_kls(run.model, mean, logvar, seed)  # (N,), (N, D)
    else:
        kl_d = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)  # K&W 2013, App. B; (N, D)
        kl = kl_d.sum(1)
    out = {
        "rows": rows,
        "mean": mean.numpy(),
        "logvar": logvar.numpy(),
        "kl": kl.numpy(),
        "kl_per_dim": kl_d.mean(0).numpy(),
        "split": np.array(ds.extra.get("split", "test")),
    }
    if labels is not None:
        out["labels"] = labels[rows]
    if ds.factors is not None:
        out["factors"] = ds.factors.numpy()[rows]
    return out


def latent_table(
    run: Run, n: int | None = None, seed: int = 0, ds: ImageDataset | None = None
) -> dict[str, np.ndarray]:
    """The table of `n` images (default: up to 10,000), from the disk cache or computed."""
    if n is None:
        ds = ds if ds is not None else map_dataset(run)
        n = default_size(len(ds))
    return diskcache.cached_arrays(
        run.path, "latents", TABLE_VERSION, f"n{n}-s{seed}", lambda: compute_table(run, n, seed, ds)
    )


def projection_key(run: Run, n: int, seed: int) -> dict[str, Any]:
    """What a map's latents come from: the weights, the sample size and seed, the table layout."""
    return {
        "run": diskcache.run_id(run.path),
        "n": int(n),
        "seed": int(seed),
        "table": MEANS_VERSION,
    }


def projection(
    run: Run,
    table: dict[str, np.ndarray],
    method: str = "tsne",
    seed: int = 0,
    progress: Progress | None = None,
    snapshot: Any = None,
    **fit_options: Any,
) -> Any:
    """The map of `table["mean"]`: from the disk cache, else shipped with the model, else fitted
    (and then cached). Raises `vae.projection.ProjectionError`."""
    from vae.projection import cached_fit

    mean = table["mean"]
    return cached_fit(
        diskcache.cache_dir(run.path),
        projection_key(run, len(mean), seed),
        mean,
        method,
        seed=seed,
        progress=progress,
        shipped=run.path / SHIPPED_DIR,
        snapshot=snapshot,
        **fit_options,
    )


def cached_projection(
    run: Run, table: dict[str, np.ndarray], method: str = "tsne", seed: int = 0, **params: Any
) -> Any:
    """The map if it is in the disk cache or shipped with the model, without fitting; else None."""
    from vae.projection import ProjectionCache

    mean = np.asarray(table["mean"], np.float32)
    try:
        cache = ProjectionCache(diskcache.cache_dir(run.path), run.path / SHIPPED_DIR)
    except OSError:
        return None
    full = cache.full_key(projection_key(run, len(mean), seed), method, seed, params)
    hit = cache.load(full, expected_shape=mean.shape)
    return hit if hit is not None else cache.load_shipped(full, mean)


def prepare(run: Run, methods: tuple[str, ...] = ("tsne",), progress: Progress | None = None):
    """Make the default maps now (e.g. in a training job when it ends), so that opening the run
    in the app shows them at once. Returns the projections by method."""
    table = latent_table(run)
    return {m: projection(run, table, m, progress=progress) for m in methods}


def ship(run: Run, methods: tuple[str, ...] = ("tsne",)) -> list[Path]:
    """Write the compact maps of the default sample into `<run>/maps/` (to be committed with a
    shipped model). Reuses the cache when the maps are there."""
    from vae.projection import ProjectionCache

    table = latent_table(run)
    mean = table["mean"]
    cache = ProjectionCache(diskcache.cache_dir(run.path), run.path / SHIPPED_DIR)
    key = projection_key(run, len(mean), 0)
    out = []
    for m in methods:
        proj = cache.get_or_fit(key, mean, m, 0, _print_progress)
        full = cache.full_key(key, m, 0, {})
        out.append(cache.save_shipped(full, proj, mean, 0))
    return out


def _print_progress(frac: float, message: str) -> None:
    print(f"\r{100 * frac:5.1f}% {message:<70}", end="", file=sys.stderr, flush=True)
    if frac >= 1.0:
        print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from vae.checkpoint import CheckpointError, load_run
    from vae.data import DatasetError
    from vae.projection import ProjectionError

    p = argparse.ArgumentParser(prog="python -m vae.mapping", description=__doc__.split("\n")[0])
    p.add_argument("run", help="a run folder (config.json + model.safetensors)")
    p.add_argument("--methods", nargs="+", default=["tsne"], choices=["tsne", "umap"])
    p.add_argument("--ship", action="store_true", help=f"write <run>/{SHIPPED_DIR}/ to commit")
    args = p.parse_args(argv)
    try:
        run = load_run(args.run, device="cpu")
        if args.ship:
            for path in ship(run, tuple(args.methods)):
                print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")
        else:
            prepare(run, tuple(args.methods), _print_progress)
            print(f"maps of {args.run} are in the disk cache: {', '.join(args.methods)}")
    except (CheckpointError, DatasetError, ProjectionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
