"""The Encode page through AppTest: an upload's encoding, and a clear message for a bad one."""

from __future__ import annotations

import numpy as np

from tests import live_app
from tests.helpers import digit_photo_png, ok


def test_upload_shows_an_encoding(app):
    app.switch_page("pages/encode.py").run()
    ok(app)
    assert app.info[0].value.startswith("Upload one or more images")
    app.get("file_uploader")[0].set_value(("seven.png", digit_photo_png(), "image/png")).run()
    ok(app)
    assert app.subheader[0].value == "seven.png"
    assert any(m.label == "ELBO" for m in app.metric)
    neighbours = [img for img in app.get("image") if any("d=" in c for c in img.captions)]
    assert len(neighbours) == 8
    assert any(c.key == "encode_map" for c in app.get("plotly_chart"))
    # the encoding goes to Explore's sliders
    app.button(key="to_explore_0").click().run()
    ok(app)
    assert app.title[0].value == "Explore the latent space"
    assert np.abs(live_app.current_z(app)).sum() > 0


def test_bad_upload_gets_a_clear_message(app):
    app.switch_page("pages/encode.py").run()
    app.get("file_uploader")[0].set_value(("notes.png", b"not an image", "image/png")).run()
    assert not app.exception
    assert "not a readable image" in app.error[0].value
