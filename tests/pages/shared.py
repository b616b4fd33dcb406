"""Helpers of the page tests: what a page shows, read through AppTest."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.helpers import app_test, ok

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
DECODED_CAPTION = "What the decoder draws"


def decoded_url(at: AppTest) -> str:
    for img in at.get("image"):
        if any(DECODED_CAPTION in c for c in img.captions):
            return img.value[0]
    raise AssertionError("no decoded image on the page")


def latent_sliders(at: AppTest) -> list:
    return [s for s in at.slider if s.key and s.key.startswith("zslider:")]


def _model(model_dirs, name: str = "digits-mlp"):
    from vae.checkpoint import load_run

    return load_run(model_dirs["assets"] / name).model.eval()


def _map_points(at: AppTest) -> int:
    chart = next(c for c in at.get("plotly_chart") if c.key == "latent_map")
    fig = json.loads(chart.proto.spec)
    data = [t for t in fig["data"] if t.get("name") not in ("current z", "selected")]
    return sum(_len(t["x"]) for t in data)


def plotly_values(arr) -> np.ndarray:
    """A Plotly array as float64: a list, or {"dtype", "bdata"} (base64 typed array)."""
    import base64

    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=arr["dtype"]).astype(np.float64)
    return np.asarray(arr, dtype=np.float64)


def _len(arr) -> int:
    """Length of a Plotly array (see `plotly_values`)."""
    return len(arr) if isinstance(arr, list) else len(plotly_values(arr))


def maps_ready(at: AppTest) -> AppTest:
    """Wait for the background map fits (vae.ui.fits) to end, then rerun: the finished map."""
    from vae.ui import fits

    for job in list(fits._JOBS.values()):
        if job.thread is not None:
            job.thread.join(120)
    at.run()
    ok(at)
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    ok(at)
    return at


def download(at: AppTest, key: str):
    return next(b for b in at.get("download_button") if b.key == key)


def fresh_app(model_dirs: dict, monkeypatch, **query: str) -> AppTest:
    """A new session opened from a URL with these query parameters."""
    at = app_test(model_dirs, monkeypatch, query)
    ok(at)
    return at


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def strip_urls(at: AppTest) -> list[str]:
    img = next(i for i in at.get("image") if i.captions and i.captions[0].startswith("t="))
    return img.value


TOURS = ["The ideas", "Smooth latent spaces", "What each dimension does", "Anomaly detection"]


def open_tour(at: AppTest, tour: str) -> AppTest:
    at.session_state["demo_tour"] = tour
    at.run()
    ok(at)
    return at
