"""Image helpers for the app: arrays in [0, 1] -> PIL images, PNG bytes, data URIs and image_grids.

Everything takes numpy arrays (or PIL images), never torch tensors, so pages stay torch-free.
Accepted array layouts: (H, W), (C, H, W) with C in {1, 3}, or (H, W, C).
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (any accepted layout) -> uint8 (H, W) or (H, W, 3)."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = np.moveaxis(a, 0, -1)  # (C, H, W) -> (H, W, C); images are at least 8 px high
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an image array, got shape {np.shape(img)}")
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_pil(img: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(img, Image.Image):
        return img
    return Image.fromarray(to_uint8(img))


def upscale(
    img: np.ndarray | Image.Image, size: int = 256, resample: str = "nearest"
) -> Image.Image:
    """Scale so the longer side is `size` pixels (small digits stay crisp with `nearest`)."""
    im = to_pil(img)
    w, h = im.size
    s = size / max(w, h)
    return im.resize((max(1, round(w * s)), max(1, round(h * s))), RESAMPLE[resample])


def letterbox(img: np.ndarray | Image.Image, size: int = 112, fill: int = 236) -> Image.Image:
    """Fit into a `size`×`size` square on a light grey ground, aspect kept, so that a row of
    pictures of different shapes lines up (a tall crop is no taller than the others)."""
    im = upscale(img, size, "bilinear" if max(to_pil(img).size) > size else "nearest")
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")
    box = Image.new(im.mode, (size, size), fill if im.mode == "L" else (fill, fill, fill))
    box.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
    return box


def short_name(name: str, n: int = 18) -> str:
    """A file name shortened in the middle so a caption never wraps inside a word:
    'photo_7_offcentre.jpg' -> 'photo_7_o…ntre.jpg'."""
    if len(name) <= n:
        return name
    keep = n - 1
    return name[: (keep + 1) // 2] + "…" + name[-(keep // 2) :]


def png_bytes(img: np.ndarray | Image.Image) -> bytes:
    buf = io.BytesIO()
    to_pil(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_uri(img: np.ndarray | Image.Image) -> str:
    """A `data:image/png;base64,...` URI; `st.image` shows it without a separate HTTP request."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode("ascii")
