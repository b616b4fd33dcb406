"""A folder of your own images: `root/<class>/<image>` (labelled) or `root/<image>` (unlabelled).

Images are read with `vae.imageio.open_image` (PNG, JPEG, WebP, BMP, GIF first frame), centre-
cropped to a square and resized to `image_size`. Unreadable files are skipped and counted.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from vae.data import DatasetError, ImageDataset, guess_ink, looks_binary, seeded_split, subset
from vae.imageio import ImageError, open_image

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
MIN_SIZE, MAX_SIZE = 8, 64


def image_files(folder: Path, recursive: bool) -> list[Path]:
    """Image files by suffix, sorted, skipping hidden files and folders."""
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in paths
        if p.suffix.lower() in SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def scan(root: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """Files, and labels + class names when `root` has class subfolders holding images.

    With class subfolders, loose files directly in `root` are ignored.
    """
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    per_class = {c: image_files(root / c, recursive=True) for c in classes}
    classes = [c for c in classes if per_class[c]]
    if not classes:
        return image_files(root, recursive=False), None, None
    files = [p for c in classes for p in per_class[c]]
    labels = [i for i, c in enumerate(classes) for _ in per_class[c]]
    return files, labels, classes


def to_square(im: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize with Lanczos (done per file to bound memory)."""
    return ImageOps.fit(im, (size, size), method=Image.Resampling.LANCZOS)


def is_gray(im: Image.Image) -> bool:
    """Mode L, or RGB whose channels agree to within 2 levels (gray saved as colour)."""
    if im.mode == "L":
        return True
    a = np.asarray(im.convert("RGB")).astype(np.int16)  # (S, S, 3)
    return int(np.abs(a - a[..., :1]).max()) <= 2


def load_folder(
    root: str | os.PathLike,
    split: str = "train",
    image_size: int = 32,
    seed: int = 0,
    channels: int | None = None,
) -> ImageDataset:
    """Load every readable image under `root`; `channels` 1 or 3 forces L or RGB (default: auto)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder {root.resolve()} does not exist or is not a folder")
    if not isinstance(image_size, int) or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise DatasetError(f"image_size must be {MIN_SIZE}..{MAX_SIZE} pixels, got {image_size!r}")
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1 (grayscale), 3 (RGB) or None, got {channels!r}")
    try:
        files, labels, classes = scan(root)
    except OSError as e:
        raise DatasetError(f"cannot list the images in {root.resolve()}: {e}") from None
    if not files:
        raise DatasetError(
            f"no images found in {root.resolve()} (looked for {', '.join(SUFFIXES)} files, "
            "either directly in the folder or in one subfolder per class)"
        )

    images: list[Image.Image] = []
    kept: list[int] = []
    skipped: list[str] = []
    for i, path in enumerate(files):
        try:
            images.append(to_square(open_image(path), image_size))
            kept.append(i)
        except ImageError as e:
            skipped.append(str(e))
    if not images:
        raise DatasetError(
            f"none of the {len(files)} image files in {root.resolve()} could be read; "
            f"first problem: {skipped[0]}"
        )
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable image(s) in {root}: {'; '.join(skipped[:3])}",
            stacklevel=2,
        )

    if channels is None:
        mode = "L" if all(is_gray(im) for im in images) else "RGB"
    else:
        mode = "L" if channels == 1 else "RGB"
    arr = np.stack([np.asarray(im.convert(mode)) for im in images])  # (N, S, S[, 3]) uint8
    x = torch.from_numpy(arr).float().div_(255.0)
    x = x.unsqueeze(1) if mode == "L" else x.permute(0, 3, 1, 2).contiguous()  # (N, C, S, S)
    ds = ImageDataset(
        name="folder",
        x=x,
        y=None if labels is None else torch.tensor([labels[i] for i in kept], dtype=torch.int64),
        label_names=classes,
        ink=guess_ink(x),
        binary_like=looks_binary(x),
        extra={
            "source": str(root.resolve()),
            "skipped_files": len(skipped),
            "resize": "center-crop",
        },
    )
    return subset(ds, seeded_split(len(ds), split, seed))
