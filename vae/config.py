"""Dataclass configs for the model and the training run (nanoGPT style: one place, validated)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

from vae.errors import ExplorerError

ARCHS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
SIGMA_MODES = ("fixed", "learned")
PRIORS = ("normal", "mixture")  # N(0, I), or a learned mixture of Gaussians (vae.priors)
MAX_COMPONENTS = 1024
OBJECTIVES = ("elbo", "btcvae")  # the ELBO (IWAE with iw_samples > 1), β-TCVAE (Chen et al. 2018)
MAX_LAYERS = 16  # hidden layers of an mlp (a conv stack has at most 4)
MAX_PARAMS = 50_000_000  # weights of one model (~200 MB of float32); the shipped ones are < 1M


class ConfigError(ExplorerError, ValueError):
    """A config value is out of range or of the wrong kind."""


@dataclass
class ModelConfig:
    """Everything needed to rebuild a `VAE`.

    `hidden` is the list of hidden layer widths for `mlp`, and the list of conv channels (each a
    stride-2 layer) for `conv`. `dense` is the width of the fully connected layer between the conv
    stack and the latent (0 for none).
    """

    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 20
    arch: str = "mlp"
    hidden: tuple[int, ...] = (400,)
    dense: int = 256
    likelihood: str = "bernoulli"
    sigma_mode: str = "fixed"
    sigma: float = 0.1
    prior: str = "normal"
    prior_components: int = 0  # K of the mixture prior; 0 for the normal prior

    def __post_init__(self) -> None:
        if isinstance(self.image_shape, (str, bytes)) or isinstance(self.hidden, (str, bytes)):
            raise ConfigError("image_shape and hidden must be lists of whole numbers")
        try:
            shape, hidden = tuple(self.image_shape), tuple(self.hidden)
        except TypeError:
            raise ConfigError("image_shape and hidden must be lists of whole numbers") from None
        if len(shape) != 3:
            raise ConfigError(f"image_shape must be (C, H, W), got {_short(shape)}")
        if len(hidden) > MAX_LAYERS:
            raise ConfigError(f"at most {MAX_LAYERS} hidden layers, got {len(hidden)}")
        self.image_shape = tuple(_whole(s, "image_shape") for s in shape)  # type: ignore[assignment]
        self.hidden = tuple(_whole(h, "hidden") for h in hidden)
        c, h, w = self.image_shape
        if c not in (1, 3):
            raise ConfigError(f"image channels must be 1 or 3, got {c}")
        if not (8 <= h <= 64 and 8 <= w <= 64):
            raise ConfigError(f"image height and width must be in 8..64, got {h}x{w}")
        self.latent_dim = _whole(self.latent_dim, "latent_dim")
        if not (2 <= self.latent_dim <= 128):
            raise ConfigError(f"latent_dim must be in 2..128, got {self.latent_dim}")
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {ARCHS}, got {_short(self.arch)}")
        if not self.hidden or any(x < 1 or x > 4096 for x in self.hidden):
            raise ConfigError(f"hidden sizes must be 1..4096 and non-empty, got {self.hidden}")
        if self.arch == "conv" and len(self.hidden) > 4:
            raise ConfigError("conv arch supports at most 4 stride-2 layers")
        self.dense = _whole(self.dense, "dense")
        if not (0 <= self.dense <= 4096):
            raise ConfigError(f"dense must be in 0..4096, got {self.dense}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"likelihood must be one of {LIKELIHOODS}, got {_short(self.likelihood)}"
            )
        if self.sigma_mode not in SIGMA_MODES:
            raise ConfigError(
                f"sigma_mode must be one of {SIGMA_MODES}, got {_short(self.sigma_mode)}"
            )
        self.sigma = _real(self.sigma, "sigma")
        if not (1e-4 <= self.sigma <= 10.0):
            raise ConfigError(f"sigma must be in 1e-4..10, got {self.sigma}")
        if self.prior not in PRIORS:
            raise ConfigError(f"prior must be one of {PRIORS}, got {_short(self.prior)}")
        self.prior_components = _whole(self.prior_components, "prior_components")
        if self.prior == "mixture" and not 1 <= self.prior_components <= MAX_COMPONENTS:
            raise ConfigError(
                f"a mixture prior needs 1..{MAX_COMPONENTS} components, got {self.prior_components}"
            )
        if self.prior == "normal" and self.prior_components:
            raise ConfigError("prior_components applies to the mixture prior only")
        n = self.param_count()
        if n > MAX_PARAMS:
            raise ConfigError(
                f"this model would have {n:,} weights; the limit is {MAX_PARAMS:,} "
                f"(about {MAX_PARAMS * 4 >> 20} MB)"
            )

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """The name and shape of every tensor of `VAE(self).state_dict()`, worked out without
        building anything (so a config's size is known before memory is allocated).
        tests/security/test_runs.py checks it against built models."""
        c, h, w = self.image_shape
        d2, out = 2 * self.latent_dim, {}

        def linear(name: str, n_in: int, n_out: int) -> None:
            out[f"{name}.weight"], out[f"{name}.bias"] = (n_out, n_in), (n_out,)

        if self.arch == "mlp":
            width = c * h * w
            for i, hid in enumerate(self.hidden):  # body: Flatten, then (Linear, ReLU) pairs
                linear(f"encoder.body.{1 + 2 * i}", width, hid)
                width = hid
            linear("encoder.out", width, d2)
            width = self.latent_dim
            for i, hid in enumerate(reversed(self.hidden)):
                linear(f"decoder.body.{2 * i}", width, hid)
                width = hid
            linear(f"decoder.body.{2 * len(self.hidden)}", width, c * h * w)
        else:
            ch, hh, ww = c, h, w
            for i, k in enumerate(self.hidden):  # body: (Conv2d, SiLU) pairs, Flatten, dense
                out[f"encoder.body.{2 * i}.weight"] = (k, ch, 3, 3)
                out[f"encoder.body.{2 * i}.bias"] = (k,)
                ch, hh, ww = k, (hh - 1) // 2 + 1, (ww - 1) // 2 + 1
            width, n = ch * hh * ww, 2 * len(self.hidden)
            if self.dense:
                linear(f"encoder.body.{n + 1}", width, self.dense)
            linear("encoder.out", self.dense or width, d2)
            if self.dense:  # decoder fc: [Linear, SiLU] to dense, then Linear to the start map
                linear("decoder.fc.0", self.latent_dim, self.dense)
            linear(f"decoder.fc.{2 if self.dense else 0}", self.dense or self.latent_dim, width)
            chans = [*reversed(self.hidden), c]
            for j, (a, b) in enumerate(zip(chans, chans[1:], strict=False)):
                out[f"decoder.ups.{2 * j}.weight"] = (a, b, 4, 4)
                out[f"decoder.ups.{2 * j}.bias"] = (b,)
        if self.likelihood == "gaussian" and self.sigma_mode == "learned":
            out["log_sigma"] = (c, h, w)
        if self.prior == "mixture":
            k, d = self.prior_components, self.latent_dim
            out.update({"prior.means": (k, d), "prior.logvars": (k, d), "prior.logits": (k,)})
        return out

    def param_count(self) -> int:
        """The number of weights of `VAE(self)`, from `state_shapes` (nothing is built)."""
        return sum(math.prod(s) for s in self.state_shapes().values())

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, d)


@dataclass
class TrainConfig:
    """Optimisation settings. `warmup_steps` linearly ramps β from 0 (Bowman et al. 2016)."""

    dataset: str = "digits"
    data_dir: str | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 100.0
    beta: float = 1.0
    warmup_steps: int = 0
    free_bits: float = 0.0
    iw_samples: int = 1  # k > 1: train on the IWAE bound (Burda et al. 2015) instead of the ELBO
    objective: str = "elbo"  # "btcvae": the ELBO with its total correlation weighted by tc_beta
    tc_beta: float = 6.0  # β-TCVAE's weight of the total correlation (1: the ELBO)
    binarize: bool | None = None  # None: auto (bernoulli likelihood on binary-like data)
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    amp: bool = True  # bf16 autocast on CUDA only
    image_size: int | None = None  # resize for folder/npz/shapes datasets
    init: str | None = None  # a run whose encoder and decoder weights this run starts from
    prior_lr: float | None = None  # learning rate of a mixture prior's parameters (None: lr)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, lo, hi in _WHOLE_RANGES:
            v = _whole(getattr(self, name), name)
            if not lo <= v <= hi:
                raise ConfigError(f"{name} must be in {lo}..{hi:,}, got {v:,}")
            setattr(self, name, v)
        for name in ("lr", "weight_decay", "grad_clip", "beta", "free_bits", "tc_beta"):
            v = _real(getattr(self, name), name)
            if v < 0:
                raise ConfigError(f"{name} must be >= 0, got {v}")
            setattr(self, name, v)
        if not (0 < self.lr < 1):
            raise ConfigError(f"lr must be in (0, 1), got {self.lr}")
        if self.prior_lr is not None:
            self.prior_lr = _real(self.prior_lr, "prior_lr")
            if not (0 < self.prior_lr < 1):
                raise ConfigError(f"prior_lr must be in (0, 1), got {self.prior_lr}")
        if self.image_size is not None:
            self.image_size = _whole(self.image_size, "image_size")
            if not 8 <= self.image_size <= 64:
                raise ConfigError(f"image_size must be in 8..64, got {self.image_size}")
        for name in ("dataset", "device"):
            if not isinstance(getattr(self, name), str) or len(getattr(self, name)) > 64:
                raise ConfigError(f"{name} must be a short text, got {_short(getattr(self, name))}")
        if self.data_dir is not None and (
            not isinstance(self.data_dir, str) or len(self.data_dir) > 4096 or "\0" in self.data_dir
        ):
            raise ConfigError(f"data_dir must be a folder path, got {_short(self.data_dir)}")
        if self.init is not None and (
            not isinstance(self.init, str) or len(self.init) > 4096 or "\0" in self.init
        ):
            raise ConfigError(f"init must be a run folder, got {_short(self.init)}")
        if self.iw_samples > 1 and self.free_bits > 0:
            raise ConfigError("free bits apply to the ELBO only; use iw_samples = 1 with them")
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"objective must be one of {OBJECTIVES}, got {_short(self.objective)}"
            )
        if self.objective == "btcvae" and (self.iw_samples > 1 or self.free_bits > 0):
            raise ConfigError(
                "the β-TCVAE objective is the single-sample ELBO's; use iw_samples = 1 and "
                "free_bits = 0 with it"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d)


_WHOLE_RANGES = (  # TrainConfig's whole-number fields and their ranges
    ("epochs", 0, 1_000_000),
    ("batch_size", 1, 1 << 20),
    ("warmup_steps", 0, 10**9),
    ("iw_samples", 1, 5000),
    ("seed", 0, 2**32 - 1),
)


def _short(v: Any, n: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= n else text[: n - 1] + "…"


def _whole(v: Any, name: str) -> int:
    """`v` as an int: a whole number (not a bool, text, NaN or 8.5), else a ConfigError."""
    if isinstance(v, Integral) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) and v == int(v):
        return int(v)
    raise ConfigError(f"{name} must be a whole number, got {_short(v)}")


def _real(v: Any, name: str) -> float:
    """`v` as a finite float (not a bool, text, NaN or Infinity), else a ConfigError."""
    if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    raise ConfigError(f"{name} must be a finite number, got {_short(v)}")


_JSON_KINDS: dict[str, tuple[type, ...]] = {  # a field's annotation -> the JSON values it takes
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "None": (type(None),),
    "tuple": (list, tuple),
    "dict": (dict,),
}


def _json_kind_ok(v: Any, annotation: str) -> bool:
    """Whether the JSON value `v` has the kind of a field annotated `annotation` (a bool is no
    number, and the items of a tuple are whole numbers)."""
    for alt in (a.strip() for a in annotation.split("|")):
        base = alt.split("[")[0]
        kinds = _JSON_KINDS.get(base)
        if kinds is None:
            return True  # an annotation this check does not know: the dataclass decides
        if isinstance(v, bool) and bool not in kinds:
            continue
        if isinstance(v, kinds):
            if base == "tuple":
                return all(isinstance(x, int) and not isinstance(x, bool) for x in v)
            return True
    return False


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    """`cls(**d)` for a dict read from JSON: every value must have its field's kind first."""
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(d).__name__}")
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(k[:40] for k in unknown[:10])}")
    for name, v in d.items():
        if not _json_kind_ok(v, fields[name]):
            raise ConfigError(f"{cls.__name__}.{name} must be {fields[name]}, got {_short(v)}")
    try:
        return cls(**d)
    except (TypeError, ValueError, OverflowError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"bad {cls.__name__}: {e}") from None
