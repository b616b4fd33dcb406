"""Latent walks (vae.traversal), anomaly scores (vae.anomaly), grids (vae.ui.image_grids)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from vae.anomaly import detection, ood_sets
from vae.traversal import (
    attribute_vector,
    far_from_data,
    gap_to_data,
    manifold_codes,
    nearest_labels,
    offsets,
    path_codes,
    plane_points,
    traversal_codes,
)
from vae.ui.image_grids import gif_bytes, gif_frame_count, labelled_grid, strip


def test_offsets_are_symmetric_with_an_exact_centre():
    o = offsets(9, 3.0)
    assert o[0] == -3.0 and o[-1] == 3.0 and o[4] == 0.0
    with pytest.raises(ValueError):
        offsets(1)


def test_traversal_moves_one_dimension_per_row():
    z = np.array([0.5, -1.0, 2.0], np.float32)
    codes = traversal_codes(z, [2, 0], offsets(5, 2.0))  # (2, 5, 3)
    assert codes.shape == (2, 5, 3)
    np.testing.assert_allclose(codes[0, :, 2], 2.0 + np.linspace(-2, 2, 5))
    np.testing.assert_allclose(codes[0, :, :2], np.tile(z[:2], (5, 1)))
    np.testing.assert_allclose(codes[1, :, 0], 0.5 + np.linspace(-2, 2, 5))
    np.testing.assert_allclose(codes[:, 2], np.tile(z, (2, 1)))  # middle column is the centre
    with pytest.raises(ValueError):
        traversal_codes(z, [3], offsets(5))


def test_manifold_is_laid_out_like_a_plot():
    codes = manifold_codes(np.zeros(3, np.float32), 0, 2, offsets(3, 1.0))  # (3, 3, 3)
    assert codes[0, 0].tolist() == [-1.0, 0.0, 1.0]  # top left: x low, y high
    assert codes[2, 2].tolist() == [1.0, 0.0, -1.0]  # bottom right
    assert np.all(codes[..., 1] == 0)
    with pytest.raises(ValueError):
        manifold_codes(np.zeros(3), 1, 1, offsets(3))
    pts = plane_points([0, 0], [2, 4], 3)
    assert pts[0, 0].tolist() == [0, 4] and pts[-1, -1].tolist() == [2, 0]


def test_paths_hit_both_ends_and_slerp_keeps_the_norm():
    a = np.array([3.0, 0.0, 0.0], np.float32)
    b = np.array([0.0, 3.0, 0.0], np.float32)
    lerp, slerp = path_codes(a, b, 5, "lerp"), path_codes(a, b, 5, "slerp")
    for p in (lerp, slerp):
        np.testing.assert_allclose(p[0], a, atol=1e-6)
        np.testing.assert_allclose(p[-1], b, atol=1e-6)
    np.testing.assert_allclose(lerp[2], (a + b) / 2, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(slerp, axis=1), 3.0, atol=1e-5)
    assert np.linalg.norm(lerp[2]) < 2.2  # the straight line cuts inside the sphere
    with pytest.raises(ValueError):
        path_codes(a, b[:2], 5)


def test_attribute_vector_is_class_mean_minus_mean():
    means = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 2.0], [6.0, 2.0]], np.float32)
    labels = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(attribute_vector(means, labels, 1), [2.0, 1.0])
    with pytest.raises(ValueError, match="no image has label 5"):
        attribute_vector(means, labels, 5)


def test_nearest_labels_and_holes():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.1, (50, 2)) + [-3, 0]
    b = rng.normal(0, 0.1, (50, 2)) + [3, 0]
    data = np.concatenate([a, b]).astype(np.float32)
    labels = np.r_[np.zeros(50, int), np.ones(50, int)]
    lab, share = nearest_labels(np.array([[-3.0, 0.1], [2.9, 0.0]]), data, labels, k=5)
    assert lab.tolist() == [0, 1] and share.tolist() == [1.0, 1.0]
    holes = far_from_data(data, 4)
    assert holes.shape == (4, 2)
    gaps = gap_to_data(holes, data)
    assert gaps.min() > 10 * np.median(gap_to_data(data[:10] + 0.01, data))


def test_labelled_grid_and_strip_sizes():
    tiles = [np.full((1, 8, 8), v, np.float32) for v in np.linspace(0, 1, 6)]
    plain = labelled_grid(tiles, 3, tile=16, pad=2)
    assert plain.size == (3 * 18 + 2, 2 * 18 + 2)
    labelled = labelled_grid(tiles, 3, row_labels=["z0 · KL 1.00", "z1"], col_labels=list("abc"))
    assert labelled.width > plain.width and labelled.height > plain.height
    assert strip(tiles[:4], ["0", "1", "2", "3"], tile=20).height > 20


def test_gif_loops_and_bounces():
    frames = [np.full((1, 8, 8), v, np.float32) for v in np.linspace(0, 1, 5)]
    data = gif_bytes(frames, size=32, fps=10)
    assert data[:6] == b"GIF89a"
    assert gif_frame_count(data) == 8  # 5 forward, 3 back
    with Image.open(io.BytesIO(data)) as im:
        assert im.info.get("loop") == 0 and im.size == (32, 32)
    assert gif_frame_count(gif_bytes(frames, boomerang=False)) == 5


def test_detection_threshold_and_rates():
    test = np.linspace(-100, -50, 101)
    r = detection(test, np.full(20, -500.0), false_alarm=0.1)
    assert r["threshold"] == pytest.approx(-95.0)
    assert r["detected"] == 1.0 and r["auroc"] == 1.0
    assert r["false_alarms"] == pytest.approx(0.1, abs=0.011)
    same = detection(test, test, 0.1)
    assert same["auroc"] == pytest.approx(0.5) and same["detected"] == pytest.approx(0.1, 0.11)
    with pytest.raises(ValueError):
        detection(test, test, 1.5)


def test_ood_sets_match_the_input_shape():
    x = torch.rand(12, 1, 8, 8)
    sets = ood_sets(x, "digits", n=5)
    assert list(sets) == ["noise", "inverted", "rotated 90°", "shapes"]
    for v in sets.values():
        assert v.shape == (5, 1, 8, 8) and 0 <= float(v.min()) and float(v.max()) <= 1
    flipped = 1.0 - sets["inverted"]  # the chosen originals
    assert torch.allclose(torch.rot90(flipped, 1, dims=(-2, -1)), sets["rotated 90°"])
    assert list(ood_sets(torch.rand(4, 1, 16, 16), "shapes"))[-1] == "digits"


def test_direction_plane_codes_lie_on_the_plane_through_the_centre():
    from vae.traversal import direction_plane_codes

    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 2)))  # two orthonormal directions in 6-D
    u = q.T.astype(np.float32)  # (2, 6)
    centre = rng.normal(size=6).astype(np.float32)
    offs = np.array([-2.0, 0.0, 2.0], np.float32)
    grid = direction_plane_codes(centre, u, [0.5, 3.0], offs)  # (3, 3, 6)
    assert grid.shape == (3, 3, 6)
    d = grid - centre  # (3, 3, 6) displacements
    coords = d @ u.T  # (3, 3, 2): projections on the two directions
    np.testing.assert_allclose(coords[1, :, 0], [-1.0, 0.0, 1.0], atol=1e-5)  # x: 0.5 per unit
    np.testing.assert_allclose(coords[:, 1, 1], [6.0, 0.0, -6.0], atol=1e-5)  # y: top is largest
    np.testing.assert_allclose(d - coords @ u, 0.0, atol=1e-5)  # nothing off the plane
    np.testing.assert_allclose(grid[1, 1], centre, atol=1e-6)  # the middle tile is the centre
