"""Without the dataset on disk a model still works wherever only its decoder (or encoder) is
needed, and every part that needs the data says so in plain words, with the download button.

The "basic" models include `run:mnist-tiny`, a 2-d MNIST model whose data folder is empty.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from tests import live_app
from tests.helpers import digit_photo_png, ok
from tests.pages.shared import decoded_url, goto, strip_urls

MODEL = "run:mnist-tiny"
DOWNLOAD = "Download MNIST (about 11 MB)"


def _open(at, page: str | None = None):
    at.sidebar.selectbox(key="model").set_value(MODEL).run()
    ok(at)
    return goto(at, page) if page else at


def _main_download_button(at) -> bool:
    return any(b.label == DOWNLOAD for b in at.main.button)


def _png(url: str) -> np.ndarray:
    raw = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("L"), np.float32) / 255.0


def test_explore_without_data_has_live_sliders_and_the_download_button(app, model_dirs):
    at = _open(app)
    assert at.title[0].value == "Explore the latent space"
    assert _main_download_button(at)
    assert any("MNIST images are not on this machine" in m.value for m in at.markdown)
    data = live_app.panel(at)
    assert data["kl"] is None and data["order"] == [0, 1]  # no KL without data: index order
    assert data["snap"] is False and data["mapKey"] is None and data["minimap"] is None
    assert not any(c.key == "latent_map" for c in at.get("plotly_chart"))
    live_app.send_z(at, [1.5, -0.5])
    ok(at)
    assert np.allclose(live_app.current_z(at), [1.5, -0.5])


def test_server_decoded_sliders_work_without_data(server_app, model_dirs):
    from vae.checkpoint import load_run

    at = _open(server_app)
    labels = sorted(s.label for s in at.slider if s.key and s.key.startswith("zslider:"))
    assert labels == ["z0", "z1"]
    assert not any(b.label == "Snap to data" for b in at.button)
    z = np.array([1.0, -2.0], np.float32)
    for d, v in enumerate(z):
        next(s for s in at.slider if s.key and s.key.endswith(f":{d}")).set_value(float(v))
    at.run()
    ok(at)
    model = load_run(model_dirs["runs"] / "mnist-tiny").model.eval()
    with torch.no_grad():
        want = model.decode(torch.from_numpy(z)[None])[0, 0].numpy()  # (28, 28), by torch directly
    got = _png(decoded_url(at))  # upscaled 28 -> 256 with nearest
    idx = (np.arange(28) * 256 / 28 + 4).astype(int)
    assert np.abs(got[np.ix_(idx, idx)] - want).max() < 1.5 / 255


def test_encode_without_data_still_encodes_and_redraws(app):
    at = _open(app, "encode")
    assert _main_download_button(at)
    at.get("file_uploader")[0].set_value(("seven.png", digit_photo_png(), "image/png")).run()
    ok(at)
    assert any(m.label == "ELBO" for m in at.metric)
    assert any("Reconstruction" in c for i in at.get("image") for c in i.captions)
    assert not any("Nearest dataset images" in m.value for m in at.markdown)
    assert not any(c.key == "encode_map" for c in at.get("plotly_chart"))


def test_interpolate_without_data_walks_between_prior_samples(app):
    at = _open(app, "interpolate")
    assert _main_download_button(at)
    src = at.selectbox(key="interp_src_A")
    assert "dataset" not in src.options and "map" not in src.options
    assert src.value == "random" and at.selectbox(key="interp_src_B").value == "random"
    assert len(strip_urls(at)) == 10
    assert any("B: prior sample" in c for i in at.get("image") for c in i.captions)
    at.session_state["interp_tab"] = "Latent arithmetic"  # a click on the tab
    at.run()
    ok(at)
    assert any("waits for the data" in i.value for i in at.info)
    at.session_state["interp_tab"] = "Interpolation"
    at.run()


@pytest.mark.parametrize("page", ["traverse", "diagnostics", "demos"])
def test_other_pages_say_what_is_missing(app, page):
    at = _open(app, page)
    assert _main_download_button(at)
    if page == "traverse":
        assert at.get("image"), "the traversal grid needs only the decoder"
