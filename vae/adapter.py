"""Bring your own PyTorch VAE: a Python file, its safetensors weights and a dataset, opened as a
`Run` that the app's pages and the CLIs use like one of the project's own runs.

    spec = UserModelSpec.parse("my_vae.py:build", "my_vae.safetensors", "digits")
    run = load_user_model(spec)      # UserRun; run.model quacks like vae.model.VAE

The protocol (README, "Bring your own model"). NAME in the file (default `build`) is an
`nn.Module`, or a function or class that returns one when called without arguments, with

    encode(x)  x (B, C, H, W) in [0, 1] -> (mean, logvar), each (B, D), or a DiagonalGaussian
    decode(z)  z (B, D) -> the image mean in [0, 1], (B, C, H, W)

and, optionally, these attributes (or methods without arguments that return them):

    likelihood = "bernoulli" or "gaussian"  p(x|z) for the ELBO and the IWAE bound; without it
                                            those are shown as unavailable, with the reason
    sigma = 0.1                             the Gaussian's pixel σ: a number or a tensor
                                            broadcastable to (C, H, W) (needed for "gaussian")
    label_names = ["zero", "one", ...]      names of the dataset's classes
    latent_dim = 8                          found by encoding a dataset image otherwise

The file is imported only from a path given on the command line of the server or of a CLI, never
from an upload or a link. The weights are read like a run's (no pickle, the header checked
against the model's own state_dict first). The dataset is named as `NAME[:PATH]`: `digits`,
`shapes`, `mnist[:ROOT]`, `fashion-mnist[:ROOT]`, `folder:DIR` or `npz:FILE`.

A user model gets a folder of its own under the user cache folder (`<cache>/yours/<name>-<id>`,
holding a link to the weights), so the disk caches, maps and saved evaluations work as for a run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vae.checkpoint import (
    WEIGHTS_FILE,
    CheckpointError,
    Run,
    atomic_write_json,
    read_weights_file,
    refuse_pickle,
)
from vae.config import LIKELIHOODS
from vae.data import DATASETS, DatasetError, load_dataset
from vae.distributions import DiagonalGaussian
from vae.errors import ExplorerError
from vae.model import VAE

SOURCE = "yours"  # the picker's name for a model brought this way
DEFAULT_FACTORY = "build"
BUILTIN = ("digits", "shapes")  # datasets without a path
ROOTED = ("mnist", "fashion-mnist")  # datasets with an optional root folder
NEEDS_PATH = ("folder", "npz")
LATENT_DIMS = (2, 128)  # the app's limits (vae.config.ModelConfig has the same)
IMAGE_SIZES = (8, 64)
_SAFETENSORS_DTYPES = {
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}

NO_LIKELIHOOD = (
    "This model declares no likelihood, so it has no ELBO, reconstruction error or IWAE NLL: "
    'give it `likelihood = "bernoulli"` (or `"gaussian"` with a `sigma`) to get them.'
)


class AdapterError(CheckpointError):
    """A user's model file, factory, weights or data spec cannot be used; the message says why."""


class NoLikelihoodError(ExplorerError, ValueError):
    """Something needs log p(x|z), and the user's model declares no likelihood."""


# --- the command line's spec ---------------------------------------------------------------------
@dataclass(frozen=True)
class DataSpec:
    """A dataset named on the command line: `name` (one of vae.data.DATASETS) and its path."""

    name: str
    path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        """`digits`, `shapes`, `mnist[:ROOT]`, `fashion-mnist[:ROOT]`, `folder:DIR`, `npz:FILE`.
        Raises AdapterError."""
        name, sep, rest = str(text).strip().partition(":")
        name = name.strip().lower()
        if name not in DATASETS:
            raise AdapterError(
                f"--data {text!r}: the dataset must be one of {', '.join(DATASETS)}, written "
                "NAME or NAME:PATH (folder:DIR, npz:FILE.npz, mnist:ROOT)"
            )
        if name in BUILTIN and sep:
            raise AdapterError(f"--data {text!r}: {name} is built in and takes no path")
        if name in NEEDS_PATH and not rest:
            what = "an image folder" if name == "folder" else "a .npz file"
            raise AdapterError(f"--data {name} needs {what}: --data {name}:PATH")
        return cls(name, Path(rest).expanduser().resolve() if rest else None)

    def __str__(self) -> str:
        return self.name if self.path is None else f"{self.name}:{self.path}"


@dataclass(frozen=True)
class UserModelSpec:
    """Which file and factory, which weights, which data: what `--model`, `--weights` and
    `--data` say. Paths are absolute."""

    file: Path
    factory: str
    weights: Path
    data: DataSpec

    @classmethod
    def parse(cls, model: str, weights: str | None, data: str | None) -> UserModelSpec:
        """From the flags' texts: `path/to/file.py[:NAME]`, the weights file and the data.
        Raises AdapterError naming the flag."""
        if not weights:
            raise AdapterError("--model needs --weights FILE.safetensors (the model's weights)")
        if not data:
            raise AdapterError(
                "--model needs --data (digits, shapes, mnist, fashion-mnist, folder:DIR or "
                "npz:FILE): the images its pages show"
            )
        file, factory = split_model_arg(model)
        path = Path(file).expanduser().resolve()
        if path.suffix != ".py":
            raise AdapterError(f"--model {model!r}: name a Python file, path/to/file.py[:NAME]")
        if not path.is_file():
            raise AdapterError(f"--model: {path} does not exist")
        wpath = Path(weights).expanduser().resolve()
        if not wpath.exists():
            raise AdapterError(f"--weights: {wpath} does not exist")
        refuse_pickle(wpath)
        if not wpath.is_file():
            raise AdapterError(f"--weights: {wpath} is not a file")
        return cls(path, factory, wpath, DataSpec.parse(data))

    @property
    def name(self) -> str:
        """The model's name in the picker: the file's stem (and the factory, when not `build`)."""
        return self.file.stem + ("" if self.factory == DEFAULT_FACTORY else f"-{self.factory}")

    @property
    def key(self) -> str:
        """What identifies the model: file, factory, weights and data."""
        return f"{self.file}:{self.factory}|{self.weights}|{self.data}"

    def stamps(self) -> tuple[int, int, int, int]:
        """(mtime_ns, size) of the file and of the weights: an edited one gets a fresh load."""
        a, b = self.file.stat(), self.weights.stat()
        return a.st_mtime_ns, a.st_size, b.st_mtime_ns, b.st_size

    def folder(self) -> Path:
        """The model's own folder under the user cache (`<cache>/yours/<name>-<id>`); the id
        covers the file's contents, the factory, the weights' path and the data, so an edited
        model file starts with fresh caches."""
        from vae.diskcache import user_dir

        h = hashlib.sha256(self.key.encode())
        h.update(hashlib.sha256(self.file.read_bytes()).digest())
        return user_dir() / SOURCE / f"{self.name}-{h.hexdigest()[:12]}"

    def command_args(self) -> str:
        """The flags that open this model, for a message: `--model ... --weights ... --data ...`"""
        return f"--model {self.file}:{self.factory} --weights {self.weights} --data {self.data}"


def split_model_arg(text: str) -> tuple[str, str]:
    """`file.py:NAME` -> ("file.py", "NAME"); `file.py` -> ("file.py", "build")."""
    head, sep, tail = str(text).rpartition(":")
    if sep and tail.isidentifier() and head.endswith(".py"):
        return head, tail
    return str(text), DEFAULT_FACTORY


# --- the wrapped model ---------------------------------------------------------------------------
@dataclass(frozen=True)
class UserConfig:
    """What the pages read from `run.config` for a user's model (the role of ModelConfig)."""

    image_shape: tuple[int, int, int]
    latent_dim: int
    likelihood: str | None  # "bernoulli", "gaussian" or None (no ELBO)
    class_name: str = ""
    arch: str = SOURCE

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim,
            "likelihood": self.likelihood,
            "class_name": self.class_name,
            "arch": self.arch,
        }


class UserVAE(nn.Module):
    """A user's model behind the methods of `vae.model.VAE` that the app and the CLIs call.

    `decode` is the user's decode, unchanged (so `vae.export` traces the user's layers);
    `decode_params` is the same image mean, and `log_likelihood` reads it as the Bernoulli
    means or the Gaussian means of the declared likelihood."""

    def __init__(self, net: nn.Module, config: UserConfig) -> None:
        super().__init__()
        self.net = net
        self.config = config

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        return as_gaussian(self.net.encode(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The user's image mean in [0, 1], (B, C, H, W)."""
        return self.net.decode(z)

    def decode_params(self, z: torch.Tensor) -> torch.Tensor:
        """The image mean, (B, C, H, W): what `log_likelihood` takes."""
        return self.net.decode(z)

    def pixel_sigma(self) -> torch.Tensor:
        """The Gaussian likelihood's σ, read from the model each time (it may be learned)."""
        p = next(self.parameters())
        sigma = torch.as_tensor(_hook(self.net, "sigma"), device=p.device, dtype=torch.float32)
        return sigma.clamp_min(1e-6)

    def log_likelihood(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels. params: image means (..., C, H, W), x broadcastable.
        Bernoulli: x log μ + (1 − x) log(1 − μ), each log at least −100 as in
        F.binary_cross_entropy; Gaussian: log N(x; μ, σ²). Raises NoLikelihoodError."""
        kind = self.config.likelihood
        if kind is None:
            raise NoLikelihoodError(NO_LIKELIHOOD)
        mu = params.float().clamp(0.0, 1.0)
        x = x.float().expand_as(mu)
        if kind == "bernoulli":
            ll = -F.binary_cross_entropy(mu, x, reduction="none")
        else:
            sigma = self.pixel_sigma()
            ll = -0.5 * (((x - mu) / sigma) ** 2 + 2 * torch.log(sigma) + math.log(2 * math.pi))
        return ll.flatten(-3).sum(-1)

    # The rest is VAE's own code, which needs only encode, decode, decode_params and config.
    # A user's model has the prior N(0, I).
    learned_prior = VAE.learned_prior
    prior_log_prob = VAE.prior_log_prob
    kl = VAE.kl
    kl_per_dim = VAE.kl_per_dim
    sample_prior = VAE.sample_prior
    forward = VAE.forward
    embed = VAE.embed
    reconstruct = VAE.reconstruct
    sample = VAE.sample
    interpolate = VAE.interpolate


def as_gaussian(out: Any) -> DiagonalGaussian:
    """The user's encode output as a DiagonalGaussian: one already, an object with `mean` and
    `logvar`, a torch Normal, or a (mean, logvar) pair. Raises AdapterError otherwise."""
    if isinstance(out, DiagonalGaussian):
        return out
    if isinstance(out, torch.distributions.Normal):
        return DiagonalGaussian(out.loc, 2 * torch.log(out.scale))
    if isinstance(out, (tuple, list)) and len(out) == 2 and all(torch.is_tensor(t) for t in out):
        return DiagonalGaussian(out[0], out[1])
    mean, logvar = getattr(out, "mean", None), getattr(out, "logvar", None)
    if torch.is_tensor(mean) and torch.is_tensor(logvar):
        return DiagonalGaussian(mean, logvar)
    raise AdapterError(
        f"encode(x) must return (mean, logvar) or a DiagonalGaussian, got {type(out).__name__}"
    )


def _hook(net: nn.Module, name: str) -> Any:
    """An optional attribute of the user's model: its value, or what calling it returns."""
    value = getattr(net, name, None)
    if callable(value) and not torch.is_tensor(value) and not isinstance(value, nn.Module):
        value = value()
    return value


def likelihood_missing(run: Run) -> str | None:
    """Why the ELBO, reconstruction error and IWAE bound cannot be computed for `run`, in one
    line; None when they can (every project run, and a user model that declares a likelihood)."""
    return NO_LIKELIHOOD if getattr(run.config, "likelihood", "") is None else None


# --- the run -------------------------------------------------------------------------------------
@dataclass
class UserRun(Run):
    """A `Run` of a user's model: `path` is its folder under the user cache."""

    spec: UserModelSpec | None = None
    label_names: list[str] | None = None  # the model's own names for the dataset's classes
    data_problem: str = ""  # why its dataset could not be read when the model was opened

    def command_args(self) -> str:
        return self.spec.command_args() if self.spec else ""


def import_model_file(path: Path) -> Any:
    """Import the user's file by its path (never by a name on sys.path). Raises AdapterError
    with the error and the line of the file it came from."""
    name = "_vae_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AdapterError(f"{path} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and the like look their module up there
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's code: any error, said plainly
        sys.modules.pop(name, None)
        raise AdapterError(f"importing {path.name} failed: {_user_error(e, path)}") from e
    return module


def _user_error(e: BaseException, path: Path) -> str:
    """`TypeError: ... (my_vae.py, line 12)`: the error and the last line of the user's file
    in its traceback."""
    where = ""
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if Path(frame.filename).resolve() == path:
            where = f" ({path.name}, line {frame.lineno})"
            break
    text = f"{type(e).__name__}: {e}".strip()
    return (text if len(text) <= 500 else text[:499] + "…") + where


def build_module(spec: UserModelSpec) -> nn.Module:
    """Import the file and get the model from its factory. Raises AdapterError."""
    module = import_model_file(spec.file)
    obj = getattr(module, spec.factory, None)
    if obj is None:
        raise AdapterError(
            f"{spec.file.name} has no {spec.factory!r}: name the model, or a function that "
            f"builds it, after a colon: --model {spec.file.name}:NAME"
        )
    if isinstance(obj, nn.Module):
        net = obj
    elif callable(obj):
        try:
            net = obj()
        except Exception as e:  # noqa: BLE001 - the user's code
            raise AdapterError(
                f"{spec.file.name}: {spec.factory}() failed: {_user_error(e, spec.file)}"
            ) from e
    else:
        raise AdapterError(
            f"{spec.file.name}: {spec.factory} is a {type(obj).__name__}, not an nn.Module or a "
            "function that returns one"
        )
    if not isinstance(net, nn.Module):
        raise AdapterError(
            f"{spec.file.name}: {spec.factory}() returned a {type(net).__name__}, not an nn.Module"
        )
    for method in ("encode", "decode"):
        if not callable(getattr(net, method, None)):
            raise AdapterError(
                f"{spec.file.name}: {type(net).__name__} has no {method}() method (the adapter "
                "needs encode(x) -> (mean, logvar) and decode(z) -> image mean in [0, 1])"
            )
    if next(net.parameters(), None) is None:
        raise AdapterError(f"{spec.file.name}: {type(net).__name__} has no parameters")
    return net


def load_weights(net: nn.Module, path: Path) -> dict[str, str]:
    """Load a safetensors file into `net`, its names, shapes and dtypes checked against
    `net.state_dict()` first (a tied copy of another tensor may be absent). Returns the file's
    metadata. Raises CheckpointError."""
    own = net.state_dict()
    expected = {k: tuple(v.shape) for k, v in own.items()}
    dtypes = {}
    for k, v in own.items():
        if not v.is_floating_point():
            if v.dtype not in _SAFETENSORS_DTYPES:
                raise AdapterError(f"{type(net).__name__}: tensor {k} has dtype {v.dtype}")
            dtypes[k] = _SAFETENSORS_DTYPES[v.dtype]
    groups: dict[tuple, list[str]] = {}  # safetensors' save_model keeps one name of tied ones
    for k, v in own.items():
        ptr = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        groups.setdefault(ptr, []).append(k)
    tied = {k for ks in groups.values() if len(ks) > 1 for k in ks}
    state, meta = read_weights_file(
        path,
        path.name,
        expected,
        dtypes=dtypes,
        may_miss=frozenset(tied),
        against=f"the state_dict of {type(net).__name__}",
    )
    absent = [ks[0] for ks in groups.values() if not any(k in state for k in ks)]
    if absent:
        raise AdapterError(f"{path.name} does not hold {absent[:5]}")
    net.load_state_dict(state, strict=False)  # every name checked above; tied copies share
    return meta


@torch.no_grad()
def load_user_model(spec: UserModelSpec, device: str | torch.device = "cpu") -> UserRun:
    """Import, build and load the user's model, probe it on a few inputs, and wrap it as a
    `UserRun`. Raises AdapterError (a CheckpointError) with a message for the user."""
    net = build_module(spec)
    weights_meta = load_weights(net, spec.weights)
    net.to(device).eval()
    likelihood = _likelihood(net, spec)
    names = _label_names(net, spec)
    d = spec.data
    dim = _latent_dim(net, spec)
    shape = _probe_decode(net, dim, device, spec) if dim is not None else None
    resize = shape[1] if shape is not None and d.name in ("shapes", "folder") else None
    ds, data_problem = None, ""
    try:
        ds = load_dataset(d.name, "test", d.path, image_size=resize, download=False)
    except DatasetError as e:
        data_problem = str(e)
    if dim is None:
        if ds is None:
            raise AdapterError(
                f"{spec.file.name}: to find its latent size the model needs its data, and "
                f"{data_problem.rstrip('.')}. Give the model a latent_dim attribute, or the data."
            )
        dim = _probe_encode(net, ds.x[:2].to(device), None, spec).mean.shape[-1]
        _check_latent_dim(dim, spec)
        shape = _probe_decode(net, dim, device, spec)
    if ds is not None and tuple(ds.image_shape) != shape:
        raise AdapterError(
            f"{spec.file.name}: decode draws images of shape {shape}, but --data {d} gives "
            f"{tuple(ds.image_shape)}"
            + (
                "; give the model a latent_dim attribute and the images are resized to fit"
                if d.name in ("shapes", "folder")
                else ""
            )
        )
    x = ds.x[:2].to(device) if ds is not None else torch.full((2, *shape), 0.5, device=device)
    _probe_encode(net, x, dim, spec)
    config = UserConfig(shape, dim, likelihood, type(net).__name__)
    model = UserVAE(net, config).eval()
    if likelihood == "gaussian":
        _check_sigma(model, spec)
    info = ds.info() if ds is not None else {"name": d.name, "image_shape": list(shape)}
    if names is not None:
        info["label_names"] = names
    train = {"dataset": d.name, "data_dir": None if d.path is None else str(d.path)}
    if d.name in ("shapes", "folder"):
        train["image_size"] = shape[1]
    meta = {"dataset": info, "train": train, "command": spec.command_args(), "created": ""}
    return UserRun(
        path=prepare_folder(spec),
        model=model,
        meta=meta,
        weights_meta=weights_meta,
        spec=spec,
        label_names=names,
        data_problem=data_problem,
    )


def _latent_dim(net: nn.Module, spec: UserModelSpec) -> int | None:
    value = _hook(net, "latent_dim")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdapterError(f"{spec.file.name}: latent_dim must be a whole number, got {value!r}")
    _check_latent_dim(value, spec)
    return value


def _check_latent_dim(dim: int, spec: UserModelSpec) -> None:
    if not LATENT_DIMS[0] <= dim <= LATENT_DIMS[1]:
        raise AdapterError(f"{spec.file.name}: the latent size must be in 2..128, it is {dim}")


def _likelihood(net: nn.Module, spec: UserModelSpec) -> str | None:
    value = _hook(net, "likelihood")
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in LIKELIHOODS:
        raise AdapterError(
            f"{spec.file.name}: likelihood must be 'bernoulli' or 'gaussian' (or absent), "
            f"got {str(value)[:40]!r}"
        )
    return value.lower()


def _label_names(net: nn.Module, spec: UserModelSpec) -> list[str] | None:
    value = _hook(net, "label_names")
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise AdapterError(f"{spec.file.name}: label_names must be a list of texts")
    return [v[:64] for v in value][:1000]


def _call(fn: Any, arg: torch.Tensor, what: str, spec: UserModelSpec) -> Any:
    try:
        return fn(arg)
    except AdapterError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's code
        raise AdapterError(
            f"{spec.file.name}: {what} failed on a test batch {tuple(arg.shape)}: "
            f"{_user_error(e, spec.file)}"
        ) from e


def _probe_encode(
    net: nn.Module, x: torch.Tensor, dim: int | None, spec: UserModelSpec
) -> DiagonalGaussian:
    q = as_gaussian(_call(net.encode, x, "encode(x)", spec))
    want = (x.shape[0], dim if dim is not None else q.mean.shape[-1])
    for part, t in (("mean", q.mean), ("logvar", q.logvar)):
        if t.ndim != 2 or tuple(t.shape) != want:
            raise AdapterError(
                f"{spec.file.name}: encode(x) of {x.shape[0]} images returned a {part} of shape "
                f"{tuple(t.shape)}, expected {want} (batch, latent size)"
            )
        if not torch.isfinite(t).all():
            raise AdapterError(f"{spec.file.name}: encode(x) returned a {part} with NaN or Inf")
    return q


def _probe_decode(net: nn.Module, dim: int, device: Any, spec: UserModelSpec) -> tuple:
    gen = torch.Generator().manual_seed(0)
    z = torch.cat([torch.zeros(1, dim), torch.randn(3, dim, generator=gen)]).to(device)  # (4, D)
    out = _call(net.decode, z, "decode(z)", spec)
    if not torch.is_tensor(out) or out.ndim != 4 or out.shape[0] != z.shape[0]:
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise AdapterError(
            f"{spec.file.name}: decode(z) of {z.shape[0]} codes must return images (B, C, H, W),"
            f" got {got}"
        )
    c, h, w = (int(s) for s in out.shape[1:])
    if c not in (1, 3) or not all(IMAGE_SIZES[0] <= s <= IMAGE_SIZES[1] for s in (h, w)):
        raise AdapterError(
            f"{spec.file.name}: decode draws {c}×{h}×{w} images; the app takes 1 or 3 channels "
            "and 8..64 pixels a side"
        )
    lo, hi = float(out.min()), float(out.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1e-6 or hi > 1 + 1e-6:
        raise AdapterError(
            f"{spec.file.name}: decode(z) must return image means in [0, 1], got values in "
            f"[{lo:.3g}, {hi:.3g}] (end it with torch.sigmoid)"
        )
    return c, h, w


def _check_sigma(model: UserVAE, spec: UserModelSpec) -> None:
    try:
        sigma = model.pixel_sigma()
        torch.broadcast_shapes(sigma.shape, model.config.image_shape)
    except (TypeError, RuntimeError, ValueError) as e:
        raise AdapterError(
            f"{spec.file.name}: a gaussian likelihood needs sigma, a positive number or a tensor "
            f"broadcastable to {model.config.image_shape} ({e})"
        ) from None
    if not torch.isfinite(sigma).all():
        raise AdapterError(f"{spec.file.name}: sigma must be finite")


def prepare_folder(spec: UserModelSpec) -> Path:
    """The model's folder under the user cache, with `model.safetensors` linking to the weights
    (a copy where links cannot be made) and `yours.json` saying where it came from."""
    folder = spec.folder()
    link = folder / WEIGHTS_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (link.is_symlink() and Path(os.readlink(link)) == spec.weights):
            tmp = folder / f".{WEIGHTS_FILE}.{os.getpid()}-{threading.get_ident()}.link"
            tmp.unlink(missing_ok=True)
            try:
                tmp.symlink_to(spec.weights)
            except OSError:
                import shutil

                shutil.copyfile(spec.weights, tmp)
            os.replace(tmp, link)
        about = {"model": f"{spec.file}:{spec.factory}", "weights": str(spec.weights)}
        about["data"] = str(spec.data)
        if _read_about(folder) != about:
            atomic_write_json(folder / "yours.json", about)
    except OSError as e:
        raise AdapterError(f"cannot prepare {folder} for your model: {e.strerror or e}") from None
    return folder


def _read_about(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "yours.json").read_text())
    except (OSError, ValueError):
        return None
