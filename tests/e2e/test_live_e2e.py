"""Decoding in the browser, driven as a user would: drag, keys, hover, the pad and the scrubber.

Numbers on screen are checked against computations made here with torch and numpy: the PCA
plane from an SVD of the posterior means (the app uses an eigendecomposition), and the decoder
run by torch (the browser runs its own JS implementation).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import torch

from tests.e2e.conftest import ARTIFACTS
from tests.e2e.helpers import FRAME_WATCH_JS
from tests.e2e.test_e2e import map_point_pixel, no_exception, open_explore, snap, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SLIDER = 'input[type=range][aria-label^="z"]'


@pytest.fixture(scope="module")
def model(app_dirs):
    from vae.checkpoint import load_run

    return load_run(app_dirs["assets"] / "digits-mlp").model.eval()


@pytest.fixture(scope="module")
def pca(model):
    """PCA of the posterior means of all digits images (the e2e model's map), by SVD."""
    from vae.data import load_dataset

    with torch.no_grad():
        mean = model.encode(load_dataset("digits", "all").x).mean.double().numpy()  # (N, D)
    centre = mean.mean(0)
    _, _, vt = np.linalg.svd(mean - centre, full_matrices=False)
    comps = vt[:2]  # (2, D)
    signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(1)])
    return centre, comps * signs[:, None]


def url_z(page) -> np.ndarray:
    return np.array([float(v) for v in parse_qs(urlparse(page.url).query)["z"][0].split(",")])


def live(page, expr: str):
    return page.evaluate(f"() => {{ const L = globalThis.__vaeLive; return {expr}; }}")


def star_xy(page) -> list[float]:
    s = page.locator('[data-testid="live-star"]')
    return [float(s.get_attribute("data-x")), float(s.get_attribute("data-y"))]


def decode(model, z) -> np.ndarray:
    with torch.no_grad():
        zt = torch.as_tensor(np.asarray(z, np.float32)).reshape(1, -1)
        return model.decode(zt)[0].numpy().ravel()


def test_drag_redraws_during_the_drag_and_python_gets_the_final_z(page, app_url, model, pca):
    open_explore(page, app_url)
    page.wait_for_function("() => globalThis.__vaeLive && __vaeLive.stats.frames > 0")
    slider = page.locator(SLIDER).first
    dim = int(slider.get_attribute("aria-label").split(" ")[0][1:])
    box = slider.bounding_box()
    page.evaluate(FRAME_WATCH_JS, '[aria-label="decoded z"]')
    x0, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x0, y)
    page.mouse.down()
    for i in range(1, 31):  # one second, 30 moves to the right
        page.mouse.move(x0 + i * box["width"] / 70, y)
        page.wait_for_timeout(33)
    distinct = page.evaluate("() => window.__watch.hashes.length")
    star_during = star_xy(page)
    page.mouse.up()
    assert distinct >= 10, f"only {distinct} distinct pictures during a 1 s drag"
    value = float(slider.input_value())
    assert value > 0.5, value
    # after release, Python has the final z: the URL carries it ...
    page.wait_for_function(
        "(v) => new URL(location.href).searchParams.get('z')?.split(',').some(x => +x === v)",
        arg=round(value, 2),
        timeout=15_000,
    )
    wait_idle(page)
    z = url_z(page)
    assert z[dim] == pytest.approx(value, abs=1e-6)
    # ... and the map's ★ sits at its PCA position, computed here by SVD
    centre, comps = pca
    want = (z - centre) @ comps.T
    assert star_xy(page) == pytest.approx(want.tolist(), abs=2e-3)
    assert star_during != [0.0, 0.0]
    # the picture on screen is the decoder's image of that z (torch here, JS there)
    shown = np.array(live(page, "Array.from(L.last.panel.image)"))
    assert np.abs(shown - decode(model, z)).max() <= 1e-3
    no_exception(page)
    snap(page, "explore-live-drag.png")


def test_key_press_changes_the_picture_and_the_url(page, app_url):
    open_explore(page, app_url)
    slider = page.locator(SLIDER).nth(1)
    slider.focus()
    before = live(page, "L.stats.frames")
    pic = live(page, "Array.from(L.last.panel.image)")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("(n) => __vaeLive.stats.frames > n", arg=before, timeout=5_000)
    assert live(page, "Array.from(L.last.panel.image)") != pic
    page.keyboard.press("End")  # the slider's maximum
    page.wait_for_function(
        "(m) => new URL(location.href).searchParams.get('z')?.split(',').some(x => +x === m)",
        arg=float(slider.get_attribute("max")),
        timeout=15_000,
    )
    no_exception(page)


def test_hover_decodes_the_inverse_pca_of_the_pointer(page, app_url, model, pca):
    open_explore(page, app_url)
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y = map_point_pixel(page)
    page.mouse.move(x + 3, y + 2)
    page.wait_for_function("() => __vaeLive.last.hover", timeout=5_000)
    hover = live(page, "({xy: L.last.hover.xy, image: Array.from(L.last.hover.image)})")
    preview = page.locator('[aria-label="decoded hover preview"]')
    assert preview.is_visible()
    centre, comps = pca
    z = centre + np.asarray(hover["xy"]) @ comps  # the inverse projection, computed here
    assert np.abs(np.array(hover["image"]) - decode(model, z)).max() <= 1e-3
    page.screenshot(path=str(ARTIFACTS / "explore-live-hover.png"))
    page.mouse.move(5, 5)
    page.wait_for_timeout(200)
    assert not preview.is_visible()


def test_pad_moves_two_dimensions_and_the_sliders_follow(page, app_url, model):
    open_explore(page, app_url)
    page.get_by_text("2-D pad: drag over two dimensions at once").click()
    pad = page.locator(".vl-pad")
    pad.wait_for(timeout=20_000)
    pad.scroll_into_view_if_needed()
    label = pad.get_attribute("aria-label")  # "latent pad over z3 (across) and z1 (up)"
    a, b = (int(w[1:]) for w in label.split() if w.startswith("z") and w[1:].isdigit())
    box = pad.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (0.5 + 0.04 * i), box["y"] + box["height"] * 0.2)
        page.wait_for_timeout(30)
    page.mouse.up()
    page.wait_for_function(
        "(d) => { const z = new URL(location.href).searchParams.get('z'); "
        "return z && +z.split(',')[d] > 0.5; }",
        arg=a,
        timeout=15_000,
    )
    wait_idle(page)
    z = url_z(page)
    assert z[a] > 0.5 and z[b] > 0.5  # right and up of the centre
    # the Explore sliders show the same z (the views share it), and the pad's picture is its image
    values = {
        int(s.get_attribute("aria-label").split(" ")[0][1:]): float(s.input_value())
        for s in page.locator(SLIDER).all()
        if "on the pad" not in (s.get_attribute("aria-label") or "")
    }
    assert values[a] == pytest.approx(z[a], abs=1e-6) and values[b] == pytest.approx(z[b], abs=1e-6)
    shown = np.array(live(page, "Array.from(L.last.pad.image)"))
    assert np.abs(shown - decode(model, z)).max() <= 1e-3
    snap(page, "explore-live-pad.png")


def test_path_scrubber_decodes_points_of_the_path(page, app_url, model):
    from vae.data import load_dataset

    open_explore(page, app_url)
    page.get_by_role("link", name="Interpolate").click()
    scrub = page.get_by_role("slider", name="position on the path from A to B")
    scrub.wait_for(timeout=30_000)
    scrub.focus()
    for _ in range(8):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => __vaeLive.last.path && __vaeLive.last.path.t > 0.5")
    got = live(page, "({t: L.last.path.t, z: L.last.path.z, image: Array.from(L.last.path.image)})")
    # endpoints: the page's defaults, image 0 and the first image of another class, encoded here
    ds = load_dataset("digits", "all")
    b = int(np.flatnonzero(ds.y.numpy() != int(ds.y[0]))[0])
    with torch.no_grad():
        ends = model.encode(ds.x[[0, b]]).mean.numpy()
    want_z = (1 - got["t"]) * ends[0] + got["t"] * ends[1]
    assert np.abs(np.array(got["z"]) - want_z).max() <= 1e-4
    assert np.abs(np.array(got["image"]) - decode(model, want_z)).max() <= 1e-3
    no_exception(page)
    snap(page, "interpolate-live-scrub.png")
