"""The training loop: epochs of seeded index slices over on-device data, one optimiser step each.

    for each epoch:  permute the images (seeded by epoch), take this rank's share
        for each step:   slice a batch, binarize it, minimise -ELBO (-IWAE, -β-TCVAE), log
        every few s:     preview.safetensors, the weights the live view draws (every N steps)
        at the end:      test ELBO, a metrics.jsonl line, a checkpoint to load or resume from

Every step's noise comes from `step_generator(seed, rank, step)`, and the loss sums, position
and RNG state are saved with the weights, so a stopped-and-resumed run ends bit-identical to an
uninterrupted one. A STOP file or SIGTERM ends a run cleanly; a NaN/Inf loss raises
`TrainingError` and leaves the last good checkpoint.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from vae.checkpoint import append_jsonl, atomic_write_json, save_preview, weights_hash
from vae.config import ModelConfig, TrainConfig
from vae.model import VAE
from vae.objectives import ELBOTerms, btcvae_objective, dynamic_binarize, elbo, iwae_objective
from vae.record import RunDir
from vae.train.preview import PreviewSchedule
from vae.train.seeding import epoch_permutation, step_generator
from vae.train.setup import Setup, save_checkpoint, setup
from vae.train.status import StatusWriter, StepInfo, append_step, drop_logs_after, open_run_dir
from vae.train.stopping import StopFlag, TrainingError, should_stop
from vae.train.sums import EMPTY_SUMS, TC_KEYS, RunningSums, sum_keys


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


def beta_at(step: int, cfg: TrainConfig) -> float:
    """KL warm-up: β rises linearly from 0 over `warmup_steps` (Bowman et al. 2016, Sec. 3.1)."""
    if cfg.warmup_steps <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, (step + 1) / cfg.warmup_steps)


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
    preview_every_s: float = 0.0,
    then: str | None = None,
) -> TrainResult:
    """Train (or resume) a run in `run_dir`. Works alone or under torchrun (DDP).

    `then` = "mapping": the process goes on to make the run's maps, so status.json says that
    (keeping the run's own ending under "final") instead of the ending itself.

    `preview_every_s` > 0: rank 0 writes preview.safetensors about that often (every N steps,
    N chosen by the step time), for the live view; it changes nothing about the training."""
    run_dir = Path(run_dir)
    s = setup(model_cfg, cfg, run_dir, resume=resume, max_steps=max_steps)
    step, epoch, batch = s.step, s.epoch, s.batch_in_epoch  # where this process starts
    stop = StopFlag(run_dir)
    if s.is_main:
        open_run_dir(run_dir, resume)
        stop.install()
    status = StatusWriter(run_dir, s.is_main, cfg.epochs, s.total_steps)
    keys = sum_keys(cfg.objective)
    sums = RunningSums(s.device, s.epoch_acc, log_every, keys)  # this epoch's (resumed mid-epoch)
    previews = PreviewSchedule(preview_every_s if s.is_main else 0.0, step)

    def checkpoint(wall_s: float) -> None:  # the weights of `step`, and where to resume from
        save_checkpoint(s, run_dir, command, step=step, epoch=epoch, batch_in_epoch=batch,
                        epoch_acc=sums.as_dict(), wall_s=wall_s)  # fmt: skip

    def run_wall_s() -> float:  # the run's wall time, earlier (resumed) processes included
        return s.wall_s + time.perf_counter() - t_start

    if s.is_main and not resume:
        checkpoint(0.0)  # a valid run folder from the first second
    elif s.is_main and _resumed(s, run_dir):
        checkpoint(s.wall_s)  # the weights were from a save cut short: make them the state's
    t_start, train_time, samples = time.perf_counter(), 0.0, 0
    state, last_record = "finished", {}
    try:
        status.write("running", epoch, step, eta_s=None)
        while epoch < cfg.epochs and step < s.total_steps:
            perm = epoch_permutation(s.x_train.shape[0], cfg.seed, epoch).to(s.device)  # (N,)
            perm = perm[s.rank :: s.world]  # (N / world,): this rank's share
            bar = _progress_bar(s, epoch, batch, enabled=s.is_main and progress_bar)
            t_epoch = time.perf_counter()
            while batch < s.steps_per_epoch and step < s.total_steps:
                idx = perm[batch * s.per_rank_batch : (batch + 1) * s.per_rank_batch]  # (B,)
                g = step_generator(cfg.seed, s.rank, step, s.device)
                xb = s.x_train.index_select(0, idx)  # (B, C, H, W); 6x faster than x_train[idx]
                if s.binarize:  # x ~ Bernoulli(pixel intensities) (Salakhutdinov & Murray 2008)
                    xb = dynamic_binarize(xb, g)
                beta = beta_at(step, cfg)
                terms = train_step(s, xb, beta, g)
                step += 1
                batch += 1
                samples += xb.shape[0] * s.world
                sums.add(terms, xb.shape[0], step)  # no .item(): the step does not wait
                bar.update(1)
                if previews.due(step):  # rank 0 only; reads the clock, no RNG
                    save_preview(run_dir, s.model, step=step, epoch=epoch)
                log_step = step % log_every == 0 or step == s.total_steps
                if log_step or sums.full():
                    sums.flush(epoch, run_dir, cfg.lr)  # raises at a NaN/Inf loss
                if s.is_main and log_step:
                    info = StepInfo(step, epoch, s.total_steps, beta=beta, **sums.latest)
                    bar.set_postfix(elbo=f"{info.elbo:.1f}", kl=f"{info.kl:.1f}")
                    append_step(run_dir, info)
                    elapsed = train_time + time.perf_counter() - t_epoch
                    status.write("running", epoch, step, eta_s=status.eta(elapsed, step))
                    if on_step:
                        on_step(info)
                # ranks agree on stopping at log steps only, so a step needs no collective
                if (log_step or not s.distributed) and should_stop(stop, s.distributed, s.device):
                    state = "stopped"
                    break
            sums.flush(epoch, run_dir, cfg.lr)  # before any checkpoint of these weights
            bar.close()
            train_time += time.perf_counter() - t_epoch
            if batch < s.steps_per_epoch:  # cut mid-epoch (--max-steps): resumable stop
                state = "stopped"
            if state == "stopped":
                break
            # end of epoch: evaluate, log, checkpoint
            record = _epoch_record(s, sums, epoch, step)
            if s.is_main:
                _evaluate_and_log(s, run_dir, record, run_wall_s)
            last_record = record
            epoch += 1
            batch = 0
            sums = RunningSums(s.device, EMPTY_SUMS, log_every, keys)
            checkpoint(run_wall_s())
            if on_epoch and s.is_main:
                on_epoch(EpochInfo(epoch, step, record))
            previews.restart(step)  # the evaluation and checkpoint are not step time
        if state == "stopped":
            checkpoint(run_wall_s())
        metrics = _run_metrics(
            s, state, epoch, step, run_wall_s(), train_time, samples, last_record
        )
        if s.is_main:  # a stored evaluation described the old weights, so it is not carried over
            atomic_write_json(RunDir(run_dir).metrics, metrics)
            if then:
                status.write(then, epoch, step, eta_s=0.0, message="making the map",
                             final={"state": state, "message": ""})  # fmt: skip
            else:
                status.write(state, epoch, step, eta_s=0.0)
        return TrainResult(run_dir, state, step, epoch, metrics)
    except BaseException as e:
        message = str(e) if isinstance(e, (TrainingError, OSError)) else f"{type(e).__name__}: {e}"
        try:  # on a full or read-only disk these fail too; the error that got here matters
            _drop_preview(s, run_dir)
            status.write("failed", epoch, step, eta_s=None, message=message)
        except OSError:
            pass
        raise
    finally:
        if s.is_main:
            stop.uninstall()
        if s.distributed and dist.is_initialized():
            dist.destroy_process_group()


def train_step(s: Setup, xb: torch.Tensor, beta: float, g: torch.Generator) -> ELBOTerms:
    """One optimiser step on the batch `xb` (B, C, H, W); returns its terms, still on the device.

    ELBO:  L = E_q[log p(x|z)] - β KL(q(z|x) || p(z))   (Kingma & Welling 2013, Eq. 3), with
           β (Higgins et al. 2017) and free bits (Kingma et al. 2016, Eq. 15);
    IWAE:  L_k = E[log (1/k) Σ_i p(x, z_i) / q(z_i|x)]   (Burda et al. 2015, Eq. 8) when k > 1;
    β-TCVAE: L = E_q[log p(x|z)] - β (MI + tc_beta TC + dwKL)   (Chen et al. 2018).
    """
    cfg = s.cfg
    with torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=s.use_amp):
        if cfg.objective == "btcvae":
            terms = btcvae_objective(s.fwd, xb, cfg.tc_beta, beta=beta, generator=g)
        elif cfg.iw_samples > 1:
            terms = iwae_objective(s.fwd, xb, cfg.iw_samples, beta=beta, generator=g)
        else:
            terms = elbo(s.fwd, xb, beta=beta, free_bits=cfg.free_bits, generator=g)
    s.opt.zero_grad(set_to_none=True)
    terms.loss.backward()  # loss = -L
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.grad_clip)
    s.opt.step()
    return terms


@torch.no_grad()
def evaluate_split(
    model: VAE, x: torch.Tensor, binarize: bool, seed: int, batch_size: int = 1000
) -> dict[str, Any]:
    """Single-sample ELBO on a fixed, seeded draw: cheap and comparable across epochs."""
    model.eval()
    tot = {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    kl_d = torch.zeros(model.config.latent_dim, device=x.device)  # (D,)
    for i in range(0, x.shape[0], batch_size):
        g = step_generator(seed, 0, 10**9 + i, x.device)
        xb = x[i : i + batch_size]  # (B, C, H, W)
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


def _resumed(s: Setup, run_dir: Path) -> bool:
    """Say where a resumed run goes on from; drop the log lines of steps past that point (they
    are trained again). True when model.safetensors is not the one saved with the state."""
    drop_logs_after(run_dir, s.step)
    where = f"step {s.step} (epoch {s.epoch + 1}, batch {s.batch_in_epoch} of {s.steps_per_epoch})"
    try:
        stale = s.weights_sha256 is not None and weights_hash(run_dir) != s.weights_sha256
    except OSError:
        stale = True  # no model.safetensors
    note = f"resuming from {where}, the last complete training state"
    if stale:
        note += "; model.safetensors was from a later save that did not finish, so it is rewritten"
    tqdm.write(note)
    return stale


def _drop_preview(s: Setup, run_dir: Path) -> None:
    """A failed run shows its last good checkpoint, which is what it can resume from."""
    if s.is_main:
        RunDir(run_dir).preview.unlink(missing_ok=True)


def _progress_bar(s: Setup, epoch: int, batch: int, enabled: bool) -> tqdm:
    return tqdm(
        total=s.steps_per_epoch,
        initial=batch,
        desc=f"epoch {epoch + 1}/{s.cfg.epochs}",
        disable=not enabled,
        leave=False,
        file=sys.stderr,
    )


def _epoch_record(s: Setup, sums: RunningSums, epoch: int, step: int) -> dict[str, Any]:
    """The epoch's training means (every rank; rank 0 adds the test split and writes it)."""
    m = sums.means()
    return {
        "epoch": epoch + 1,
        "step": step,
        "train_loss": m["loss"],
        "train_elbo": m["elbo"],
        "train_recon": m["recon"],
        "train_kl": m["kl"],
        **{f"train_{k}": m[k] for k in TC_KEYS if k in m},  # β-TCVAE: MI + TC + dwKL ≈ KL
        "beta": beta_at(step - 1, s.cfg),
    }


def _evaluate_and_log(
    s: Setup, run_dir: Path, record: dict[str, Any], run_wall_s: Callable[[], float]
) -> None:
    """Add the test-split ELBO to `record`, append it to metrics.jsonl and print a line."""
    ev = evaluate_split(s.model, s.x_test, s.binarize, s.cfg.seed)
    record.update({f"test_{k}": v for k, v in ev.items()})
    record["time_s"] = round(run_wall_s(), 3)  # evaluation included
    append_jsonl(RunDir(run_dir).epochs_log, record)
    names = {"mi": "MI", "tc": "TC", "dwkl": "dwKL"}
    parts = [f"{names[k]} {record[f'train_{k}']:.2f}" for k in TC_KEYS if f"train_{k}" in record]
    tqdm.write(
        f"epoch {record['epoch']}/{s.cfg.epochs}  train ELBO {record['train_elbo']:.2f}  "
        f"recon {record['train_recon']:.2f}  KL {record['train_kl']:.2f}"
        + (f" ({' + '.join(parts)})" if parts else "")
        + f"  |  test ELBO {record['test_elbo']:.2f}"
    )


def _run_metrics(
    s: Setup,
    state: str,
    epoch: int,
    step: int,
    wall: float,
    train_time: float,
    samples: int,
    last_record: dict[str, Any],
) -> dict[str, Any]:
    """metrics.json: how the run ended, its speed, and its last epoch's record."""
    return {
        "state": state,
        "epochs": epoch,
        "step": step,
        "wall_time_s": round(wall, 3),
        "train_time_s": round(train_time, 3),
        "train_samples_per_s": round(samples / max(train_time, 1e-9), 1),
        "device": str(s.device),
        "world_size": s.world,
        **{k: v for k, v in last_record.items() if k not in ("epoch", "step")},
    }
