"""Shared fixtures: keep torch to the 2 CI cores and find the shared MNIST copy."""

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
