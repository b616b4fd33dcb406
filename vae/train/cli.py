"""The trainer's command line: `python -m vae.train ...` (also under `torchrun -m vae.train`).

    python -m vae.train --dataset digits --epochs 20 --out runs/digits
    python -m vae.train --resume runs/digits --epochs 40          # continue, even mid-epoch
    python -m vae.train --config-json job.json --threads 1        # the configs from a file

A --config-json file holds the two configs and the run folder, as `write_config_json` writes it:

    {"model": {ModelConfig fields}, "train": {TrainConfig fields}, "out": "runs/digits"}

Fields left out take the dataclass defaults (vae/config.py). The file replaces the config flags;
only the flags that do not change the run's config may go with it (RUN_FLAGS), and --device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from vae.checkpoint import CheckpointError, atomic_write_json, read_config
from vae.cliutil import (
    BINARIZE,
    add_data_arguments,
    add_model_arguments,
    error_line,
    model_config,
)
from vae.config import OBJECTIVES, ConfigError, ModelConfig, TrainConfig
from vae.data import DatasetError, load_dataset
from vae.train.loop import train
from vae.train.preview import PREVIEW_EVERY_S
from vae.train.stopping import TrainingError

DESCRIPTION = (
    "Train a VAE: a plain loop over in-memory data, with callbacks, safe checkpoints and resume."
)
# how to run, not what to train
RUN_FLAGS = ("threads", "log_every", "max_steps", "no_progress", "preview_every_s", "make_maps")
JSON_FLAGS = ("config_json", "device", *RUN_FLAGS)  # what may go with --config-json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vae.train", description=DESCRIPTION)
    add_data_arguments(p)
    add_model_arguments(p)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--warmup-steps", type=int, default=0, help="KL warm-up length in steps")
    p.add_argument("--free-bits", type=float, default=0.0, help="nats per latent dimension")
    p.add_argument(
        "--iw-samples",
        type=int,
        default=1,
        help="k > 1: train on the k-sample IWAE bound (Burda et al. 2015) instead of the ELBO",
    )
    p.add_argument(
        "--objective",
        choices=list(OBJECTIVES),
        default="elbo",
        help="elbo: the ELBO (or IWAE with --iw-samples); btcvae: β-TCVAE (Chen et al. 2018), "
        "the ELBO with its KL split into index-code MI, total correlation and dimension-wise KL "
        "by minibatch-weighted sampling, the total correlation weighted by --tc-beta",
    )
    p.add_argument(
        "--tc-beta",
        type=float,
        default=TrainConfig.tc_beta,
        help="β-TCVAE's weight of the total correlation (with --objective btcvae; 1: the ELBO)",
    )
    p.add_argument("--binarize", choices=["auto", "yes", "no"], default="auto")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--prior-lr", type=float, help="learning rate of a mixture prior (default: --lr)"
    )
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
    p.add_argument(
        "--make-maps",
        nargs="*",
        choices=["tsne", "umap"],
        default=[],
        metavar="METHOD",
        help="when the run ends with a checkpoint, make its default maps (tsne, umap) into the "
        "app's disk cache, so that Explore shows them at once (the app's jobs pass tsne)",
    )
    p.add_argument(
        "--preview-every-s",
        type=float,
        default=PREVIEW_EVERY_S,
        metavar="S",
        help="write preview.safetensors, the weights the app's live view draws, about every S "
        "seconds of training (0: never)",
    )
    p.add_argument("--resume", metavar="RUN", help="continue a run from its train_state")
    p.add_argument(
        "--init",
        metavar="RUN",
        help="start a new run (--out) from RUN's encoder and decoder: its architecture and "
        "weights, with this run's --prior; a new mixture prior starts at the posteriors of "
        "random training images",
    )
    p.add_argument("--out", metavar="RUN", help="run folder to write")
    p.add_argument(
        "--config-json",
        metavar="PATH",
        help='{"model": {...}, "train": {...}, "out": RUN} instead of the config flags',
    )
    return p


def given_options(argv: list[str]) -> set[str]:
    """The dests of the options that `argv` sets (abbreviated and --flag=value forms too)."""
    p, unset = build_parser(), object()
    ns = argparse.Namespace(**dict.fromkeys(vars(p.parse_args([])), unset))  # defaults skip set
    p.parse_known_args(argv, namespace=ns)
    return {dest for dest, v in vars(ns).items() if v is not unset}


def configs_from_args(
    args: argparse.Namespace, argv: list[str] | None = None
) -> tuple[ModelConfig, TrainConfig, Path, bool]:
    """(model config, train config, run folder, resume?) for parsed `args`. `argv` (default
    `sys.argv[1:]`) tells which flags were given: with --resume, only those override the run's
    saved config, and --config-json refuses config flags beside it."""
    argv = sys.argv[1:] if argv is None else argv
    if args.config_json:
        given = given_options(argv)
        extra = sorted(given - set(JSON_FLAGS))
        if extra:
            flags = ", ".join("--" + d.replace("_", "-") for d in extra)
            allowed = ", ".join("--" + d.replace("_", "-") for d in JSON_FLAGS[1:])
            raise TrainingError(
                f"--config-json holds the whole config, so {flags} cannot go with it "
                f"(only {allowed} can); --resume continues a run from its own config.json"
            )
        model_cfg, cfg, out = read_config_json(args.config_json)
        if "device" in given:
            cfg = dataclasses.replace(cfg, device=args.device)
        return model_cfg, cfg, out, False
    if args.resume:
        given = given_options(argv)
        run = Path(args.resume)
        meta = read_config(run)
        model_cfg = ModelConfig.from_dict(meta["model"])
        tc = dict(meta["train"])
        tc["epochs"] = args.epochs if "epochs" in given else tc["epochs"]
        if "lr" in given:
            tc["lr"] = args.lr
        if "prior_lr" in given:
            tc["prior_lr"] = args.prior_lr
        if "iw_samples" in given:  # e.g. fine-tune an ELBO-trained run on the IWAE bound
            tc["iw_samples"] = args.iw_samples
        if "device" in given:
            tc["device"] = args.device
        out = Path(args.out) if args.out else run
        if out.resolve() != run.resolve():
            raise TrainingError(
                "--resume continues a run in place; leave out --out or set it to RUN"
            )
        return model_cfg, TrainConfig.from_dict(tc), out, True
    if args.init and not args.dataset:
        args.dataset = read_config(Path(args.init))["train"]["dataset"]
    if not args.dataset or not args.out:
        raise TrainingError("--dataset and --out are required (or --resume RUN)")
    if args.objective != "btcvae" and "tc_beta" in given_options(argv):
        raise TrainingError("--tc-beta weights β-TCVAE's total correlation; add --objective btcvae")
    probe = load_dataset(args.dataset, "train", args.data_dir, image_size=args.image_size)
    model_cfg = model_config(args, probe.image_shape)
    if args.init:  # the architecture is the init run's; only the prior is this run's own
        init = ModelConfig.from_dict(read_config(Path(args.init))["model"])
        model_cfg = dataclasses.replace(
            init, prior=model_cfg.prior, prior_components=model_cfg.prior_components
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
        objective=args.objective,
        tc_beta=args.tc_beta,
        binarize=BINARIZE[args.binarize],
        seed=args.seed,
        device=args.device,
        compile=args.compile,
        amp=not args.no_amp,
        image_size=args.image_size,
        init=args.init,
        prior_lr=args.prior_lr,
    )
    return model_cfg, cfg, Path(args.out), False


# --- --config-json -----------------------------------------------------------------------------
def write_config_json(
    path: str | os.PathLike, model_cfg: ModelConfig, cfg: TrainConfig, out: str | os.PathLike
) -> None:
    """Write the file that `python -m vae.train --config-json PATH` trains from."""
    doc = {"model": model_cfg.to_dict(), "train": cfg.to_dict(), "out": str(out)}
    atomic_write_json(path, doc)


def read_config_json(path: str | os.PathLike) -> tuple[ModelConfig, TrainConfig, Path]:
    """(model config, train config, run folder) from a --config-json file; any problem with
    the file is a ConfigError that names it."""
    where = f"--config-json {path}"
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:  # not UTF-8, or not JSON
        raise ConfigError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f'{where}: must hold {{"model": ..., "train": ..., "out": ...}}')
    missing = [k for k in ("model", "train", "out") if k not in doc]
    unknown = sorted(set(doc) - {"model", "train", "out"})
    if missing or unknown:
        problems = [f"missing {', '.join(missing)}"] * bool(missing)
        problems += [f"unknown key(s) {', '.join(unknown)}"] * bool(unknown)
        raise ConfigError(f"{where}: {'; '.join(problems)} (keys: model, train, out)")
    if not isinstance(doc["out"], str) or not doc["out"].strip():
        raise ConfigError(f'{where}: "out" must be the run folder, as a non-empty string')
    try:
        model_cfg = ModelConfig.from_dict(_json_typed(ModelConfig, doc["model"]))
        cfg = TrainConfig.from_dict(_json_typed(TrainConfig, doc["train"]))
    except ValueError as e:  # ConfigError, or a bad value inside a list (e.g. "hidden": ["x"])
        raise ConfigError(f"{where}: {e}") from None
    return model_cfg, cfg, Path(doc["out"])


_JSON_KINDS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "None": (type(None),),
    "tuple": (list,),
    "dict": (dict,),
}


def _json_typed(cls: type, d: Any) -> Any:
    """`d`, once each value has the JSON kind of its field (the dataclasses convert none, so
    "epochs": 2.5 or "amp": "no" would otherwise train wrongly or fail deep in the loop)."""
    if not isinstance(d, dict):
        return d  # from_dict says it must be an object
    for f in dataclasses.fields(cls):
        names = [n.strip().split("[")[0] for n in str(f.type).split("|")]
        if f.name not in d or not all(n in _JSON_KINDS for n in names):
            continue
        kinds = tuple(k for n in names for k in _JSON_KINDS[n])
        v = d[f.name]
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            raise ConfigError(f"{cls.__name__}.{f.name} must be {f.type}, got {json.dumps(v)}")
    return d


# --- maps after training -----------------------------------------------------------------------
def make_maps(run_dir: Path, methods: tuple[str, ...], final_state: str) -> None:
    """The latent table and the maps of the default sample, into the disk cache the app reads
    (vae.mapping), in this (low-priority) job process. status.json says "mapping" meanwhile and
    keeps the run's own ending; a map that cannot be made never fails the run."""
    import time

    from vae.checkpoint import load_run
    from vae.mapping import prepare
    from vae.record import RunDir

    if final_state not in ("finished", "stopped"):
        return
    status_path = RunDir(run_dir).status
    try:
        said = json.loads(status_path.read_text())  # "mapping", written by train(then=...)
    except (OSError, ValueError):
        said = {}
    final = {**said, "state": final_state, "message": "", "eta_s": 0.0}
    final.pop("final", None)
    try:
        prepare(load_run(run_dir, device="cpu"), methods)
        print(f"maps ready: {', '.join(methods)}")
    except Exception as e:  # noqa: BLE001 - no map (e.g. no test split here): the run stands
        print(f"no map made: {e}", file=sys.stderr)
    finally:  # the run's own ending, in place of "mapping"
        atomic_write_json(status_path, {**final, "updated": time.time(), "pid": os.getpid()})


# --- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m vae.train " + shlex.join(argv)
    try:
        if not args.preview_every_s >= 0:  # NaN too
            raise TrainingError("--preview-every-s must be 0 (no previews) or more seconds")
        model_cfg, cfg, out, resume = configs_from_args(args, argv)
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
            preview_every_s=args.preview_every_s,
            then="mapping" if args.make_maps else None,
        )
    except (TrainingError, DatasetError, ConfigError, CheckpointError, ValueError, OSError) as e:
        print(error_line(e), file=sys.stderr)  # a full or read-only disk too: names the folder
        return 2
    if int(os.environ.get("RANK", "0")) == 0 and args.make_maps:
        make_maps(result.run_dir, tuple(args.make_maps), result.state)
    if int(os.environ.get("RANK", "0")) == 0:
        m = result.metrics
        print(
            f"{result.state}: {result.epoch} epochs, {result.step} steps "
            f"in {m['wall_time_s']:.1f} s "
            f"({m['train_samples_per_s']:.0f} samples/s on {m['device']}). "
            f"Test ELBO {m.get('test_elbo', float('nan')):.2f}. Saved to {result.run_dir}"
        )
    return 0
