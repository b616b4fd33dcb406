"""What the run CLIs (`vae.evaluate`, `vae.encode`) share: their run arguments and how they open
the run. Errors they report come back as `error: ...` and exit code 2, never a traceback."""

from __future__ import annotations

import argparse

from vae.checkpoint import Run, load_run
from vae.device import resolve_device


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The run folder, its dataset's root, and the device."""
    p.add_argument("run", help="run folder with config.json and model.safetensors")
    p.add_argument("--data-dir", default=None, help="dataset root (needed for folder and npz)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def open_run(p: argparse.ArgumentParser, args: argparse.Namespace) -> Run:
    """Load `args.run` on `args.device`; a device that is not there is a usage error (exit 2).
    Raises CheckpointError for a run it cannot load."""
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        p.error(str(e))
    return load_run(args.run, device=device)
