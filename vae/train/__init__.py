"""Train a VAE: a plain loop over in-memory data, with callbacks, safe checkpoints and resume.

    python -m vae.train --dataset digits --epochs 20 --out runs/digits
    torchrun --nproc_per_node=2 -m vae.train --dataset mnist --arch conv --out runs/mnist

The data lives on the device; a batch is an index slice of a seeded per-epoch permutation. Every
random draw of a step (reparameterisation noise, dynamic binarization) comes from a generator
seeded by (seed, rank, step), so a run stopped and resumed at any step matches an uninterrupted one.

    loop.py      train(): the loop, one optimiser step, the per-epoch test ELBO
    setup.py     ranks, device, data, model, optimiser, resume; the checkpoint it resumes from
    sums.py      RunningSums: the epoch's loss sums, buffered on the device
    stopping.py  graceful stop (SIGTERM, STOP file) and the NaN/Inf stop (TrainingError)
    seeding.py   the generators of a step (seed, rank, step) and of an epoch's order
    status.py    status.json and steps.jsonl, for the app to watch
    preview.py   PreviewSchedule: preview.safetensors every N steps, N chosen by time
    cli.py       `python -m vae.train`: flags or --config-json, then train()
"""

from vae.train.cli import build_parser, configs_from_args, main, read_config_json, write_config_json
from vae.train.loop import EpochInfo, TrainResult, beta_at, evaluate_split, train, train_step
from vae.train.seeding import epoch_permutation, step_generator
from vae.train.setup import Setup
from vae.train.status import (
    LOG_FILE,
    STATUS_FILE,
    STEPS_FILE,
    STOP_FILE,
    StatusWriter,
    StepInfo,
)
from vae.train.stopping import StopFlag, TrainingError, should_stop, threading_main
from vae.train.sums import EMPTY_SUMS, RunningSums

__all__ = [
    "EMPTY_SUMS",
    "LOG_FILE",
    "STATUS_FILE",
    "STEPS_FILE",
    "STOP_FILE",
    "EpochInfo",
    "RunningSums",
    "Setup",
    "StatusWriter",
    "StepInfo",
    "StopFlag",
    "TrainResult",
    "TrainingError",
    "beta_at",
    "build_parser",
    "configs_from_args",
    "epoch_permutation",
    "evaluate_split",
    "main",
    "read_config_json",
    "should_stop",
    "step_generator",
    "threading_main",
    "train",
    "train_step",
    "write_config_json",
]
