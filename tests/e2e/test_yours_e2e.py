"""The README's worked example end to end: train vae/examples/my_vae.py with its own plain loop,
evaluate and encode it with the CLIs, open it with `streamlit run app.py -- --model ...` and use
every page in headless Chromium; the picture the browser draws is the example's own decode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.e2e.conftest import DECODED, ROOT, start_app, stop_app, wait_healthy
from tests.e2e.helpers import digit_photo_png, free_port
from tests.e2e.test_e2e import no_exception, snap, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EXAMPLE = "vae/examples/my_vae.py"
PAGES = [
    "explore",
    "encode",
    "traverse",
    "interpolate",
    "diagnostics",
]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


@pytest.fixture(scope="module")
def example(app_dirs, tmp_path_factory) -> dict:
    """The example trained for 300 steps by the README's command, and the flags that open it."""
    root = tmp_path_factory.mktemp("yours-e2e")
    weights = root / "my_vae.safetensors"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    env["VAE_CACHE_DIR"] = str(root / "cache")
    done = _run(EXAMPLE, "--out", str(weights), "--steps", "300", env=env)
    assert done.returncode == 0, done.stderr
    assert "-ELBO" in done.stdout and weights.is_file()
    flags = ["--model", f"{EXAMPLE}:build", "--weights", str(weights), "--data", "digits"]
    return {"root": root, "weights": weights, "flags": flags, "env": env}


@pytest.fixture(scope="module")
def yours_url(example, app_dirs, browser):
    dirs = {
        "assets": app_dirs["assets"],
        "runs": app_dirs["runs"],
        "cache": example["root"] / "cache",
        "root": example["root"],
    }
    port = free_port()
    proc = start_app(dirs, port, args=tuple(example["flags"]))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        pg = browser.new_page()  # a first visit to the home page (see tests/e2e/conftest.py)
        pg.goto(url)
        pg.wait_for_selector(DECODED, timeout=90_000)
        pg.close()
        yield url
    finally:
        stop_app(proc)


def picked_model(page) -> str:
    """What the sidebar's model picker shows (its text and its input's value)."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    return box.evaluate(
        "e => e.innerText + ' ' + [...e.querySelectorAll('input')].map(i => i.value).join(' ')"
    )


def users_decode(weights: Path, z: np.ndarray) -> np.ndarray:
    """The example's own module and weights file, as its author would use them."""
    from vae.examples.my_vae import build

    model = build()
    model.load_state_dict(load_file(str(weights)))
    with torch.no_grad():
        return model.eval().decode(torch.as_tensor(z, dtype=torch.float32)[None])[0].numpy()


def test_the_clis_take_the_same_flags(example, tmp_path):
    flags, env = example["flags"], example["env"]
    ev = _run(
        "-m", "vae.evaluate", *flags, "--iw-samples", "10", "--limit", "60", "--json", env=env
    )
    assert ev.returncode == 0, ev.stderr
    out = json.loads(ev.stdout)
    assert out["latent_dim"] == 8 and out["n"] == 60
    assert 0 < out["iwae_nll"] <= -out["elbo"] + 0.5  # the k = 10 bound is at least as tight
    photo = tmp_path / "seven.png"
    photo.write_bytes(digit_photo_png())
    enc = _run("-m", "vae.encode", *flags, str(photo), "--k", "3", env=env)
    assert enc.returncode == 0, enc.stderr
    assert "ELBO" in enc.stdout and "nearest  #" in enc.stdout


def test_the_app_opens_it_and_draws_its_decode(page, yours_url, example):
    page.goto(yours_url)
    page.wait_for_selector(DECODED, timeout=60_000)
    wait_idle(page)
    assert "yours: my_vae · z8" in picked_model(page)
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "your MyVAE · bernoulli decoder" in sidebar
    page.wait_for_function("() => globalThis.__vaeLive && __vaeLive.stats.frames > 0")
    slider = page.locator('input[type=range][aria-label^="z"]').first
    slider.focus()
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => new URL(location.href).searchParams.get('z')?.split(',').some(x => +x !== 0)",
        timeout=15_000,
    )
    wait_idle(page)
    z = np.array([float(v) for v in parse_qs(urlparse(page.url).query)["z"][0].split(",")])
    assert np.abs(z).max() > 0
    shown = np.array(page.evaluate("() => Array.from(globalThis.__vaeLive.last.panel.image)"))
    assert np.abs(shown - users_decode(example["weights"], z).ravel()).max() <= 1e-3
    no_exception(page)
    snap(page, "yours-explore.png")


def test_every_page_works_on_it(page, yours_url):
    for path in PAGES:
        page.goto(f"{yours_url}/{path}")
        page.wait_for_selector('[data-testid="stMain"] h1', timeout=60_000)
        page.wait_for_timeout(500)
        wait_idle(page, timeout=90_000)
        no_exception(page)
        errors = page.locator('[data-testid="stMain"] [data-testid="stAlertContentError"]')
        assert errors.count() == 0, errors.all_inner_texts()
        assert "yours: my_vae" in picked_model(page)
        snap(page, f"yours-{path}.png")
