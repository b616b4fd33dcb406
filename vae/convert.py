"""Convert your own trusted PyTorch state_dict into a run folder the app can load.

    python -m vae.convert my_weights.pt --out runs/my-model --dataset mnist \\
        --arch conv --latent-dim 32
    python -m vae.convert ckpt.pth --out runs/ema --dataset digits --hidden 256 --latent-dim 8 \\
        --key ema

Run it only on files you trust, on your own machine. It reads the file with
`torch.load(weights_only=True)`, which refuses arbitrary objects but is still a pickle reader;
the safe format is safetensors. The app itself never does this: it refuses every pickle, and
nothing uploaded is ever converted. (A `.safetensors` file is read with safetensors instead.)

The file may hold a state_dict, or a dict holding one under "state_dict", "model_state_dict" or
"model" (or under `--key NAME`). A "module." (DataParallel, DDP) or "_orig_mod." (torch.compile)
prefix on every key is stripped. The model options are those of `python -m vae.train`, and the
dataset gives the image shape and the preprocessing the app uses. The file must match the VAE
they build key for key and shape for shape, or nothing is written. The run folder is written
with the project's atomic checkpoint writer, then loaded back and compared tensor for tensor.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import re
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from vae.checkpoint import MAX_WEIGHTS_BYTES, CheckpointError, Run, load_run, save_model
from vae.cliutil import BINARIZE, add_data_arguments, add_model_arguments, error_line, model_config
from vae.config import ConfigError, ModelConfig, TrainConfig
from vae.data import DatasetError, load_dataset
from vae.errors import ExplorerError
from vae.model import VAE
from vae.record import RunDir

ENTRIES = ("state_dict", "model_state_dict", "model")  # where training scripts keep the weights
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP, torch.compile
SHOWN = 5  # names listed per kind of problem


class ConvertError(ExplorerError, ValueError):
    """The file cannot become a run folder; the message says why and what to pass instead."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vae.convert",
        description="Turn your own trusted state_dict (.pt/.pth/.ckpt) into a run folder "
        "(config.json + model.safetensors). Run it only on files you trust.",
    )
    p.add_argument("file", type=Path, help="the state_dict file (torch.save, or .safetensors)")
    p.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder to write")
    p.add_argument("--key", help="the entry of the file that holds the state_dict")
    p.add_argument("--force", action="store_true", help="replace the run in a non-empty --out")
    add_data_arguments(p)
    add_model_arguments(p)
    p.add_argument("--binarize", choices=list(BINARIZE), default="auto", help="as in training")
    return p


# --- reading ------------------------------------------------------------------------------------
def read_file(path: Path) -> Any:
    """What `path` holds: torch.load with weights_only=True (never a plain unpickle)."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ConvertError(f"cannot read {path}: {e.strerror or e}") from None
    if not path.is_file():
        raise ConvertError(f"{path} is not a file")
    if size > MAX_WEIGHTS_BYTES:
        raise ConvertError(f"{path} is larger than {MAX_WEIGHTS_BYTES >> 30} GiB")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise ConvertError(f"{path} is not a valid safetensors file: {e}") from None
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the errors say it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        op = re.search(r"Unsupported operand \d+", str(e))
        if op:  # not what torch.save writes: junk, or a plain pickle
            raise ConvertError(f"{path} is not a torch.save file ({op.group(0)})") from None
        name = re.search(r"GLOBAL ([\w.]+)", str(e))
        detail = f" (it names {name.group(1)})" if name else ""
        raise ConvertError(
            f"{path} holds more than tensors and plain containers{detail}, such as a whole "
            "pickled model or objects of your own classes, which weights_only=True refuses to "
            "load. In the code that made it, save only the weights, "
            "`torch.save(model.state_dict(), 'weights.pt')`, and convert that file"
        ) from None
    except Exception as e:  # noqa: BLE001  (torch raises many kinds for a file it cannot parse)
        line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        why = f"{type(e).__name__}: {line}" if line else type(e).__name__
        raise ConvertError(f"{path} is not a torch.save file ({why})") from None


def pick_state_dict(obj: Any, path: Path, key: str | None = None) -> tuple[dict[str, Any], str]:
    """(the state_dict in what the file holds, which part of the file it is)."""
    keys = ", ".join(map(repr, list(obj)[:10])) if isinstance(obj, dict) else ""
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            has = f"its top-level keys are {keys}" if keys else f"it holds a {type(obj).__name__}"
            raise ConvertError(f"{path} has no entry {key!r} for --key; {has}")
        obj, where = obj[key], f"its {key!r} entry"
    elif isinstance(obj, dict) and not all(torch.is_tensor(v) for v in obj.values()):
        name = next((n for n in ENTRIES if isinstance(obj.get(n), dict)), None)
        obj, where = (obj[name], f"its {name!r} entry") if name else (obj, "the whole file")
    else:
        where = "the whole file"
    if not isinstance(obj, dict):
        raise ConvertError(
            f"{where} of {path} is a {type(obj).__name__}, not a state_dict (a dict of tensors)"
        )
    bad = [f"{k!s} ({type(v).__name__})" for k, v in obj.items() if not torch.is_tensor(v)]
    bad += [f"{k!r} (a {type(k).__name__} key)" for k in obj if not isinstance(k, str)]
    if bad:
        hint = f"; its top-level keys are {keys}" if keys else ""
        raise ConvertError(
            f"{where} of {path} is not a state_dict: {len(bad)} value(s) are not tensors or not "
            f"named by strings: {_few(bad)}. Pass the entry holding the weights with --key NAME"
            f"{hint}"
        )
    if not obj:
        raise ConvertError(f"{where} of {path} is an empty dict; there are no weights in it")
    return obj, where


def strip_prefixes(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`state` without a wrapper prefix that every key carries; the prefixes stripped."""
    stripped = []
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
            stripped.append(prefix)
    return state, stripped


# --- checking -----------------------------------------------------------------------------------
def _few(items: list[str], n: int = SHOWN) -> str:
    more = f", ... ({len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def describe_config(cfg: ModelConfig) -> str:
    """e.g. 'conv, latent_dim 32, hidden 32 64, dense 256, image (1, 28, 28)'."""
    parts = [cfg.arch, f"latent_dim {cfg.latent_dim}", "hidden " + " ".join(map(str, cfg.hidden))]
    if cfg.arch == "conv":
        parts.append(f"dense {cfg.dense}")
    if cfg.likelihood == "gaussian":
        parts.append(f"gaussian, sigma {cfg.sigma_mode}")
    return ", ".join(parts) + f", image {tuple(cfg.image_shape)}"


def mismatches(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches, a few of each with their counts."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} is {tuple(state[k].shape)}, needs {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_few(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {_few(shapes)}")
    return problems


def check_state(state: dict[str, torch.Tensor], cfg: ModelConfig, path: Path) -> None:
    """Raise unless `state` fits VAE(cfg) exactly and holds finite floating-point values."""
    problems = mismatches(state, VAE(cfg).state_dict())
    if problems:
        raise ConvertError(
            f"{path} does not match the VAE the options build ({describe_config(cfg)}): "
            f"{'; '.join(problems)}. Pass the options of the model that saved it (--arch, "
            "--latent-dim, --hidden, --dense, --likelihood/--sigma-mode, --dataset and "
            "--image-size for the image shape); nothing was written"
        )
    ints = [f"{k} ({v.dtype})" for k, v in state.items() if not v.is_floating_point()]
    if ints:
        raise ConvertError(f"{path}: {len(ints)} tensor(s) are not floating point: {_few(ints)}")
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise ConvertError(
            f"{path}: {len(bad)} tensor(s) hold NaN or Inf values: {_few(bad)}. A diverged "
            "training run saves such weights; convert an earlier checkpoint instead"
        )


def check_out(out: Path, force: bool) -> None:
    """Refuse a file, or a non-empty folder unless `force`."""
    if out.exists() and not out.is_dir():
        raise ConvertError(f"--out {out} is a file; it must be a run folder to write")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConvertError(
            f"--out {out} already exists and is not empty; pick a new folder, or pass --force "
            "to replace the run in it"
        )


def clear_stale(out: Path) -> list[str]:
    """Remove what a former run in `out` left that would describe another model (its
    metrics, logs, status and training state); the names removed."""
    rd = RunDir(out)
    stale = [rd.metrics, rd.epochs_log, rd.steps_log, rd.status, rd.state, rd.state_meta]
    stale += [rd.exit, rd.job, rd.request, rd.stop, rd.log]
    removed = []
    for f in stale:
        if f.is_file():
            f.unlink()
            removed.append(f.name)
    return removed


# --- converting ---------------------------------------------------------------------------------
def convert(
    path: str | Path,
    out: str | Path,
    cfg: ModelConfig,
    *,
    dataset: dict[str, Any],
    train: TrainConfig,
    key: str | None = None,
    force: bool = False,
    command: str = "",
) -> tuple[Run, list[str]]:
    """Write the state_dict in `path` as the run folder `out` of a VAE(cfg), then load it back
    and check every tensor. Returns (the loaded run, notes on what was done)."""
    path, out = Path(path), Path(out)
    check_out(out, force)
    state, where = pick_state_dict(read_file(path), path, key)
    state, stripped = strip_prefixes(state)
    check_state(state, cfg, path)
    model = VAE(cfg)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    notes = [f"read the state_dict from {where}"]
    notes += [f"stripped the {p!r} prefix" for p in stripped]
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in state.values()} - {"float32"})
    if dtypes:
        notes.append(f"stored {', '.join(dtypes)} tensors as float32")
    removed = clear_stale(out) if out.is_dir() else []
    if removed:
        notes.append(f"removed the former run's {', '.join(removed)}")
    source = {"file": path.name, "sha256": _sha256(path), "entry": key or where}
    save_model(
        out,
        model,
        dataset=dataset,
        train=train.to_dict(),
        command=command,
        extra={"converted_from": source},
    )
    run = load_run(out)
    saved = run.model.state_dict()
    differ = [k for k, v in model.state_dict().items() if not torch.equal(saved[k], v)]
    if differ:
        raise ConvertError(f"{out} does not read back as written: {_few(differ)} differ")
    return run, notes


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        if not args.dataset:
            raise ConvertError(
                "--dataset is required: it gives the image shape and the preprocessing the app "
                "uses (digits, shapes, mnist, fashion-mnist, folder or npz)"
            )
        check_out(args.out, args.force)  # before loading any data
        probe = load_dataset(args.dataset, "train", args.data_dir, image_size=args.image_size)
        cfg = model_config(args, probe.image_shape)
        train = TrainConfig(
            dataset=args.dataset,
            data_dir=args.data_dir,
            epochs=0,  # trained elsewhere
            image_size=args.image_size,
            binarize=BINARIZE[args.binarize],
        )
        run, notes = convert(
            args.file,
            args.out,
            cfg,
            dataset=probe.info(),
            train=train,
            key=args.key,
            force=args.force,
            command="python -m vae.convert " + shlex.join(argv),
        )
    except (ConvertError, CheckpointError, ConfigError, DatasetError, OSError) as e:
        print(error_line(e), file=sys.stderr)
        return 2
    n = sum(v.numel() for v in run.model.state_dict().values())
    print(
        f"Converted {args.file} ({'; '.join(notes)}): a VAE of {describe_config(run.config)}, "
        f"{n:,} weights. Wrote and checked {run.path}; add it under 'Add a model' in the "
        "app's sidebar."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
