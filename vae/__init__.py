"""VAE Latent Explorer: the library behind the app. Never imports streamlit."""

from vae.checkpoint import CheckpointError, Run, load_run, save_model
from vae.config import ConfigError, ModelConfig, TrainConfig
from vae.distributions import DiagonalGaussian
from vae.model import VAE, interpolate_path

__all__ = [
    "VAE",
    "CheckpointError",
    "ConfigError",
    "DiagonalGaussian",
    "ModelConfig",
    "Run",
    "TrainConfig",
    "interpolate_path",
    "load_run",
    "save_model",
]
