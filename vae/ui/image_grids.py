"""Labelled image grids and animated GIFs for the Traverse, Interpolate and Demos pages.

    pic = labelled_grid(tiles, 9, row_labels=["z3 · KL 2.10", ...], col_labels=["-3", ..., "+3"])
    st.image(pic); st.download_button("PNG", images.png_bytes(pic), "traversal.png")
    gif = gif_bytes(frames, size=192, fps=8)      # loops forever, bounces back and forth

The labels are drawn into the picture, so a downloaded PNG explains itself. Keep them to ASCII
and "·": Pillow's bundled font has no Greek letters or minus sign.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw, ImageFont

from vae.ui.images import to_pil, upscale

BG = (255, 255, 255)
INK = (40, 40, 40)
MUTED = (150, 150, 150)
ACCENT = (228, 87, 46)  # the app's marker colour


@lru_cache(maxsize=8)
def font(size: int = 13) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` px (its bitmap font when FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ImportError):
        return ImageFont.load_default()


def _text_w(text: str, f) -> int:
    left, _, right, _ = f.getbbox(text)
    return int(right - left)


def labelled_grid(
    tiles: Sequence[np.ndarray | Image.Image] | np.ndarray,
    ncol: int,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    muted_rows: Sequence[int] = (),
    highlight_col: int | None = None,
    tile: int = 64,
    pad: int = 2,
    font_size: int = 13,
) -> Image.Image:
    """Tiles (row by row, `ncol` per row) enlarged to `tile` px, on white, with optional row
    labels on the left, column labels on top, greyed rows and one framed column."""
    pics = [upscale(to_pil(t), tile).convert("RGB") for t in tiles]
    if not pics:
        raise ValueError("labelled_grid needs at least one tile")
    nrow = int(np.ceil(len(pics) / ncol))
    tw, th = pics[0].size
    f = font(font_size)
    left = 0 if not row_labels else max(_text_w(s, f) for s in row_labels) + 12
    top = 0 if not col_labels else font_size + 10
    w = left + ncol * (tw + pad) + pad
    h = top + nrow * (th + pad) + pad
    out = Image.new("RGB", (w, h), BG)
    draw = ImageDraw.Draw(out)
    muted = set(muted_rows)
    for i, p in enumerate(pics):
        r, c = divmod(i, ncol)
        x, y = left + pad + c * (tw + pad), top + pad + r * (th + pad)
        if r in muted:
            p = Image.blend(p, Image.new("RGB", p.size, BG), 0.45)
        out.paste(p, (x, y))
    if highlight_col is not None and 0 <= highlight_col < ncol:
        x = left + pad + highlight_col * (tw + pad)
        draw.rectangle([x - 2, top, x + tw + 1, h - 1], outline=ACCENT, width=2)
    for r, text in enumerate(row_labels or []):
        y = top + pad + r * (th + pad) + th // 2
        draw.text((6, y), text, fill=MUTED if r in muted else INK, font=f, anchor="lm")
    for c, text in enumerate(col_labels or []):
        x = left + pad + c * (tw + pad) + tw // 2
        draw.text((x, top // 2 + 1), text, fill=INK, font=f, anchor="mm")
    return out


def strip(
    tiles: Sequence[np.ndarray | Image.Image], labels: Sequence[str] | None = None, tile: int = 72
) -> Image.Image:
    """One row of tiles, each with a label above it (a path, an arithmetic result)."""
    return labelled_grid(tiles, len(tiles), col_labels=labels, tile=tile)


def gif_bytes(
    frames: Sequence[np.ndarray | Image.Image],
    size: int = 192,
    fps: float = 8.0,
    boomerang: bool = True,
) -> bytes:
    """An animated GIF that loops forever; with `boomerang` it plays forward then back.

    Remembered by content, so a page that shows the same frames again does not re-encode them
    (a palette per frame and LZW for 20 frames take ~0.1 s)."""
    if len(frames) == 0:
        raise ValueError("a GIF needs at least one frame")
    pixels = [np.asarray(to_pil(f).convert("RGB")) for f in frames]  # uint8 (H, W, 3) each
    return _gif(pixels, int(size), float(fps), bool(boomerang))


@st.cache_data(max_entries=16, show_spinner=False)
def _gif(pixels: list[np.ndarray], size: int, fps: float, boomerang: bool) -> bytes:
    pics = [upscale(Image.fromarray(p), size) for p in pixels]
    if boomerang and len(pics) > 2:
        pics = pics + pics[-2:0:-1]
    # a palette per frame: grey frames (<= 256 levels) stay exact, colour ones are quantised
    pal = [p.quantize(256, method=Image.Quantize.MEDIANCUT) for p in pics]
    buf = io.BytesIO()
    pal[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=pal[1:],
        duration=max(20, int(round(1000 / fps))),
        loop=0,
        disposal=1,
        optimize=False,
    )
    return buf.getvalue()


def gif_frame_count(data: bytes) -> int:
    """Number of frames of a GIF (for tests and captions)."""
    with Image.open(io.BytesIO(data)) as im:
        return int(getattr(im, "n_frames", 1))


def tiles(
    images: Sequence[np.ndarray | Image.Image], ncol: int | None = None, pad: int = 2, bg: int = 128
) -> Image.Image:
    """Tile images (all the same size) into one picture, row by row, with `pad` pixels between."""
    if len(images) == 0:
        raise ValueError("grid needs at least one image")
    tiles = [to_pil(im) for im in images]
    mode = "RGB" if any(t.mode == "RGB" for t in tiles) else "L"
    tiles = [t.convert(mode) for t in tiles]
    w, h = tiles[0].size
    ncol = ncol or int(np.ceil(np.sqrt(len(tiles))))
    nrow = int(np.ceil(len(tiles) / ncol))
    fill = (bg, bg, bg) if mode == "RGB" else bg
    out = Image.new(mode, (ncol * (w + pad) + pad, nrow * (h + pad) + pad), fill)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncol)
        out.paste(t, (pad + c * (w + pad), pad + r * (h + pad)))
    return out
