"""The Interpolate page through AppTest, on models trained in seconds."""

from __future__ import annotations

from tests.helpers import digit_photo_png, ok
from tests.pages.shared import (
    download,
    goto,
    strip_urls,
)

MODELS = "trained"


def test_interpolate_strip_has_n_steps_and_slerp_differs(app):
    goto(app, "interpolate")
    assert app.title[0].value == "Interpolate between latent codes"
    assert len(strip_urls(app)) == 10
    app.slider(key="interp_steps").set_value(6).run()
    ok(app)
    lerp = strip_urls(app)
    assert len(lerp) == 6
    assert any(c.key == "interp_map" for c in app.get("plotly_chart"))
    app.segmented_control(key="interp_mode").set_value("slerp").run()
    ok(app)
    slerp = strip_urls(app)
    assert len(slerp) == 6
    assert slerp[0] == lerp[0] and slerp[-1] == lerp[-1]  # same endpoints
    assert slerp[1:-1] != lerp[1:-1]  # a different path between them
    assert download(app, "interp_gif").proto.url.endswith(".gif")
    # a random prior sample as endpoint B, and the arithmetic tab (it runs only while open)
    app.selectbox(key="interp_src_B").set_value("random").run()
    ok(app)
    assert any("B: prior sample" in c for i in app.get("image") for c in i.captions)
    assert not any("A − B + C" in c for i in app.get("image") for c in i.captions)
    open_tab(app, "Latent arithmetic")
    assert any("A − B + C" in c for i in app.get("image") for c in i.captions)
    assert any("“7” direction" in c.value for c in app.caption)
    assert app.selectbox(key="interp_src_B").value == "random"  # the other tab still runs
    app.number_input(key="arith_C:asset:digits-mlp").set_value(5).run()
    open_tab(app, "Interpolation")
    open_tab(app, "Latent arithmetic")  # a closed tab's inputs keep their values
    assert app.number_input(key="arith_C:asset:digits-mlp").value == 5
    assert any(c.startswith("C: #5 ") for i in app.get("image") for c in i.captions)
    open_tab(app, "Interpolation")


def open_tab(at, label: str):
    at.session_state["interp_tab"] = label
    at.run()
    ok(at)
    return at


def test_interpolate_endpoint_without_a_selection_explains(app):
    goto(app, "interpolate")
    app.selectbox(key="interp_src_A").set_value("map").run()
    ok(app)
    assert any("Click a dot on the map below to make it endpoint A" in i.value for i in app.info)
    assert any("Choose both endpoints" in i.value for i in app.info)


def test_interpolate_from_an_uploaded_photo(app):

    goto(app, "interpolate")
    app.selectbox(key="interp_src_A").set_value("upload").run()
    ok(app)
    up = next(f for f in app.get("file_uploader") if f.key == "interp_up_A")
    up.set_value(("seven.png", digit_photo_png(), "image/png")).run()
    ok(app)
    assert any("A: your image seven.png" in c for i in app.get("image") for c in i.captions)
    assert len(strip_urls(app)) == 10
    up = next(f for f in app.get("file_uploader") if f.key == "interp_up_A")
    up.set_value(("notes.png", b"not an image", "image/png")).run()
    assert not app.exception
    assert any("not a readable image" in e.value for e in app.error)


def test_a_click_on_this_pages_map_sets_the_endpoint(app):
    import base64
    import json

    import numpy as np
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    from tests import live_app

    goto(app, "interpolate")
    app.selectbox(key="interp_src_A").set_value("map").run()
    chart = next(c for c in app.get("plotly_chart") if c.key == "interp_map")
    fig = json.loads(chart.proto.spec)
    trace = next(i for i, t in enumerate(fig["data"]) if t.get("customdata") is not None)
    cd = fig["data"][trace]["customdata"]  # the image row of each point, maybe base64-packed
    if isinstance(cd, dict):
        cd = np.frombuffer(base64.b64decode(cd["bdata"]), np.dtype(cd["dtype"]))
    row = int(np.asarray(cd).ravel()[2])  # the trace's 3rd point
    event = {"selection": {"points": [{"curve_number": trace, "point_index": 2}]}}
    ws = WidgetState(id=chart.proto.id, string_value=json.dumps(event))
    live_app._run_with(app, ws)
    ok(app)
    assert any(f"A: #{row}, clicked on the map" in c for i in app.get("image") for c in i.captions)
    assert len(strip_urls(app)) == 10
