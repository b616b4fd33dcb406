"""Everything the training loop needs, built once: ranks, device, data, model, optimiser, resume.

`setup()` returns a `Setup`; `save_checkpoint()` writes the weights, optimiser and RNG state that
`setup(resume=True)` reads back, all in one train_state file so they always belong to one step.
That file is written last and names the sha256 of the model.safetensors saved with it, so a save
cut short between the two is seen on resume, which goes on from the last whole state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from vae.checkpoint import (
    CheckpointError,
    load_train_state,
    save_model,
    save_train_state,
    weights_hash,
)
from vae.config import ConfigError, ModelConfig, TrainConfig
from vae.data import load_dataset
from vae.device import resolve_device
from vae.model import VAE
from vae.objectives import check_pair_terms
from vae.record import binarize_rule
from vae.train.stopping import TrainingError
from vae.train.sums import EMPTY_SUMS


@dataclass
class Setup:
    """The built run. `step`, `epoch`, `batch_in_epoch`, `epoch_acc` and `wall_s` say where the
    loop starts: all zero for a fresh run, the saved position for a resumed one."""

    cfg: TrainConfig
    rank: int
    world: int  # number of processes (1 without torchrun)
    device: torch.device
    x_train: torch.Tensor  # (N, C, H, W), resident on the device
    x_test: torch.Tensor  # (M, C, H, W)
    binarize: bool  # dynamic binarization (Salakhutdinov & Murray 2008) of every batch
    dataset_info: dict[str, Any]
    model: VAE
    fwd: torch.nn.Module  # what the loop calls: the model, maybe wrapped in DDP and compiled
    opt: torch.optim.Optimizer
    use_amp: bool  # bf16 autocast (CUDA only)
    per_rank_batch: int
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    epoch_acc: dict[str, Any] = field(default_factory=lambda: dict(EMPTY_SUMS))
    wall_s: float = 0.0  # wall time of the run before this process
    weights_sha256: str | None = None  # resumed: the model.safetensors saved with the state

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) for a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def init_device(name: str, world: int) -> torch.device:
    """Resolve `--device`; under torchrun, pin this rank's GPU and join the process group."""
    device = resolve_device(name)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def build_optimizer(model: VAE, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019); a mixture prior's parameters form a second group, at
    `prior_lr`."""
    return torch.optim.AdamW(
        param_groups(model, cfg),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        fused=device.type in ("cpu", "cuda"),  # one kernel for all parameters
    )


def param_groups(model: VAE, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The encoder and decoder at `lr`, then (mixture prior only) the prior at `prior_lr`."""
    rest = [p for n, p in model.named_parameters() if not n.startswith("prior.")]
    groups: list[dict[str, Any]] = [{"params": rest, "lr": cfg.lr}]
    if model.learned_prior:
        groups.append({"params": list(model.prior.parameters()), "lr": cfg.prior_lr or cfg.lr})
    return groups


def setup(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    max_steps: int | None = None,
) -> Setup:
    """Build the run in `run_dir`: fresh, or (`resume`) from its train_state."""
    rank, world = ranks()
    if model_cfg.prior == "mixture" and (cfg.objective == "btcvae" or cfg.free_bits > 0):
        raise ConfigError(
            "β-TCVAE and free bits split the KL to N(0, I) by dimension; use them with "
            "--prior normal"
        )
    if cfg.objective == "btcvae":  # before anything is loaded
        check_pair_terms(max(1, cfg.batch_size // world), model_cfg.latent_dim)
    device = init_device(cfg.device, world)

    # data, resident on the device
    train_ds = load_dataset(cfg.dataset, "train", cfg.data_dir, image_size=cfg.image_size)
    test_ds = load_dataset(cfg.dataset, "test", cfg.data_dir, image_size=cfg.image_size)
    check_splits(cfg.dataset, len(train_ds), len(test_ds), train_ds.extra.get("source"))
    if tuple(train_ds.image_shape) != tuple(model_cfg.image_shape):
        raise TrainingError(
            f"dataset {cfg.dataset} has images of shape {train_ds.image_shape}, but the model "
            f"expects {model_cfg.image_shape}"
        )
    binarize = binarize_rule(cfg.binarize, model_cfg.likelihood, train_ds.binary_like)
    x_train = train_ds.x.to(device)  # (N, C, H, W)
    x_test = test_ds.x.to(device)  # (M, C, H, W)

    # model and optimiser, then the saved state over them
    torch.manual_seed(cfg.seed)
    model = VAE(model_cfg).to(device)
    opt = build_optimizer(model, cfg, device)
    if resume:
        start = resume_state(run_dir, model, opt)
    else:
        start = {}
        if cfg.init:
            init_from_run(model, Path(cfg.init), x_train, binarize)
    for group, lr in zip(opt.param_groups, (cfg.lr, cfg.prior_lr or cfg.lr), strict=False):
        group["lr"] = lr  # a resumed run may have been given a new lr
    model.train()
    fwd: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        fwd = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        fwd = torch.compile(fwd)

    # each rank takes every world-th image of the epoch's permutation, in per-rank batches
    per_rank_batch = max(1, cfg.batch_size // world)
    steps_per_epoch = max(1, (x_train.shape[0] // world) // per_rank_batch)
    total_steps = steps_per_epoch * cfg.epochs
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    return Setup(
        cfg=cfg,
        rank=rank,
        world=world,
        device=device,
        x_train=x_train,
        x_test=x_test,
        binarize=binarize,
        dataset_info=train_ds.info(),
        model=model,
        fwd=fwd,
        opt=opt,
        use_amp=cfg.amp and device.type == "cuda",
        per_rank_batch=per_rank_batch,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        **start,
    )


def check_splits(dataset: str, n_train: int, n_test: int, source: str | None = None) -> None:
    """Refuse an empty split before training on it (an empty batch has a NaN loss)."""
    if n_train > 0 and n_test > 0:
        return
    where = f"{dataset!r}" + (f" ({source})" if source else "")
    if n_train == 0:
        raise TrainingError(
            f"the training split of {where} is empty: the dataset has {n_train + n_test} "
            f"image(s), and the test split takes {n_test}. Add images: a seeded split keeps "
            "15% (at least 1) for testing, so training needs at least 2."
        )
    raise TrainingError(f"the test split of {where} is empty; the per-epoch test ELBO needs it")


@torch.no_grad()
def init_from_run(model: VAE, run_dir: Path, x_train: torch.Tensor, binarize: bool) -> None:
    """Copy the encoder and decoder of `run_dir` into `model`; a mixture prior that the run
    lacks starts at the posteriors of K random training images (seeded by the run's seed)."""
    from vae.checkpoint import load_run

    src = load_run(run_dir, device=next(model.parameters()).device)
    own = {k: v for k, v in src.model.state_dict().items() if not k.startswith("prior.")}
    missing, unexpected = model.load_state_dict(own, strict=False)
    if unexpected or any(not k.startswith("prior.") for k in missing):
        raise CheckpointError(
            f"{run_dir} does not match this model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    if model.learned_prior and not src.model.learned_prior:
        k = model.prior.means.shape[0]
        rows = torch.randperm(x_train.shape[0], device="cpu")[:k].to(x_train.device)
        x = x_train[rows]
        if binarize:
            x = (x > 0.5).to(x.dtype)
        model.prior.init_from_posteriors(model.encode(x))
    elif model.learned_prior:
        model.prior.load_state_dict(
            {
                k.removeprefix("prior."): v
                for k, v in src.model.state_dict().items()
                if k.startswith("prior.")
            }
        )


def resume_state(run_dir: Path, model: VAE, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Load weights, optimiser and torch RNG in place; returns where the run stopped."""
    rest, meta = load_train_state(run_dir, opt)
    weights = {k.removeprefix("model."): v for k, v in rest.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{run_dir}: train_state does not match the model: {e}") from None
    if "rng.torch" in rest:
        torch.set_rng_state(rest["rng.torch"])
    return {
        "step": int(meta["step"]),
        "epoch": int(meta["epoch"]),
        "batch_in_epoch": int(meta["batch_in_epoch"]),
        "epoch_acc": dict(meta.get("epoch_acc", EMPTY_SUMS)),
        "wall_s": float(meta.get("wall_s", 0.0)),
        "weights_sha256": meta.get("weights_sha256"),
    }


def save_checkpoint(
    s: Setup,
    run_dir: Path,
    command: str,
    *,
    step: int,
    epoch: int,
    batch_in_epoch: int,
    epoch_acc: dict[str, Any],
    wall_s: float,
) -> None:
    """Weights and config.json (the loadable model), then the train_state to resume from, which
    names the weights' sha256. Rank 0 only; the other ranks hold the same weights."""
    if not s.is_main:
        return
    save_model(run_dir, s.model, dataset=s.dataset_info, train=s.cfg.to_dict(), command=command)
    tensors = {"rng.torch": torch.get_rng_state()}
    tensors.update({f"model.{k}": v for k, v in s.model.state_dict().items()})
    meta = {
        "step": step,
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "epoch_acc": epoch_acc,
        "wall_s": wall_s,
        "weights_sha256": weights_hash(run_dir),
    }
    save_train_state(run_dir, s.opt, tensors, meta)
