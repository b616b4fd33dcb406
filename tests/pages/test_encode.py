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


def test_a_text_file_is_named_with_the_accepted_types(app):
    app.switch_page("pages/encode.py").run()
    app.get("file_uploader")[0].set_value(("notes.txt", b"hello", "text/plain")).run()
    assert not app.exception
    (err,) = app.error
    assert "notes.txt" in err.value and "PNG, JPEG, WebP, BMP or GIF" in err.value


def test_several_uploads_are_numbered_on_the_map(app):
    import json

    app.switch_page("pages/encode.py").run()
    photo = digit_photo_png()
    files = [(f"photo_{k}_with_a_long_name.png", photo, "image/png") for k in range(4)]
    app.get("file_uploader")[0].set_value(files).run()
    ok(app)
    assert [s.value for s in app.subheader[:4]] == [
        f"{k + 1} · {f[0]}" for k, f in enumerate(files)
    ]
    chart = next(c for c in app.get("plotly_chart") if c.key == "encode_map")
    stars = next(t for t in json.loads(chart.proto.spec)["data"] if t.get("name") == "your images")
    assert stars["text"] == ["1", "2", "3", "4"]  # short labels that cannot overlap
    assert stars["customdata"] == [f[0] for f in files]  # the names, on hover


def test_preparation_pictures_share_one_square_box():
    from vae.ui.images import letterbox

    tall = np.zeros((40, 10), np.float32)
    tall[:, 4:6] = 1.0  # a vertical white bar in the middle
    box = np.asarray(letterbox(tall, 112), np.float32)
    assert box.shape == (112, 112)
    # scaled by 112/40 = 2.8 to 28 px wide, centred: columns 42..69, the bar at 53..58
    assert (box[:, :40] == 236).all() and (box[:, 72:] == 236).all()  # the light ground
    assert box[56, 55] > 200 and box[56, 45] < 30  # bar white, image black
    wide = letterbox(np.zeros((3, 10, 30), np.float32), 112)  # colour, wide
    assert wide.size == (112, 112) and wide.mode == "RGB"
