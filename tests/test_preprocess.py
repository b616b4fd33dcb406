"""Digit photos become MNIST-like inputs; other datasets get a plain conversion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from vae.imageio import open_image
from vae.preprocess import PreprocessError, digit_style, preprocess, stroke_width

FIXTURES = Path(__file__).parent / "fixtures"
MNIST = {"name": "mnist", "image_shape": [1, 28, 28], "preprocessing": {"ink": "ink-high"}}
DIGITS = {"name": "digits", "image_shape": [1, 8, 8], "preprocessing": {"ink": "ink-high"}}


def _light_digit(size: int = 200, offset: tuple[int, int] = (60, 20)) -> np.ndarray:
    """A white "2"-like stroke on black, away from the centre, (size, size) in [0, 1]."""
    im = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(im)
    ox, oy = offset
    pts = [(ox + 10, oy + 30), (ox + 40, oy), (ox + 70, oy + 30), (ox + 10, oy + 110)]
    d.line([*pts, (ox + 80, oy + 110)], fill=255, width=12, joint="curve")
    return np.asarray(im, dtype=np.float64) / 255


def _photo(ink_high: np.ndarray, seed: int = 0) -> Image.Image:
    """The same digit as dark ink on uneven, noisy paper."""
    rng = np.random.default_rng(seed)
    h, w = ink_high.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    paper = 0.95 - 0.3 * xx * yy  # a shadow towards one corner
    g = paper * (1 - 0.85 * ink_high) + rng.normal(0, 0.03, (h, w))
    return Image.fromarray((np.clip(g, 0, 1) * 255).astype(np.uint8))


def _img(a: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))


def _bbox(x: torch.Tensor, level: float = 0.0) -> tuple[int, int]:
    ys, xs = np.nonzero(x.squeeze().numpy() > level)
    return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def test_light_on_dark_and_dark_on_light_photo_agree() -> None:
    clean = preprocess(_img(_light_digit()), MNIST)
    photo = preprocess(_photo(_light_digit()), MNIST)
    assert clean.x.shape == photo.x.shape == (1, 1, 28, 28)
    assert not clean.inverted and photo.inverted
    a, b = clean.x.flatten(), photo.x.flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.9
    assert (a - b).abs().mean() < 0.05


def _light_seven(size: int = 160) -> np.ndarray:
    """A "7" with a heavy bar: its centre of mass is well above and right of its box centre."""
    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).line([(30, 30), (130, 30), (60, 140)], fill=255, width=22)
    return np.asarray(im, dtype=np.float64) / 255


def test_mnist_recipe_box_and_centre_of_mass() -> None:
    srcs = [_img(_light_digit()), _photo(_light_digit(offset=(110, 70)), seed=1)]
    for src in [*srcs, _img(_light_seven()), _photo(_light_seven(), seed=2)]:
        x = preprocess(src, MNIST).x
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9
        assert max(_bbox(x)) == 20  # the ink box's longer side is 20 px
        cy, cx = ndi.center_of_mass(x.squeeze().numpy())
        assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1  # MNIST: centre of mass at (14, 14)


def test_real_mnist_digit_survives_a_photo_round_trip() -> None:
    labels = json.loads((FIXTURES / "labels.json").read_text())
    pairs = [n for n in labels if n.startswith("mnist_") and n.endswith("_photo.png")]
    assert pairs, "the fixtures should hold MNIST photo versions"
    for name in pairs:
        orig = np.asarray(Image.open(FIXTURES / name.replace("_photo", "_orig")), dtype=np.float64)
        x = preprocess(open_image(FIXTURES / name), MNIST).x.squeeze().numpy()
        corr = np.corrcoef(x.ravel(), orig.ravel() / 255)[0, 1]
        assert corr > 0.85, name


def test_specks_away_from_the_digit_are_ignored() -> None:
    ink = _light_digit()
    specked = ink.copy()
    specked[185:190, 5:10] = 1.0  # a crumb on the paper, far from the digit
    specked[3:6, 190:193] = 1.0
    a = preprocess(_photo(ink), MNIST).x
    b = preprocess(_photo(specked), MNIST).x
    assert (a - b).abs().max() < 0.05


def test_thin_pen_strokes_are_thickened() -> None:
    pre = preprocess(open_image(FIXTURES / "photo_4_thin_pen.jpg"), MNIST)
    x = pre.x.squeeze().numpy()
    assert stroke_width(x > 0.5) >= 1.8  # MNIST strokes are about 2.7 px at this size
    # without the fix the pen would be under a pixel wide at 20 px
    assert x.sum() > 60


def test_blank_images_are_refused_clearly() -> None:
    rng = np.random.default_rng(0)
    blank_paper = 0.85 + rng.normal(0, 0.03, (240, 320))
    for im in (
        Image.new("L", (64, 64), 255),
        Image.new("RGB", (50, 80), (0, 0, 0)),
        _img(blank_paper),
    ):
        with pytest.raises(PreprocessError, match="no ink"):
            preprocess(im, MNIST)


def test_exif_rotated_fixture_is_upright() -> None:
    path = FIXTURES / "photo_1_exif.jpg"
    raw = Image.open(path).convert("L")  # pixels as stored: the "1" lies on its side
    h, w = _bbox(preprocess(raw, MNIST).x)
    assert w > h
    h, w = _bbox(preprocess(open_image(path), MNIST).x)  # EXIF applied: a standing "1"
    assert h == 20 and w < 12


def test_alpha_png_and_steps() -> None:
    pre = preprocess(open_image(FIXTURES / "drawn_0_alpha.png"), MNIST)
    names = [n for n, _ in pre.steps]
    assert names[0] == "input" and names[-1] == "model input" and "inverted" in names
    assert all(isinstance(im, Image.Image) and max(im.size) <= 160 for _, im in pre.steps)
    x = pre.x.squeeze().numpy()
    assert x[14, 14] < 0.2 and x.max() > 0.9  # a "0": ink around an empty middle


def test_sklearn_digits_fill_the_frame() -> None:
    pre = preprocess(open_image(FIXTURES / "photo_7.jpg"), DIGITS)
    assert pre.x.shape == (1, 1, 8, 8)
    assert _bbox(pre.x, 0.05)[0] == 8
    from vae.data import load_dataset

    ref = load_dataset("digits", "train").x
    assert abs(pre.x.mean().item() - ref.mean().item()) < 0.12  # similar amount of ink


def test_digit_style_and_ink_low_output() -> None:
    assert digit_style(MNIST) == "mnist" and digit_style(DIGITS) == "digits"
    assert digit_style({"name": "folder", "preprocessing": {"center": "mnist"}}) == "mnist"
    assert digit_style({"name": "shapes"}) is None
    info = {
        "name": "folder",
        "image_shape": [1, 28, 28],
        "preprocessing": {"ink": "ink-low", "center": "mnist"},
    }
    x = preprocess(_img(_light_digit()), info).x
    assert x[0, 0, 0, 0] == 1.0 and x.min() < 0.1  # dark digit on white, like the dataset


def test_other_datasets_convert_invert_and_resize() -> None:
    shapes = {"name": "shapes", "image_shape": [1, 32, 32], "preprocessing": {"ink": "ink-high"}}
    dark_on_light = _photo(_light_digit())
    pre = preprocess(dark_on_light, shapes)
    assert pre.x.shape == (1, 1, 32, 32) and pre.inverted
    assert pre.x[0, 0, 0, 0] < 0.2  # the light paper became the dark background
    assert not preprocess(dark_on_light, shapes, invert=False).inverted
    rgb = {"name": "folder", "image_shape": [3, 16, 24], "preprocessing": {"ink": "ink-high"}}
    pre = preprocess(
        Image.new("RGB", (90, 40), (250, 10, 10)).rotate(10, fillcolor=(0, 0, 200)), rgb
    )
    assert pre.x.shape == (1, 3, 16, 24) and not pre.inverted  # colour photos never auto-invert
    assert pre.x[0, 0].mean() > pre.x[0, 2].mean()  # still red
    with pytest.raises(PreprocessError, match="blank"):
        preprocess(Image.new("L", (20, 20), 128), shapes)
    with pytest.raises(PreprocessError, match="image_shape"):
        preprocess(dark_on_light, {"name": "shapes"})


def test_a_16_bit_scan_is_scaled_not_clipped(tmp_path) -> None:
    photo8 = _photo(_light_digit())  # 8-bit dark ink on paper
    a16 = (np.asarray(photo8, dtype=np.float64) / 255 * 65535).round().astype(np.uint16)
    path = tmp_path / "scan16.png"
    Image.fromarray(a16).save(path)  # a 16-bit greyscale PNG ("I;16")
    im = open_image(path)
    assert im.mode == "L"
    # the same picture as the 8-bit one, within rounding (convert("L") would clip it to white)
    assert np.abs(np.asarray(im, np.int16) - np.asarray(photo8, np.int16)).max() <= 1
    x16, x8 = preprocess(im, MNIST).x, preprocess(photo8, MNIST).x
    assert torch.allclose(x16, x8, atol=2 / 255)


@pytest.mark.parametrize("size", [(10000, 10), (10, 10000), (4000, 3)])
def test_extreme_aspect_ratios_give_a_result_or_a_clear_error(size) -> None:
    im = Image.new("L", size, 230)
    ImageDraw.Draw(im).line(
        [(0, 0), (size[0] - 1, size[1] - 1)], fill=20, width=max(1, min(size) // 2)
    )
    try:
        out = preprocess(im, MNIST)
    except PreprocessError as e:
        assert str(e)  # a message for the user, not a crash from a 0-pixel thumbnail
    else:
        assert out.x.shape == (1, 1, 28, 28)
        assert all(min(step.size) >= 1 for _, step in out.steps)
