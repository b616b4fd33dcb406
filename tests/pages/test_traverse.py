"""The Traverse page through AppTest, on models trained in seconds."""

from __future__ import annotations

from tests.helpers import ok
from tests.pages.shared import (
    download,
    fresh_app,
    goto,
)

MODELS = "trained"


def test_traverse_grid_follows_the_centre(app):
    goto(app, "traverse")
    assert app.title[0].value == "Traverse the latent dimensions"
    # Explore's z is still 0 here, the same centre as the prior mean: the same picture
    zero = download(app, "trav_png").proto.url
    app.segmented_control(key="trav_centre").set_value("prior").run()
    ok(app)
    assert download(app, "trav_png").proto.url == zero


def test_traverse_png_changes_with_explores_z(model_dirs, monkeypatch):
    at = fresh_app(model_dirs, monkeypatch, z="2.00,-1.00,0.50,0.00")
    goto(at, "traverse")
    around_z = download(at, "trav_png").proto.url
    assert any(c.value.startswith("Centre: z from Explore") for c in at.caption)
    at.segmented_control(key="trav_centre").set_value("prior").run()
    ok(at)
    assert download(at, "trav_png").proto.url != around_z
    assert any(c.value.startswith("Centre: z = 0") for c in at.caption)
    rows = at.slider(key="trav_rows:asset:digits-mlp")
    assert rows.value == 4 and rows.max == 4
    # the GIF and the 2-D manifold are there too, with their downloads
    assert download(at, "trav_gif").proto.url.endswith(".gif")
    assert download(at, "trav_plane_png").proto.url.endswith(".png")
    at.segmented_control(key="trav_plane_kind").set_value("pca").run()
    ok(at)
    assert any("first principal component" in c.value for c in at.caption)


def test_the_pca_plane_follows_centre_and_span(model_dirs, monkeypatch):
    at = fresh_app(model_dirs, monkeypatch, z="2.00,-1.00,0.50,0.00")
    goto(at, "traverse")
    at.segmented_control(key="trav_plane_kind").set_value("pca").run()
    ok(at)
    urls = {"explore, 3": download(at, "trav_plane_png").proto.url}
    at.slider(key="trav_span").set_value(1.0).run()
    urls["explore, 1"] = download(at, "trav_plane_png").proto.url
    at.segmented_control(key="trav_centre").set_value("prior").run()
    ok(at)
    urls["prior, 1"] = download(at, "trav_plane_png").proto.url
    assert len(set(urls.values())) == 3  # both controls change the PCA plane
    assert any("−1…+1 times the data's spread" in c.value for c in at.caption)


def test_column_labels_say_0_for_the_centre():
    from vae.traversal import offsets

    # the page's tick(): loaded from the script's source, without running the page
    src = open("pages/traverse.py").read()
    code = src[src.index("def tick") : src.index("tab_rows, tab_plane")]
    ns: dict = {}
    exec(code, ns)
    assert [ns["tick"](v) for v in offsets(5, 3.0)] == ["-3", "-1.5", "0", "+1.5", "+3"]
