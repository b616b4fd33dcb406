"""Fixtures of the page tests: the app through AppTest on temporary model folders.

A test module chooses its models with `MODELS`:
- "basic" (default): two tiny digits checkpoints (4 and 20 latent dimensions), a run whose
  dataset (MNIST) is not on disk, and a broken run folder;
- "trained": a 4-d digits model trained by `vae.train` (with its logs), 2-d digits twins with
  β = 1 and β = 0 (the smoothness demo), and a 4-d shapes model (MIG).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import app_test, tiny_digits_checkpoint, tiny_run
from vae.config import ModelConfig, TrainConfig
from vae.train import train


def _mnist_checkpoint(run_dir: Path) -> None:
    from vae.checkpoint import save_model
    from vae.config import ModelConfig
    from vae.model import VAE

    cfg = ModelConfig(image_shape=(1, 28, 28), latent_dim=2, arch="mlp", hidden=(8,))
    info = {"name": "mnist", "image_shape": [1, 28, 28], "label_names": list("0123456789")}
    save_model(run_dir, VAE(cfg), dataset=info, train={"dataset": "mnist"})


def _train(out: Path, latent_dim: int = 4, epochs: int = 2) -> Path:
    """A digits model trained by `vae.train` itself, so it has metrics.jsonl and steps.jsonl."""
    train(
        ModelConfig(image_shape=(1, 8, 8), latent_dim=latent_dim, arch="mlp", hidden=(64,)),
        TrainConfig(dataset="digits", epochs=epochs, lr=3e-3),
        out,
        command="tests",
        log_every=4,
        progress_bar=False,
    )
    return out


def _quick(out: Path, dataset: str, latent_dim: int, beta: float, steps: int, size: int = 8):
    """A few Adam steps, saved as a run folder (no training logs)."""
    image_size = size if dataset == "shapes" else None
    return tiny_run(out, dataset, latent_dim=latent_dim, beta=beta, steps=steps,
                    image_size=image_size, metrics=False)  # fmt: skip


def _basic(root: Path) -> dict[str, Path]:
    assets = root / "assets"
    tiny_digits_checkpoint(assets / "digits-mlp", latent_dim=4, steps=120)
    tiny_digits_checkpoint(assets / "digits-wide", latent_dim=20, steps=40, seed=1)
    (root / "runs").mkdir()
    _mnist_checkpoint(root / "runs" / "mnist-tiny")
    (root / "runs" / "broken").mkdir()
    (root / "runs" / "broken" / "config.json").write_text("{not json")
    (root / "data").mkdir()
    return {"assets": assets, "runs": root / "runs", "cache": root / "cache", "root": root}


def _trained(root: Path) -> dict[str, Path]:
    assets = root / "assets"
    _train(assets / "digits-mlp")
    _quick(assets / "digits-2d", "digits", 2, 1.0, 100)
    _quick(assets / "digits-beta0", "digits", 2, 0.0, 100)
    _quick(assets / "shapes-mlp", "shapes", 4, 1.0, 40, size=16)
    (root / "runs").mkdir()
    (root / "data").mkdir()
    return {"assets": assets, "runs": root / "runs", "cache": root / "cache", "root": root}


@pytest.fixture(scope="module")
def model_dirs(request, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    kind = getattr(request.module, "MODELS", "basic")
    return {"basic": _basic, "trained": _trained}[kind](tmp_path_factory.mktemp(kind))


def _start(model_dirs, monkeypatch, **env: str) -> AppTest:
    return app_test(model_dirs, monkeypatch, VAE_DATA_DIR=str(model_dirs["root"] / "data"), **env)


@pytest.fixture
def app(model_dirs, monkeypatch) -> AppTest:
    """The app as served by default: latent panels decode in the browser."""
    return _start(model_dirs, monkeypatch)


@pytest.fixture
def server_app(model_dirs, monkeypatch) -> AppTest:
    """The app with browser decoding off: Explore's sliders are st.slider, decoded on the server."""
    return _start(model_dirs, monkeypatch, VAE_LIVE_DECODER="0")
