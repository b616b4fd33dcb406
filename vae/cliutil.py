"""What the CLIs share: the run arguments of `vae.evaluate` and `vae.encode` and how they open
the run, and the dataset and model options of `vae.train` and `vae.convert`. Errors they report
come back as `error: ...` and exit code 2, never a traceback."""

from __future__ import annotations

import argparse

from vae.checkpoint import Run, load_run, os_error_reason
from vae.config import ModelConfig
from vae.device import resolve_device
from vae.errors import ExplorerError

BINARIZE = {"auto": None, "yes": True, "no": False}  # --binarize -> TrainConfig.binarize


def error_line(e: BaseException) -> str:
    """The one `error: ...` line a CLI prints for `e`: the project's own message, or for any
    other OSError (a read-only or full disk) the file and the reason, never a traceback."""
    if isinstance(e, OSError) and not isinstance(e, ExplorerError):
        where = f"{e.filename}: " if e.filename else ""
        text = f"{where}{os_error_reason(e)}"
    else:
        text = str(e)
    return "error: " + " ".join(text.split())


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The run folder (or your own model: --model, --weights, --data), its dataset's root, and
    the device."""
    p.add_argument("run", nargs="?", help="run folder with config.json and model.safetensors")
    p.add_argument(
        "--model",
        metavar="FILE.py[:NAME]",
        help="instead of a run: your own PyTorch VAE, NAME (default build) in FILE.py (README, "
        "'Bring your own model'); with --weights and --data",
    )
    p.add_argument("--weights", metavar="FILE", help="the safetensors weights of --model")
    p.add_argument(
        "--data",
        metavar="NAME[:PATH]",
        help="the dataset of --model: digits, shapes, mnist[:ROOT], fashion-mnist[:ROOT], "
        "folder:DIR or npz:FILE",
    )
    p.add_argument("--data-dir", default=None, help="dataset root (needed for folder and npz)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def open_run(p: argparse.ArgumentParser, args: argparse.Namespace) -> Run:
    """Load `args.run`, or the user's model of --model/--weights/--data (`vae.adapter`), on
    `args.device`; a device that is not there, or a wrong mix of these, is a usage error
    (exit 2). Raises CheckpointError for a run or model it cannot load."""
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        p.error(str(e))
    if args.model:
        if args.run:
            p.error("give a run folder or --model, not both")
        from vae.adapter import UserModelSpec, load_user_model

        return load_user_model(UserModelSpec.parse(args.model, args.weights, args.data), device)
    if args.weights or args.data:
        p.error("--weights and --data go with --model FILE.py[:NAME]")
    if not args.run:
        p.error("give a run folder, or --model FILE.py[:NAME] --weights FILE --data NAME")
    return load_run(args.run, device=device)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """--dataset, --data-dir, --image-size: the data a model is (or was) trained on."""
    p.add_argument("--dataset", help="digits, shapes, mnist, fashion-mnist, folder or npz")
    p.add_argument("--data-dir", help="root of the IDX datasets, an image folder, or a .npz file")
    p.add_argument("--image-size", type=int, help="square size for shapes/folder datasets")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The ModelConfig options but the image shape (the dataset gives it)."""
    p.add_argument("--arch", choices=["mlp", "conv"], default="mlp")
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden", type=int, nargs="+", help="MLP widths or conv channels")
    p.add_argument("--dense", type=int, default=256, help="conv only: dense layer width")
    p.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli")
    p.add_argument("--sigma-mode", choices=["fixed", "learned"], default="fixed")
    p.add_argument("--sigma", type=float, default=0.1, help="Gaussian σ (initial, if learned)")
    p.add_argument(
        "--prior",
        choices=["normal", "mixture"],
        default="normal",
        help="p(z): normal, N(0, I); mixture, a learned mixture of Gaussians (Tomczak & Welling "
        "2018), whose KL is estimated by sampling",
    )
    p.add_argument(
        "--prior-components", type=int, default=64, help="components of the mixture prior"
    )


def model_config(args: argparse.Namespace, image_shape: tuple[int, int, int]) -> ModelConfig:
    """The ModelConfig of `add_model_arguments` options; --hidden defaults to 400 for mlp and
    32 64 for conv. Raises ConfigError for a value out of range."""
    hidden = tuple(args.hidden) if args.hidden else ((400,) if args.arch == "mlp" else (32, 64))
    return ModelConfig(
        image_shape=image_shape,
        latent_dim=args.latent_dim,
        arch=args.arch,
        hidden=hidden,
        dense=args.dense,
        likelihood=args.likelihood,
        sigma_mode=args.sigma_mode,
        sigma=args.sigma,
        prior=args.prior,
        prior_components=args.prior_components if args.prior == "mixture" else 0,
    )
