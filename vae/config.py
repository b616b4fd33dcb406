"""Dataclass configs for the model and the training run (nanoGPT style: one place, validated)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vae.errors import ExplorerError

ARCHS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
SIGMA_MODES = ("fixed", "learned")


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

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(s) for s in self.image_shape)  # type: ignore[assignment]
        self.hidden = tuple(int(h) for h in self.hidden)
        if len(self.image_shape) != 3:
            raise ConfigError(f"image_shape must be (C, H, W), got {self.image_shape}")
        c, h, w = self.image_shape
        if c not in (1, 3):
            raise ConfigError(f"image channels must be 1 or 3, got {c}")
        if not (8 <= h <= 64 and 8 <= w <= 64):
            raise ConfigError(f"image height and width must be in 8..64, got {h}x{w}")
        if not (2 <= int(self.latent_dim) <= 128):
            raise ConfigError(f"latent_dim must be in 2..128, got {self.latent_dim}")
        self.latent_dim = int(self.latent_dim)
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if not self.hidden or any(x < 1 or x > 4096 for x in self.hidden):
            raise ConfigError(f"hidden sizes must be 1..4096 and non-empty, got {self.hidden}")
        if self.arch == "conv" and len(self.hidden) > 4:
            raise ConfigError("conv arch supports at most 4 stride-2 layers")
        if not (0 <= int(self.dense) <= 4096):
            raise ConfigError(f"dense must be in 0..4096, got {self.dense}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.sigma_mode not in SIGMA_MODES:
            raise ConfigError(f"sigma_mode must be one of {SIGMA_MODES}, got {self.sigma_mode!r}")
        if not (1e-4 <= float(self.sigma) <= 10.0):
            raise ConfigError(f"sigma must be in 1e-4..10, got {self.sigma}")

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
    binarize: bool | None = None  # None: auto (bernoulli likelihood on binary-like data)
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    amp: bool = True  # bf16 autocast on CUDA only
    image_size: int | None = None  # resize for folder/npz/shapes datasets
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError("epochs must be >= 0")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        if not (0 < self.lr < 1):
            raise ConfigError(f"lr must be in (0, 1), got {self.lr}")
        if self.beta < 0:
            raise ConfigError("beta must be >= 0")
        if self.warmup_steps < 0 or self.free_bits < 0:
            raise ConfigError("warmup_steps and free_bits must be >= 0")
        if not 1 <= self.iw_samples <= 5000:
            raise ConfigError(f"iw_samples must be in 1..5000, got {self.iw_samples}")
        if self.iw_samples > 1 and self.free_bits > 0:
            raise ConfigError("free bits apply to the ELBO only; use iw_samples = 1 with them")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d)


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    try:
        return cls(**d)
    except TypeError as e:
        raise ConfigError(f"bad {cls.__name__}: {e}") from e
