"""Shared fixtures: keep torch to the 2 CI cores, find the shared MNIST copy, make tiny runs.

The builders themselves are in tests/helpers.py; tests/pages/conftest.py adds the AppTest app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def mnist_dir() -> Path | None:
    root = os.environ.get("VAE_DATA_DIR")
    if not root:
        return None
    d = Path(root) / "mnist"
    return d if (d / "train-images-idx3-ubyte.gz").exists() else None


@pytest.fixture
def mnist_root() -> Path:
    d = mnist_dir()
    if d is None:
        pytest.skip("MNIST not found: set VAE_DATA_DIR to a folder holding mnist/*.gz")
    return d.parent


@pytest.fixture
def make_run(tmp_path):
    """`make_run(name, **tiny_run options)`: a small trained run folder under tmp_path."""
    from tests.helpers import tiny_run

    def make(name: str = "run", **kw):
        return tiny_run(tmp_path / name, **kw)

    return make
