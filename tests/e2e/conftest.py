"""End-to-end fixtures: a real `streamlit run app.py` on a free port and headless Chromium.

The app is pointed at a temporary models folder holding two tiny digits checkpoints (4 and 20
latent dimensions), an empty runs folder and a temporary cache, so the tests never depend on
(or write into) the shipped assets. Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.helpers import free_port, tiny_digits_checkpoint

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _require_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"end-to-end tests need Chromium at {CHROMIUM}; it is not installed")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("end-to-end tests need the playwright Python package")


@pytest.fixture(scope="session")
def app_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _require_browser()
    root = tmp_path_factory.mktemp("e2e")
    assets = root / "assets"
    tiny_digits_checkpoint(assets / "digits-mlp", latent_dim=4)
    tiny_digits_checkpoint(assets / "digits-wide", latent_dim=20, steps=60)
    (root / "runs").mkdir()
    return {"assets": assets, "runs": root / "runs", "cache": root / "cache", "root": root}


# The decoded picture: a canvas drawn in the browser, or an <img> when decoding on the server.
DECODED = '[aria-label="decoded z"], img[alt="decoded z"]'


def start_app(
    env_dirs: dict[str, Path],
    port: int,
    script: str = "app.py",
    args: tuple[str, ...] = (),
    **extra_env: str,
) -> subprocess.Popen:
    """`streamlit run` in the background, logging to <tmp>/streamlit-<port>.log; `args` go to
    the script, after `--` (`--model ...` for your own model)."""
    env = dict(os.environ)
    env.update(extra_env)
    env.update(
        VAE_ASSETS_DIR=str(env_dirs["assets"]),
        VAE_RUNS_DIR=str(env_dirs["runs"]),
        VAE_CACHE_DIR=str(env_dirs["cache"]),
        VAE_DEVICE="cpu",
    )
    log = open(env_dirs["root"] / f"streamlit-{port}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", script,
            "--server.port", str(port),
            "--server.address", "127.0.0.1",
            "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
            *(["--", *args] if args else []),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_healthy(
    url: str, proc: subprocess.Popen, timeout: float = 60.0, poll: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(poll)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout:.0f} s")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def app_url(app_dirs: dict[str, Path], browser):
    yield from _serve(app_dirs, browser)


@pytest.fixture(scope="session")
def server_app_url(app_dirs: dict[str, Path], browser):
    """The same app with browser decoding off (`VAE_LIVE_DECODER=0`): server-side sliders."""
    yield from _serve(app_dirs, browser, VAE_LIVE_DECODER="0")


def _serve(app_dirs: dict[str, Path], browser, **extra_env: str):
    port = free_port()
    proc = start_app(app_dirs, port, **extra_env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        # Open the home page once, as a first visitor would, so that tests start on a warm
        # server (a first visit straight to a page is test_deep_link_e2e.py's).
        pg = browser.new_page()
        pg.goto(url)
        pg.wait_for_selector(DECODED, timeout=90_000)
        pg.close()
        yield url
    finally:
        stop_app(proc)


@pytest.fixture(scope="session")
def browser(app_dirs):
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()
