"""Your own PyTorch VAE in the app (`streamlit run app.py -- --model ... --weights ... --data ...`).

The model is the README's worked example, vae/examples/my_vae.py, trained here for a few hundred
steps by its own plain loop. The app reads the flags from sys.argv as Streamlit hands them to
app.py; every picture is checked against the example's own module, imported and loaded here.
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests import live_app
from tests.helpers import ROOT, app_test, digit_photo_png, ok, tiny_digits_checkpoint
from tests.pages.shared import TOURS, decoded_url, goto, latent_sliders, open_tour
from vae.examples import my_vae

EXAMPLE = ROOT / "vae" / "examples" / "my_vae.py"
TABS = ["Training curves", "Latent usage", "Likelihood", "Samples", "Disentanglement"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("yours")
    tiny_digits_checkpoint(root / "assets" / "digits-mlp", latent_dim=4, steps=40)
    (root / "runs").mkdir()
    (root / "data").mkdir()
    weights = root / "my_vae.safetensors"
    my_vae.train(str(weights), steps=300)  # the example's own loop, tiny
    plain = root / "plain_vae.py"  # the same model without the optional likelihood
    plain.write_text(EXAMPLE.read_text().replace('    likelihood = "bernoulli"', "    pass"))
    assert "likelihood" not in plain.read_text().split("class MyVAE")[1].split("def __init__")[0]
    return {
        "assets": root / "assets",
        "runs": root / "runs",
        "cache": root / "cache",
        "root": root,
        "weights": weights,
        "plain": plain,
    }


@pytest.fixture(autouse=True)
def _forget_the_command_line():
    """The command line's model is the server process's; other tests' processes have none."""
    yield
    from vae.ui import models

    models.configure_user_model([])


def flags(dirs, model: Path = EXAMPLE) -> list[str]:
    return ["--model", f"{model}:build", "--weights", str(dirs["weights"]), "--data", "digits"]


def start(dirs, monkeypatch, argv: list[str], query=None, **env: str):
    """The app as `streamlit run app.py -- ARGV` starts it: sys.argv is [app.py, *ARGV]."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / "app.py"), *argv])
    data = str(dirs["root"] / "data")
    return app_test(dirs, monkeypatch, query, VAE_DATA_DIR=data, **env)


def users_model(dirs) -> my_vae.MyVAE:
    """The user's model as the user would load it: their class, their weights file."""
    model = my_vae.build()
    model.load_state_dict(load_file(str(dirs["weights"])))
    return model.eval()


def users_decode(dirs, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return users_model(dirs).decode(torch.from_numpy(np.asarray(z, np.float32))).numpy()


def _png(url: str) -> np.ndarray:
    raw = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("L"), np.float32) / 255.0


def test_yours_is_in_the_picker_and_opens_first(dirs, monkeypatch):
    at = start(dirs, monkeypatch, flags(dirs))
    ok(at)
    picker = at.selectbox(key="model")
    assert picker.value == "yours:my_vae"
    assert picker.format_func("yours:my_vae").startswith("yours: my_vae · z8")
    assert any("asset:digits-mlp" == o or "digits-mlp" in o for o in picker.options)
    assert any("your MyVAE · bernoulli decoder" in c.value for c in at.sidebar.caption)
    assert at.query_params["model"] == "yours:my_vae"


def test_the_decoded_image_is_the_users_decode(dirs, monkeypatch):
    at = start(dirs, monkeypatch, flags(dirs), VAE_LIVE_DECODER="0")
    ok(at)
    z = np.array([1.5, -1.0, 0.5, 0.0, -0.5, 1.0, 0.25, -2.0], np.float32)
    for s in latent_sliders(at):
        s.set_value(float(z[int(s.key.rsplit(":", 1)[1])]))
    at.run()
    ok(at)
    assert np.allclose(live_app.current_z(at), z)
    got = _png(decoded_url(at))  # upscaled from 8 x 8 by nearest neighbour
    step = got.shape[0] // 8
    idx = np.arange(8) * step + step // 2
    want = users_decode(dirs, z[None])[0, 0]  # (8, 8)
    assert np.abs(got[np.ix_(idx, idx)] - want).max() < 1.5 / 255


def test_the_browser_gets_the_users_decoder(dirs, monkeypatch):
    """Browser decoding: the page's carrier holds the export of the user's own module."""
    from vae.export import export_decoder

    at = start(dirs, monkeypatch, flags(dirs))
    ok(at)
    exp = export_decoder(users_model(dirs), latent_dim=8)
    assert live_app.panel(at)["decoder"] == exp.id
    assert exp.pack() in live_app.carriers(at)


def test_every_page_works_on_it(dirs, monkeypatch):
    at = start(dirs, monkeypatch, flags(dirs))
    ok(at)
    assert any(c.key == "latent_map" for c in at.get("plotly_chart"))
    at.selectbox(key="color_by").set_value("recon").run()  # needs its likelihood: it has one
    ok(at)
    goto(at, "encode")
    at.get("file_uploader")[0].set_value(("seven.png", digit_photo_png(), "image/png")).run()
    ok(at)
    elbo = next(m for m in at.metric if m.label == "ELBO")
    assert elbo.value.endswith("nats") and np.isfinite(float(elbo.value.split()[0]))
    assert any(c.key == "encode_map" for c in at.get("plotly_chart"))
    goto(at, "traverse")
    assert at.get("image")
    goto(at, "interpolate")
    assert at.get("image")
    goto(at, "diagnostics")
    assert next(m for m in at.metric if m.label == "Active units").value.endswith("of 8")
    for tab in TABS:
        at.session_state["diag_tab"] = tab
        at.run()
        ok(at)
        if tab == "Training curves":  # trained by the user's own loop: no log here, said so
            assert any("no training log" in i.value for i in at.info)
    at.session_state["diag_tab"] = "Likelihood"
    at.run()
    at.number_input(key="iwae_n:yours:my_vae").set_value(20).run()
    at.select_slider(key="iwae_k").set_value(10).run()
    at.button(key="iwae_go").click().run()
    ok(at)
    nll = float(next(m for m in at.metric if m.label == "IWAE NLL").value.split()[0])
    neg_elbo = float(next(m for m in at.metric if m.label.startswith("−ELBO")).value.split()[0])
    assert 0 < nll <= neg_elbo + 0.5
    assert any("--model" in c.value and "my_vae.py:build" in c.value for c in at.caption)
    goto(at, "demos")
    for tour in TOURS:
        open_tour(at, tour)


def test_a_model_without_a_likelihood_says_why_where_it_matters(dirs, monkeypatch):
    at = start(dirs, monkeypatch, flags(dirs, dirs["plain"]), query={"idx": "3"})
    ok(at)
    assert at.selectbox(key="model").value == "yours:plain_vae"  # named by its file
    assert any("no likelihood" in c.value for c in at.sidebar.caption)
    assert "recon" not in at.selectbox(key="color_by").options  # reconstruction error needs one
    assert any(h.value.startswith("Image #3") for h in at.subheader)  # selected: no ELBO, says why
    assert not any(m.label == "ELBO (nats)" for m in at.metric)
    assert any("declares no likelihood" in c.value for c in at.caption)
    goto(at, "encode")
    at.get("file_uploader")[0].set_value(("seven.png", digit_photo_png(), "image/png")).run()
    ok(at)
    assert next(m for m in at.metric if m.label == "ELBO").value == "—"
    assert any("declares no likelihood" in c.value for c in at.caption)
    goto(at, "diagnostics")
    at.session_state["diag_tab"] = "Likelihood"
    at.run()
    ok(at)
    assert any("declares no likelihood" in i.value for i in at.info)
    assert not any(b.key == "iwae_go" for b in at.button)
    goto(at, "demos")
    for tour in ("The ideas", "Anomaly detection"):
        open_tour(at, tour)
        assert any("declares no likelihood" in i.value for i in at.info)


def test_a_bad_command_line_is_said_in_the_sidebar(dirs, monkeypatch):
    at = start(dirs, monkeypatch, ["--model", str(dirs["root"] / "nope.py"), "--data", "digits"])
    assert not at.exception
    (err,) = at.sidebar.error
    assert err.value.startswith("Could not open your model:") and "needs --weights" in err.value
    assert at.selectbox(key="model").value == "asset:digits-mlp"  # the others still work
    broken = dirs["root"] / "broken.py"
    broken.write_text("import torch\n\n\ndef build():\n    return torch.nn.Linear(2, 2)\n")
    at = start(dirs, monkeypatch, flags(dirs, broken))
    assert not at.exception
    shown = at.sidebar.error[0].value.replace("\\", "")  # Markdown escapes, as it reads
    assert "broken.py: Linear has no encode() method" in shown
    at = start(dirs, monkeypatch, ["--modle", "x.py"])
    assert "does not know: --modle x.py" in at.sidebar.error[0].value.replace("\\", "")


def test_a_link_never_names_code(dirs, monkeypatch, tmp_path):
    evil = tmp_path / "evil.py"
    marker = tmp_path / "ran"
    evil.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    for key in (f"yours:{evil}", "yours:evil", f"path:{evil}"):
        at = start(dirs, monkeypatch, [], query={"model": key})
        assert not at.exception
        assert at.selectbox(key="model").value == "asset:digits-mlp"
        assert any("is not available here" in w.value for w in at.warning)
    at = start(dirs, monkeypatch, flags(dirs), query={"model": f"yours:{evil}"})
    assert at.selectbox(key="model").value == "yours:my_vae"  # only the command line's model
    assert not marker.exists()


def test_a_saved_evaluation_shows_in_the_picker_and_diagnostics(dirs, monkeypatch, capsys):
    from vae import evaluate

    monkeypatch.setenv("VAE_CACHE_DIR", str(dirs["cache"]))  # where the app looks, too
    assert evaluate.main([*flags(dirs), "--iw-samples", "5", "--limit", "40", "--save"]) == 0
    assert "saved to" in capsys.readouterr().out
    at = start(dirs, monkeypatch, flags(dirs))
    ok(at)
    assert "NLL" in at.selectbox(key="model").format_func("yours:my_vae")
    goto(at, "diagnostics")
    saved = next(m for m in at.metric if m.label == "IWAE NLL (saved)")
    assert np.isfinite(float(saved.value))
