"""Is a dataset ready to use, and if not, can it be downloaded? (For the app's sidebar.)"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vae.data import DATASETS, DatasetError, Progress
from vae.data.folder import SUFFIXES
from vae.data.mnist import ALL_FILES, SPECS, dataset_dir, download_idx, missing_files


def dataset_status(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """{available, where, downloadable, message, title, size_mb}. `data_dir` as for
    `load_dataset`."""
    if name == "digits":
        return status(True, "bundled with scikit-learn", False, "8x8 digits, always available.")
    if name == "shapes":
        return status(True, "generated in memory", False, "Procedural shapes, always available.")
    if name in SPECS:
        folder = dataset_dir(name, data_dir).resolve()
        missing = missing_files(name, data_dir)
        title = SPECS[name].title
        size_mb = sum(SPECS[name].sizes.values()) >> 20
        if not missing:
            return status(True, folder, True, f"{title} is installed in {folder}.", title, size_mb)
        have = len(ALL_FILES) - len(missing)
        return status(
            False,
            folder,
            True,
            f"{title} is not installed ({have} of {len(ALL_FILES)} files in {folder}). "
            f"Download it (about {size_mb} MB), or put {', '.join(missing)} there by hand.",
            title,
            size_mb,
        )
    if name == "folder":
        if data_dir is None:
            return status(False, "", False, "Choose a folder of images (one subfolder per class).")
        root = Path(data_dir)
        if not root.is_dir():
            return status(False, root, False, f"{root} is not a folder.")
        if not any(p.suffix.lower() in SUFFIXES for p in root.rglob("*")):
            return status(False, root, False, f"{root} holds no PNG, JPEG, WebP, BMP or GIF files.")
        return status(True, root, False, f"Images in {root}.")
    if name == "npz":
        if data_dir is None:
            return status(False, "", False, "Choose a .npz file with an array x (and optional y).")
        path = Path(data_dir)
        if not path.is_file():
            return status(False, path, False, f"{path} does not exist.")
        return status(True, path, False, f"Arrays in {path}.")
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def status(
    available: bool,
    where: str | Path,
    downloadable: bool,
    message: str,
    title: str = "",
    size_mb: int | None = None,
) -> dict[str, Any]:
    return {
        "available": available,
        "where": str(where),
        "downloadable": downloadable,
        "message": message,
        "title": title,  # e.g. "Fashion-MNIST" (downloadable datasets)
        "size_mb": size_mb,  # the download, rounded down to MB
    }


def download(
    name: str,
    data_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    *,
    mirrors: Sequence[str] | None = None,
) -> Path:
    """Fetch MNIST or Fashion-MNIST (all four files); return the folder that holds them."""
    if name not in SPECS:
        if name in DATASETS:
            raise DatasetError(
                f"{name!r} has nothing to download: it is built in or read from your own files"
            )
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return download_idx(name, data_dir, progress, mirrors=mirrors)
