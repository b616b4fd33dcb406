"""Train a VAE: a plain loop over in-memory data, with callbacks, safe checkpoints and resume.

    python -m vae.train --dataset digits --epochs 20 --out runs/digits
    torchrun --nproc_per_node=2 -m vae.train --dataset mnist --arch conv --out runs/mnist

The data lives on the device; a batch is an index slice of a seeded per-epoch permutation. Every
random draw of a step (reparameterisation noise, dynamic binarization) comes from a generator
seeded by (seed, rank, step), so a run stopped and resumed at any step matches an uninterrupted one.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from vae.checkpoint import (
    METRICS_JSON,
    METRICS_JSONL,
    CheckpointError,
    append_jsonl,
    atomic_write_json,
    load_train_state,
    read_config,
    save_model,
    save_train_state,
)
from vae.config import ConfigError, ModelConfig, TrainConfig
from vae.data import DatasetError, load_dataset
from vae.device import resolve_device
from vae.model import VAE
from vae.objectives import dynamic_binarize, elbo, iwae_objective
from vae.record import binarize_rule

STATUS_FILE = "status.json"
STEPS_FILE = "steps.jsonl"
LOG_FILE = "log.txt"
STOP_FILE = "STOP"
EMPTY_SUMS = {"loss": 0.0, "elbo": 0.0, "recon": 0.0, "kl": 0.0, "n": 0}


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, bad data, bad config). The message is for the user."""


@dataclass
class StepInfo:
    step: int
    epoch: int
    total_steps: int
    loss: float
    elbo: float
    recon: float
    kl: float
    beta: float


@dataclass
class EpochInfo:
    epoch: int
    step: int
    record: dict[str, Any]  # the line written to metrics.jsonl


@dataclass
class TrainResult:
    run_dir: Path
    state: str  # "finished" or "stopped"
    step: int
    epoch: int
    metrics: dict[str, Any] = field(default_factory=dict)


def step_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """The generator for one step's noise: a pure function of (seed, rank, step)."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + rank * 7_919 + step) % (2**63 - 1))
    return g


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def beta_at(step: int, cfg: TrainConfig) -> float:
    """KL warm-up: β rises linearly from 0 over `warmup_steps` (Bowman et al. 2016, Sec. 3.1)."""
    if cfg.warmup_steps <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, (step + 1) / cfg.warmup_steps)


@torch.no_grad()
def evaluate_split(
    model: VAE, x: torch.Tensor, binarize: bool, seed: int, batch_size: int = 1000
) -> dict[str, Any]:
    """Single-sample ELBO on a fixed, seeded draw: cheap and comparable across epochs."""
    model.eval()
    tot = {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    kl_d = torch.zeros(model.config.latent_dim, device=x.device)
    for i in range(0, x.shape[0], batch_size):
        g = step_generator(seed, 0, 10**9 + i, x.device)
        xb = x[i : i + batch_size]
        if binarize:
            xb = dynamic_binarize(xb, g)
        t = elbo(model, xb, generator=g)
        n = xb.shape[0]
        tot["elbo"] += t.elbo.item() * n
        tot["recon"] += t.recon.item() * n
        tot["kl"] += t.kl.item() * n
        kl_d += t.kl_per_dim * n
    model.train()
    n = x.shape[0]
    out: dict[str, Any] = {k: v / n for k, v in tot.items()}
    out["kl_per_dim"] = (kl_d / n).tolist()
    return out


class StopFlag:
    """Set by SIGTERM/SIGINT or by a STOP file in the run folder: finish the step, save, exit."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.set = False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        if threading_main():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        self.set = True

    def check(self) -> bool:
        if not self.set and (self.run_dir / STOP_FILE).exists():
            self.set = True
        return self.set


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class RunningSums:
    """The epoch's sums of loss, ELBO, reconstruction and KL, with the steps' terms buffered on
    the training device.

    A step only writes its four terms into a device buffer, so it never waits for the GPU;
    `flush()` adds them up and reads everything with one transfer every `log_every` steps, at
    the end of an epoch and before a stop, and names the first step whose loss was not finite.
    Sums are float64: products of float32 terms and batch sizes add up exactly, so a resumed run
    gets the same epoch means whatever its flush points were.
    """

    KEYS = ("loss", "elbo", "recon", "kl")

    def __init__(self, device: torch.device, acc: dict[str, Any], window: int) -> None:
        self.dtype = torch.float32 if device.type == "mps" else torch.float64  # mps: no float64
        self.totals = {k: float(acc[k]) for k in self.KEYS}
        self.n = int(acc["n"])
        self.buf = torch.zeros(max(1, window), 4, device=device)  # (window, 4) terms per step
        self.counts: list[int] = []  # batch size of each buffered step
        self.first_step = 0
        self.latest: list[float] = [math.nan] * 4  # (loss, elbo, recon, kl) of the last step read

    def add(self, terms: Any, n: int, step: int) -> None:
        """Buffer one step's terms (batch means over `n` images); `step` counts from 1."""
        if not self.counts:
            self.first_step = step
        with torch.no_grad():
            parts = [terms.loss, terms.elbo, terms.recon, terms.kl]
            torch.stack([t.float() for t in parts], out=self.buf[len(self.counts)])  # (4,)
        self.counts.append(n)
        self.n += n

    def full(self) -> bool:
        return len(self.counts) >= len(self.buf)

    def flush(self, epoch: int, run_dir: Path, lr: float) -> None:
        """Add the buffered steps to the sums; raise TrainingError at a non-finite loss."""
        k = len(self.counts)
        if k == 0:
            return
        steps = self.buf[:k].to(self.dtype)  # (k, 4)
        w = torch.tensor(self.counts, dtype=self.dtype, device=steps.device)  # (k,)
        old = torch.tensor([self.totals[key] for key in self.KEYS], dtype=self.dtype)
        sums = old.to(steps.device) + (steps * w[:, None]).sum(0)  # (4,)
        vals = torch.cat([steps[:, 0], steps[-1], sums]).tolist()  # the one transfer
        self.counts = []
        for i, loss in enumerate(vals[:k]):
            if not math.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss} at step {self.first_step + i} (epoch {epoch + 1}). "
                    f"Training stopped; the last good checkpoint in {run_dir} is kept. Try a "
                    f"lower --lr (now {lr}), a KL warm-up, or check the data for NaNs."
                )
        self.latest = vals[k : k + 4]
        self.totals = dict(zip(self.KEYS, vals[k + 4 :], strict=True))

    def as_dict(self) -> dict[str, Any]:
        """The sums as of the last flush (call it right after one), for records and resuming."""
        return {**self.totals, "n": self.n}


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    command: str = "",
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[EpochInfo], None] | None = None,
    log_every: int = 20,
    progress_bar: bool = True,
    max_steps: int | None = None,
) -> TrainResult:
    """Train (or resume) a run in `run_dir`. Works alone or under torchrun (DDP)."""
    run_dir = Path(run_dir)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    if distributed:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    is_main = rank == 0

    # --- device and process group -------------------------------------------------------------
    device = resolve_device(cfg.device)
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    # --- data (resident on the device) ---------------------------------------------------------
    train_ds = load_dataset(cfg.dataset, "train", cfg.data_dir, image_size=cfg.image_size)
    test_ds = load_dataset(cfg.dataset, "test", cfg.data_dir, image_size=cfg.image_size)
    if tuple(train_ds.image_shape) != tuple(model_cfg.image_shape):
        raise TrainingError(
            f"dataset {cfg.dataset} has images of shape {train_ds.image_shape}, but the model "
            f"expects {model_cfg.image_shape}"
        )
    binarize = binarize_rule(cfg.binarize, model_cfg.likelihood, train_ds.binary_like)
    x_train = train_ds.x.to(device)  # (N, C, H, W)
    x_test = test_ds.x.to(device)

    # --- model and optimiser ------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = VAE(model_cfg).to(device)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        fused=device.type in ("cpu", "cuda"),  # one kernel for all parameters
    )
    step, start_epoch, batch_in_epoch = 0, 0, 0
    acc = dict(EMPTY_SUMS)
    wall_before = 0.0
    if resume:
        # weights, optimizer and RNG come from one file, so they always belong to the same step
        rest, state_meta = load_train_state(run_dir, opt)
        weights = {k[6:]: v for k, v in rest.items() if k.startswith("model.")}
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            raise CheckpointError(f"{run_dir}: train_state does not match the model: {e}") from None
        if "rng.torch" in rest:
            torch.set_rng_state(rest["rng.torch"])
        step = int(state_meta["step"])
        start_epoch = int(state_meta["epoch"])
        batch_in_epoch = int(state_meta["batch_in_epoch"])
        acc = dict(state_meta.get("epoch_acc", acc))
        wall_before = float(state_meta.get("wall_s", 0.0))
    for group in opt.param_groups:  # a resumed run may have been given a new lr
        group["lr"] = cfg.lr
    model.train()
    fwd: torch.nn.Module = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        fwd = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        fwd = torch.compile(fwd)
    use_amp = cfg.amp and device.type == "cuda"

    # --- bookkeeping -----------------------------------------------------------------------------
    per_rank_batch = max(1, cfg.batch_size // world)
    n_train = x_train.shape[0]
    steps_per_epoch = max(1, (n_train // world) // per_rank_batch)
    total_steps = steps_per_epoch * cfg.epochs
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    dataset_info = train_ds.info()
    stop = StopFlag(run_dir)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        stop.install()
        if not resume:
            for f in (METRICS_JSONL, STEPS_FILE):
                (run_dir / f).unlink(missing_ok=True)
        (run_dir / STOP_FILE).unlink(missing_ok=True)
    status = StatusWriter(run_dir, is_main, cfg.epochs, total_steps)
    sums = RunningSums(device, acc, log_every)  # this epoch's running sums (resumed mid-epoch)

    def checkpoint(epoch: int, b_in_epoch: int, wall: float) -> None:
        if not is_main:
            return
        save_model(run_dir, model, dataset=dataset_info, train=cfg.to_dict(), command=command)
        tensors = {"rng.torch": torch.get_rng_state()}
        tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
        meta = {
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": b_in_epoch,
            "epoch_acc": sums.as_dict(),
            "wall_s": wall,
        }
        save_train_state(run_dir, opt, tensors, meta)

    if is_main and not resume:
        checkpoint(0, 0, 0.0)  # a valid run folder from the first second
    t_start = time.perf_counter()
    train_time = 0.0
    samples = 0
    result_state = "finished"
    epoch = start_epoch
    last_record: dict[str, Any] = {}
    try:
        status.write("running", epoch, step, eta_s=None)
        while epoch < cfg.epochs and step < total_steps:
            perm = epoch_permutation(n_train, cfg.seed, epoch).to(device)
            perm = perm[rank::world]
            bar = tqdm(
                total=steps_per_epoch,
                initial=batch_in_epoch,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                disable=not (is_main and progress_bar),
                leave=False,
                file=sys.stderr,
            )
            t_epoch = time.perf_counter()
            while batch_in_epoch < steps_per_epoch and step < total_steps:
                idx = perm[batch_in_epoch * per_rank_batch : (batch_in_epoch + 1) * per_rank_batch]
                g = step_generator(cfg.seed, rank, step, device)
                xb = x_train.index_select(0, idx)  # (B, C, H, W); 6x faster than x_train[idx]
                if binarize:
                    xb = dynamic_binarize(xb, g)
                beta = beta_at(step, cfg)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    if cfg.iw_samples > 1:
                        terms = iwae_objective(fwd, xb, cfg.iw_samples, beta=beta, generator=g)
                    else:
                        terms = elbo(fwd, xb, beta=beta, free_bits=cfg.free_bits, generator=g)
                opt.zero_grad(set_to_none=True)
                terms.loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                step += 1
                batch_in_epoch += 1
                samples += xb.shape[0] * world
                sums.add(terms, xb.shape[0], step)  # no .item(): the step does not wait
                bar.update(1)
                log_step = step % log_every == 0 or step == total_steps
                if log_step or sums.full():
                    sums.flush(epoch, run_dir, cfg.lr)  # raises at a NaN/Inf loss
                if is_main and log_step:
                    info = StepInfo(step, epoch, total_steps, *sums.latest, beta)
                    bar.set_postfix(elbo=f"{info.elbo:.1f}", kl=f"{info.kl:.1f}")
                    append_jsonl(run_dir / STEPS_FILE, {**info.__dict__, "time": time.time()})
                    elapsed = train_time + time.perf_counter() - t_epoch
                    done = step - (status.first_step or 0)
                    eta = elapsed / max(done, 1) * (total_steps - step)
                    status.write("running", epoch, step, eta_s=eta)
                    if on_step:
                        on_step(info)
                # ranks agree on stopping at log steps only, so a step needs no collective
                if (log_step or not distributed) and _should_stop(stop, distributed, device):
                    result_state = "stopped"
                    break
            sums.flush(epoch, run_dir, cfg.lr)  # before any checkpoint of these weights
            bar.close()
            train_time += time.perf_counter() - t_epoch
            if batch_in_epoch < steps_per_epoch:  # cut mid-epoch (--max-steps): resumable stop
                result_state = "stopped"
            if result_state == "stopped":
                break
            # --- end of epoch: evaluate, log, checkpoint ------------------------------------------
            acc = sums.as_dict()
            n = max(acc["n"], 1)
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": step,
                "train_loss": acc["loss"] / n,
                "train_elbo": acc["elbo"] / n,
                "train_recon": acc["recon"] / n,
                "train_kl": acc["kl"] / n,
                "beta": beta_at(step - 1, cfg),
            }
            if is_main:
                ev = evaluate_split(model, x_test, binarize, cfg.seed)
                record.update({f"test_{k}": v for k, v in ev.items()})
                record["time_s"] = round(wall_before + time.perf_counter() - t_start, 3)
                append_jsonl(run_dir / METRICS_JSONL, record)
                tqdm.write(
                    f"epoch {epoch + 1}/{cfg.epochs}  train ELBO {record['train_elbo']:.2f}  "
                    f"recon {record['train_recon']:.2f}  KL {record['train_kl']:.2f}  |  "
                    f"test ELBO {record['test_elbo']:.2f}"
                )
            last_record = record
            epoch += 1
            batch_in_epoch = 0
            sums = RunningSums(device, EMPTY_SUMS, log_every)
            checkpoint(epoch, 0, wall_before + time.perf_counter() - t_start)
            if on_epoch and is_main:
                on_epoch(EpochInfo(epoch, step, record))
        if result_state == "stopped":
            checkpoint(epoch, batch_in_epoch, wall_before + time.perf_counter() - t_start)
        wall = wall_before + time.perf_counter() - t_start
        metrics = {
            "state": result_state,
            "epochs": epoch,
            "step": step,
            "wall_time_s": round(wall, 3),
            "train_time_s": round(train_time, 3),
            "train_samples_per_s": round(samples / max(train_time, 1e-9), 1),
            "device": str(device),
            "world_size": world,
            **{k: v for k, v in last_record.items() if k not in ("epoch", "step")},
        }
        if is_main:  # a stored evaluation described the old weights, so it is not carried over
            atomic_write_json(run_dir / METRICS_JSON, metrics)
            status.write(result_state, epoch, step, eta_s=0.0)
        return TrainResult(run_dir, result_state, step, epoch, metrics)
    except TrainingError as e:
        status.write("failed", epoch, step, eta_s=None, message=str(e))
        raise
    except BaseException as e:
        status.write("failed", epoch, step, eta_s=None, message=f"{type(e).__name__}: {e}")
        raise
    finally:
        if is_main:
            stop.uninstall()
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _should_stop(stop: StopFlag, distributed: bool, device: torch.device) -> bool:
    """All ranks stop together: rank 0's flag (or any rank's signal) is shared each step."""
    flag = stop.check()
    if not distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class StatusWriter:
    """`status.json`: state, epoch, step, ETA and pid, for the app to poll. Throttled to ~2/s."""

    def __init__(self, run_dir: Path, enabled: bool, epochs: int, total_steps: int) -> None:
        self.run_dir, self.enabled = run_dir, enabled
        self.epochs, self.total_steps = epochs, total_steps
        self.last = 0.0
        self.first_step: int | None = None

    def write(
        self, state: str, epoch: int, step: int, eta_s: float | None, message: str = ""
    ) -> None:
        if not self.enabled:
            return
        if self.first_step is None:
            self.first_step = step
        now = time.time()
        if state == "running" and now - self.last < 0.5 and step < self.total_steps:
            return
        self.last = now
        atomic_write_json(
            self.run_dir / STATUS_FILE,
            {
                "state": state,
                "epoch": epoch,
                "epochs": self.epochs,
                "step": step,
                "total_steps": self.total_steps,
                "eta_s": None if eta_s is None else round(eta_s, 1),
                "pid": os.getpid(),
                "updated": now,
                "message": message,
            },
        )


# --- CLI ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vae.train", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", help="digits, shapes, mnist, fashion-mnist, folder or npz")
    p.add_argument("--data-dir", help="root of the IDX datasets, an image folder, or a .npz file")
    p.add_argument("--image-size", type=int, help="square size for shapes/folder datasets")
    p.add_argument("--arch", choices=["mlp", "conv"], default="mlp")
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden", type=int, nargs="+", help="MLP widths or conv channels")
    p.add_argument("--dense", type=int, default=256, help="conv only: dense layer width")
    p.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli")
    p.add_argument("--sigma-mode", choices=["fixed", "learned"], default="fixed")
    p.add_argument("--sigma", type=float, default=0.1, help="Gaussian σ (initial, if learned)")
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--warmup-steps", type=int, default=0, help="KL warm-up length in steps")
    p.add_argument("--free-bits", type=float, default=0.0, help="nats per latent dimension")
    p.add_argument(
        "--iw-samples",
        type=int,
        default=1,
        help="k > 1: train on the k-sample IWAE bound (Burda et al. 2015) instead of the ELBO",
    )
    p.add_argument("--binarize", choices=["auto", "yes", "no"], default="auto")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--grad-clip", type=float, default=100.0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--max-steps", type=int, help="stop after this many steps in total")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--resume", metavar="RUN", help="continue a run from its train_state")
    p.add_argument("--out", metavar="RUN", help="run folder to write")
    return p


def configs_from_args(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig, Path, bool]:
    if args.resume:
        run = Path(args.resume)
        meta = read_config(run)
        model_cfg = ModelConfig.from_dict(meta["model"])
        tc = dict(meta["train"])
        tc["epochs"] = args.epochs if _given("--epochs") else tc["epochs"]
        if _given("--lr"):
            tc["lr"] = args.lr
        if _given("--iw-samples"):  # e.g. fine-tune an ELBO-trained run on the IWAE bound
            tc["iw_samples"] = args.iw_samples
        if _given("--device"):
            tc["device"] = args.device
        out = Path(args.out) if args.out else run
        if out.resolve() != run.resolve():
            raise TrainingError(
                "--resume continues a run in place; leave out --out or set it to RUN"
            )
        return model_cfg, TrainConfig.from_dict(tc), out, True
    if not args.dataset or not args.out:
        raise TrainingError("--dataset and --out are required (or --resume RUN)")
    probe = load_dataset(args.dataset, "train", args.data_dir, image_size=args.image_size)
    hidden = tuple(args.hidden) if args.hidden else ((400,) if args.arch == "mlp" else (32, 64))
    model_cfg = ModelConfig(
        image_shape=probe.image_shape,
        latent_dim=args.latent_dim,
        arch=args.arch,
        hidden=hidden,
        dense=args.dense,
        likelihood=args.likelihood,
        sigma_mode=args.sigma_mode,
        sigma=args.sigma,
    )
    cfg = TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip,
        beta=args.beta,
        warmup_steps=args.warmup_steps,
        free_bits=args.free_bits,
        iw_samples=args.iw_samples,
        binarize={"auto": None, "yes": True, "no": False}[args.binarize],
        seed=args.seed,
        device=args.device,
        compile=args.compile,
        amp=not args.no_amp,
        image_size=args.image_size,
    )
    return model_cfg, cfg, Path(args.out), False


def _given(flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in sys.argv[1:])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    command = "python -m vae.train " + shlex.join(sys.argv[1:])
    try:
        model_cfg, cfg, out, resume = configs_from_args(args)
        if resume:  # keep the command that made the run, and say how it was continued
            command = read_config(out).get("command", "") + " ; then: " + command
        result = train(
            model_cfg,
            cfg,
            out,
            resume=resume,
            command=command,
            log_every=args.log_every,
            progress_bar=not args.no_progress,
            max_steps=args.max_steps,
        )
    except (TrainingError, DatasetError, ConfigError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        m = result.metrics
        print(
            f"{result.state}: {result.epoch} epochs, {result.step} steps "
            f"in {m['wall_time_s']:.1f} s "
            f"({m['train_samples_per_s']:.0f} samples/s on {m['device']}). "
            f"Test ELBO {m.get('test_elbo', float('nan')):.2f}. Saved to {result.run_dir}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
