"""Turn any user image into model input, made the way the model's training images were made.

Digit models (MNIST, sklearn digits) get the MNIST recipe (LeCun et al. 1998, "Gradient-based
learning applied to document recognition", Sec. III-A): find the ink, crop it, scale it so the
longer side of its box is 20 px of 28 preserving aspect ratio, anti-aliased, then centre it in the
frame by its centre of mass. Photos of paper need more first: grayscale, ink polarity, an uneven
background removed, a threshold (Otsu 1979), and a stroke width like the dataset's.

Other models get grayscale or RGB, an ink flip when the polarities differ, and a resize.
`preprocess` returns the model input and a named thumbnail of every step, for the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from scipy import ndimage as ndi

from vae.errors import ExplorerError

INK_HIGH, INK_LOW = "ink-high", "ink-low"
WORK_MIN, WORK_MAX = 128, 640  # working resolution (longer side) for finding the ink
OVERSAMPLE = 4  # strokes are shaped at 4x the final box size, then box-filtered down
THUMB_MIN, THUMB_MAX = 112, 160
# Stroke width / longer side of the ink box: (lowest kept, typical, highest kept). MNIST: 1st, 50th
# and 99th percentiles of 1000 test digits through this pipeline. sklearn digits: the typical
# width gives MNIST digit shapes their mean intensity (0.305); the range is scaled like MNIST's.
STROKE_WIDTH = {"mnist": (0.095, 0.136, 0.22), "digits": (0.147, 0.21, 0.34)}


class PreprocessError(ExplorerError, ValueError):
    """The image cannot be turned into model input. The message is meant for the user, as is."""


@dataclass
class Preprocessed:
    x: torch.Tensor  # (1, C, H, W) float32 in [0, 1]
    steps: list[tuple[str, Image.Image]] = field(default_factory=list)
    inverted: bool = False


def digit_style(dataset_info: dict[str, Any]) -> str | None:
    """'mnist' or 'digits' when the dataset's images were made from centred digits, else None."""
    prep = dataset_info.get("preprocessing") or {}
    name = dataset_info.get("name")
    if name == "digits" or prep.get("center") == "digits":
        return "digits"
    if name == "mnist" or prep.get("center") == "mnist":
        return "mnist"
    return None


def preprocess(
    img: Image.Image, dataset_info: dict[str, Any], invert: bool | None = None
) -> Preprocessed:
    """`img` as the model input (1, C, H, W) for a dataset described by `dataset_info`.

    `dataset_info` is a run's config.json["dataset"]. `invert` forces (True) or forbids (False)
    flipping the image's ink polarity; None decides from the image. Raises `PreprocessError`.
    """
    shape = dataset_info.get("image_shape")
    if not shape or len(shape) != 3:
        raise PreprocessError(f"the dataset info has no valid image_shape: {shape!r}")
    c, h, w = (int(s) for s in shape)
    ink = (dataset_info.get("preprocessing") or {}).get("ink", INK_HIGH)
    style = digit_style(dataset_info)
    if style is not None:
        return _preprocess_digit(img, (c, h, w), ink, style, invert)
    return _preprocess_generic(img, (c, h, w), ink, invert, dataset_info)


# --- digits ---------------------------------------------------------------------------------------
def _preprocess_digit(
    img: Image.Image, shape: tuple[int, int, int], ink: str, style: str, invert: bool | None
) -> Preprocessed:
    c, h, w = shape
    steps: list[tuple[str, Image.Image]] = [("input", _thumb(img))]
    g = _to_array(img.convert("L"))  # (h0, w0) in [0, 1]
    g = _resize_array(g, int(np.clip(max(g.shape), WORK_MIN, WORK_MAX)))
    steps.append(("grayscale", _thumb(g)))

    # 1. Ink polarity: the paper is the majority of pixels, so it sits on the median's side.
    lo, hi = np.percentile(g, [1, 99])
    paper_light = bool(np.median(g) >= (lo + hi) / 2) if invert is None else invert
    a = 1.0 - g if paper_light else g  # ink high from here on
    steps.append(("inverted" if paper_light else "ink already light", _thumb(a)))

    # 2. Background: a grey opening wider than any stroke keeps only paper, shadows included.
    # Smoothing first keeps sensor noise from biasing the opening (a running minimum) low.
    a = ndi.gaussian_filter(a, sigma=max(0.7, max(a.shape) / 200))
    size = max(9, max(a.shape) // 6) | 1
    bg = ndi.uniform_filter(ndi.grey_opening(a, size=(size, size)), size)
    d = np.clip((a - bg) / np.maximum(1.0 - bg, 0.05), 0.0, 1.0)  # ink contrast over paper
    steps.append(("background removed", _thumb(d / max(d.max(), 1e-6))))

    # 3. Threshold (Otsu), drop specks, stretch the ink to full intensity.
    mask, soft = _find_ink(d)
    steps.append(("ink found", _thumb(soft)))

    # 4. Crop to the ink box, oversampled 4x the target box, and match the dataset stroke width.
    box = w if style == "digits" else max(1, round(20 * min(h, w) / 28))
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
    big = OVERSAMPLE * box
    crop = np.pad(_resize_array(crop, big) > 0.5, big // 2)  # bilevel, like the NIST scans
    crop = _match_stroke(crop, STROKE_WIDTH[style], big)
    crop = _tight(crop.astype(np.float32))
    steps.append(("cropped", _thumb(crop)))

    # 5. Scale so the box's longer side is `box` px (aspect kept, area-averaged = anti-aliased).
    ch, cw = crop.shape
    s = box / max(ch, cw)
    size_hw = (max(1, min(h, round(ch * s))), max(1, min(w, round(cw * s))))
    patch = np.asarray(_to_image(crop).resize(size_hw[::-1], Image.Resampling.BOX))
    steps.append((f"scaled to {box} px", _thumb(patch)))

    # 6. Paste: MNIST centres the centre of mass (at index H/2, W/2 on average in MNIST itself);
    # sklearn digits fill the frame, so centre their box.
    ph, pw = patch.shape
    if style == "mnist":
        cy, cx = ndi.center_of_mass(patch)
        oy, ox = round(h / 2 - cy), round(w / 2 - cx)
    else:
        oy, ox = (h - ph) // 2, (w - pw) // 2
    oy, ox = int(np.clip(oy, 0, h - ph)), int(np.clip(ox, 0, w - pw))
    out = np.zeros((h, w), dtype=np.float32)
    out[oy : oy + ph, ox : ox + pw] = patch
    if ink == INK_LOW:
        out = 1.0 - out
    steps.append(("model input", _thumb(out)))
    x = torch.from_numpy(np.clip(out, 0, 1)).float()[None, None].repeat(1, c, 1, 1)
    return Preprocessed(x=x, steps=steps, inverted=paper_light)


def _find_ink(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the ink strokes and the ink as intensities in [0, 1]; PreprocessError if none."""
    med = float(np.median(d))
    noise = 1.4826 * float(np.median(np.abs(d - med)))  # robust σ of the paper
    peak = float(d.max())
    if peak < max(0.12, med + 12 * noise):
        raise PreprocessError(
            "no ink found: the image looks blank. Use a photo or drawing of a single digit "
            "with clear contrast against the paper."
        )
    t = max(_otsu(d), med + 4 * noise)
    mask = d > t
    labels, n = ndi.label(mask, structure=np.ones((3, 3)))
    areas = ndi.sum_labels(mask, labels, index=np.arange(1, n + 1))  # (n,)
    keep = np.flatnonzero(areas >= 0.05 * areas.max()) + 1
    mask = np.isin(labels, keep)
    ys, xs = np.nonzero(mask)
    extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    if extent < max(4, 0.04 * max(d.shape)):
        raise PreprocessError(
            "no ink found: only a few specks stand out. Use a photo or drawing of a single "
            "digit that fills a good part of the picture."
        )
    top = float(np.percentile(d[mask], 90))
    soft = np.clip((d - t) / max(top - t, 1e-6), 0.0, 1.0) * mask
    return mask, soft.astype(np.float32)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: maximise the between-class variance (Otsu 1979, Eq. 18)."""
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)  # pixels at or below each bin
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centers) - np.cumsum(hist * centers)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centers[int(np.argmax(between))])


def stroke_width(mask: np.ndarray) -> float:
    """Stroke width in px as 2 * area / boundary pixels, exact for long straight strokes."""
    boundary = mask & ~ndi.binary_erosion(mask)
    return 2.0 * float(mask.sum()) / max(1, int(boundary.sum()))


def _match_stroke(mask: np.ndarray, widths: tuple[float, float, float], box: int) -> np.ndarray:
    """Thicken hairline pen strokes to the dataset's typical width; thin fat marker strokes to
    its widest. Widths in the dataset's range are kept, so its own images pass unchanged."""
    width = stroke_width(mask)
    lo, typical, hi = (f * box for f in widths)
    if width < lo:
        return ndi.distance_transform_edt(~mask) <= (typical - width) / 2
    if width > hi:
        return ndi.distance_transform_edt(mask) > min((width - hi) / 2, width / 4)
    return mask


def _tight(a: np.ndarray, level: float = 0.05) -> np.ndarray:
    ys, xs = np.nonzero(a > level)
    if ys.size == 0:
        raise PreprocessError("no ink found after cleaning the image; is it blank?")
    return a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


# --- other datasets -------------------------------------------------------------------------------
def _preprocess_generic(
    img: Image.Image,
    shape: tuple[int, int, int],
    ink: str,
    invert: bool | None,
    dataset_info: dict[str, Any],
) -> Preprocessed:
    """Grayscale or RGB, polarity flip for grayscale, resize ('fit' crops the centre, 'pad' adds
    borders, 'stretch' ignores the aspect ratio; from preprocessing['resize'], default 'fit')."""
    c, h, w = shape
    steps: list[tuple[str, Image.Image]] = [("input", _thumb(img))]
    im = img.convert("L" if c == 1 else "RGB")
    arr = _to_array(im.convert("L"))
    if float(arr.max() - arr.min()) < 0.02:
        raise PreprocessError("the image is blank: every pixel has the same colour")
    if invert is None:
        # A colour photo is never auto-inverted; a grayscale drawing follows the dataset's ink.
        lo, hi = np.percentile(arr, [1, 99])
        image_ink = INK_LOW if np.median(arr) >= (lo + hi) / 2 else INK_HIGH
        invert = c == 1 and image_ink != ink
    if invert:
        im = ImageOps.invert(im)
        steps.append(("inverted", _thumb(im)))
    mode = (dataset_info.get("preprocessing") or {}).get("resize", "fit")
    if mode == "stretch":
        im = im.resize((w, h), Image.Resampling.LANCZOS)
    elif mode == "pad":
        corner = im.getpixel((0, 0))
        im = ImageOps.pad(im, (w, h), Image.Resampling.LANCZOS, color=corner)
    else:
        im = ImageOps.fit(im, (w, h), Image.Resampling.LANCZOS)
    steps.append(("model input", _thumb(im)))
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)
    x = x[None, None] if c == 1 else x.permute(2, 0, 1)[None]  # (1, C, H, W)
    return Preprocessed(x=x.contiguous(), steps=steps, inverted=bool(invert))


# --- small helpers --------------------------------------------------------------------------------
def _to_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) / 255.0


def _to_image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))  # mode "F"


def _resize_array(a: np.ndarray, longer: int) -> np.ndarray:
    """Resize so the longer side is `longer` px: box filter to shrink, bilinear to grow."""
    h0, w0 = a.shape
    s = longer / max(h0, w0)
    size = (max(1, round(w0 * s)), max(1, round(h0 * s)))
    if size == (w0, h0):
        return a.astype(np.float32)
    resample = Image.Resampling.BOX if s < 1 else Image.Resampling.BILINEAR
    return np.asarray(_to_image(a).resize(size, resample), dtype=np.float32)


def _thumb(src: Image.Image | np.ndarray) -> Image.Image:
    """A small 8-bit picture of one step: at most THUMB_MAX px, small ones enlarged pixel-exact."""
    if isinstance(src, np.ndarray):
        src = Image.fromarray((np.clip(src, 0, 1) * 255).round().astype(np.uint8))  # mode "L"
    im = src.copy()
    if max(im.size) > THUMB_MAX:  # sized here, never 0 px on a side (a 10000 x 10 strip)
        s = THUMB_MAX / max(im.size)
        size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
        im = im.resize(size, Image.Resampling.BOX)
    elif max(im.size) < THUMB_MIN:
        f = THUMB_MIN // max(im.size) + (THUMB_MIN % max(im.size) > 0)
        im = im.resize((im.width * f, im.height * f), Image.Resampling.NEAREST)
    return im
