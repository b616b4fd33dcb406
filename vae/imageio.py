"""Safe image reading with Pillow: hostile, corrupt or huge files get a clear `ImageError`."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vae.errors import ExplorerError

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
MAX_PIXELS = 40_000_000  # about 6300x6300; larger inputs are refused, not decoded
MAX_BYTES = 50 * 1024 * 1024


class ImageError(ExplorerError, ValueError):
    """An image could not be read. The message is meant for the user, as is."""


def open_image(src: str | os.PathLike | bytes | io.IOBase, name: str | None = None) -> Image.Image:
    """Open a PNG, JPEG, WebP, BMP or GIF (first frame) and return it fully decoded.

    EXIF orientation is applied. Alpha is flattened onto white. The result is mode "L" or "RGB".
    """
    label = name or (str(src) if isinstance(src, (str, os.PathLike)) else "the upload")
    try:
        if isinstance(src, (str, os.PathLike)):
            size = Path(src).stat().st_size
            if size > MAX_BYTES:
                raise ImageError(f"{label} is {size >> 20} MiB; the limit is {MAX_BYTES >> 20} MiB")
            data = Path(src).read_bytes()
        elif isinstance(src, bytes):
            data = src
        else:
            data = src.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ImageError(f"{label} is larger than {MAX_BYTES >> 20} MiB")
        if not data:
            raise ImageError(f"{label} is empty")
        with Image.open(io.BytesIO(data), formats=FORMATS) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{label} is {w}x{h} pixels; the limit is {MAX_PIXELS:,} pixels")
            im.seek(0)  # GIF / animated WebP: first frame
            im.load()
            im = ImageOps.exif_transpose(im)
            return flatten(im)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{label} does not exist") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{label} is not a readable image; use PNG, JPEG, WebP, BMP or GIF"
        ) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError) as e:
        raise ImageError(f"{label} is corrupt or truncated ({type(e).__name__}: {e})") from None


def flatten(im: Image.Image) -> Image.Image:
    """Composite any transparency onto white; return mode "L" or "RGB"."""
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im).convert("RGB")
    if im.mode == "1":
        im = im.convert("L")
    elif im.mode.startswith(("I", "F")):  # 16-bit scans, 32-bit ints and floats
        im = _to_8bit(im)
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")
    return im


def _to_8bit(im: Image.Image) -> Image.Image:
    """A high-bit-depth grey image scaled to 8 bits, not clipped: `convert("L")` would clip a
    16-bit scan's values to 255 and make it look blank. 16-bit modes use their full range; a
    32-bit or float image its own maximum (floats in [0, 1] count as fractions)."""
    a = np.asarray(im, dtype=np.float64)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    if im.mode.startswith("I;16"):
        top = 65535.0
    elif im.mode == "F" and a.size and a.max() <= 1.0:
        top = 1.0
    else:
        top = max(float(a.max()) if a.size else 0.0, 255.0)
    return Image.fromarray((np.clip(a, 0, top) / top * 255).round().astype(np.uint8), "L")
