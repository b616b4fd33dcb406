"""Your own array of images in a `.npz` file: `x` (N, H, W) or (N, H, W, C), optional `y`.

`x` is uint8 (0..255) or float in [0, 1]; C is 1 or 3; H and W are 8..64. `y` holds N integer
labels and `label_names` (optional) their names. The file is read with `allow_pickle=False`, so
it can never run code; object arrays are refused.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from vae.data import DatasetError, ImageDataset, guess_ink, looks_binary, seeded_split, subset

MIN_SIZE, MAX_SIZE = 8, 64
MAX_ARRAY_BYTES = 1 << 30  # the arrays' total size in memory, as their headers declare it


def declared_bytes(path: Path) -> int:
    """What the archive's arrays would take in memory, from their `.npy` headers alone.

    Read before anything is inflated: a 2 MB file of zeros can declare 9 GB. Raises
    DatasetError for a member that is not an array or whose header promises more data than
    the member holds."""
    fmt, total = np.lib.format, 0
    with zipfile.ZipFile(path) as z:
        for m in z.infolist():
            if not m.filename.endswith(".npy"):
                raise DatasetError(f"{path}: {m.filename!r} is not an array (.npy) member")
            with z.open(m) as f:
                version = fmt.read_magic(f)
                read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
                if version not in read:
                    raise DatasetError(f"{path}: {m.filename!r} has an unknown .npy version")
                shape, _, dtype = read[version](f)
            nbytes = math.prod(shape) * dtype.itemsize
            if not dtype.hasobject and nbytes > m.file_size:
                raise DatasetError(
                    f"{path}: {m.filename!r} declares {nbytes:,} bytes but holds {m.file_size:,}"
                )
            total += nbytes
    return total


def read_arrays(path: Path, max_bytes: int = MAX_ARRAY_BYTES) -> dict[str, np.ndarray]:
    """All arrays of the archive, loaded without pickles, and only when their declared size
    fits `max_bytes`."""
    try:
        if zipfile.is_zipfile(path):
            need = declared_bytes(path)
            if need > max_bytes:
                raise DatasetError(
                    f"{path}: its arrays would take {need / 2**20:,.0f} MB in memory; the limit "
                    f"is {max_bytes / 2**20:,.0f} MB. Use fewer or smaller images."
                )
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DatasetError(f"{path} holds a single array; save it with np.savez(path, x=x)")
        with npz:
            return {k: npz[k] for k in npz.files}
    except DatasetError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DatasetError(
                f"{path} contains pickled Python objects (an object array), which are refused "
                "because loading them could run code. Save plain numeric arrays instead."
            ) from None
        raise DatasetError(f"{path} is not a readable .npz file ({e})") from None
    except Exception as e:  # noqa: BLE001 - zlib, CRC, header or unicode errors: all bad files
        raise DatasetError(
            f"{path} is not a readable .npz file ({type(e).__name__}: {e})"
        ) from None


def images_from(x: np.ndarray, path: Path) -> torch.Tensor:
    """Validate `x` and return it as a float tensor (N, C, H, W) in [0, 1]."""
    shape = " x ".join(map(str, x.shape))
    if x.ndim == 3:
        x = x[..., None]  # (N, H, W, 1)
    if x.ndim != 4 or x.shape[3] not in (1, 3):
        hint = ""
        if x.ndim == 4 and x.shape[1] in (1, 3):
            hint = " It looks channels-first: use x.transpose(0, 2, 3, 1)."
        raise DatasetError(
            f"{path}: x has shape ({shape}); expected (N, H, W) or (N, H, W, C) with C 1 or 3."
            + hint
        )
    n, h, w, _ = x.shape
    if not (MIN_SIZE <= h <= MAX_SIZE and MIN_SIZE <= w <= MAX_SIZE):
        raise DatasetError(f"{path}: images are {h}x{w}; height and width must be 8..64 pixels")
    if n < 2:
        raise DatasetError(f"{path}: x holds {n} image(s); at least 2 are needed for a split")
    if x.dtype == np.uint8:
        t = torch.from_numpy(x.astype(np.float32) / 255.0)
    elif x.dtype == np.bool_:
        t = torch.from_numpy(x.astype(np.float32))
    elif np.issubdtype(x.dtype, np.floating):
        t = torch.from_numpy(x.astype(np.float32))
        if not torch.isfinite(t).all():
            raise DatasetError(f"{path}: x contains NaN or infinite values")
        lo, hi = float(t.min()), float(t.max())
        if lo < 0.0 or hi > 1.0:
            raise DatasetError(
                f"{path}: float x must lie in [0, 1] but spans [{lo:.4g}, {hi:.4g}]; "
                "divide by 255 or store uint8"
            )
    else:
        raise DatasetError(f"{path}: x has dtype {x.dtype}; use uint8 (0..255) or float in [0, 1]")
    return t.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def labels_from(
    arrays: dict[str, np.ndarray], n: int, path: Path
) -> tuple[torch.Tensor | None, list[str] | None]:
    """Optional `y` (N,) int64 and its label names."""
    if "y" not in arrays:
        return None, None
    y = arrays["y"]
    if y.shape != (n,) or not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DatasetError(
            f"{path}: y must be {n} integer labels (shape ({n},)), got dtype {y.dtype} "
            f"and shape {y.shape}"
        )
    y = torch.from_numpy(y.astype(np.int64))
    if n and int(y.min()) < 0:
        raise DatasetError(f"{path}: y has negative label {int(y.min())}; use 0..K-1")
    k = int(y.max()) + 1
    if "label_names" not in arrays:
        return y, [str(i) for i in range(k)]
    names = arrays["label_names"]
    if names.ndim != 1 or names.dtype.kind not in "US" or len(names) < k:
        raise DatasetError(
            f"{path}: label_names must be a 1-D string array with at least {k} names, "
            f"got dtype {names.dtype} and shape {names.shape}"
        )
    return y, [str(s.decode() if isinstance(s, bytes) else s) for s in names]


def load_npz(path: str | os.PathLike, split: str = "train", seed: int = 0) -> ImageDataset:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path.resolve()} does not exist or is not a file (expected a .npz)")
    arrays = read_arrays(path)
    if "x" not in arrays:
        found = ", ".join(arrays) or "nothing"
        raise DatasetError(f"{path} has no array named 'x' (found: {found}); use np.savez(f, x=x)")
    x = images_from(arrays["x"], path)  # (N, C, H, W)
    y, label_names = labels_from(arrays, len(x), path)
    ds = ImageDataset(
        name="npz",
        x=x,
        y=y,
        label_names=label_names,
        ink=guess_ink(x),
        binary_like=looks_binary(x),
        extra={"source": str(path.resolve())},
    )
    return subset(ds, seeded_split(len(ds), split, seed))
