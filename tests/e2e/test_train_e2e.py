"""Training in a real browser: start, watch, stop, train to the end, open the model in Explore."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import ARTIFACTS, DECODED
from vae.checkpoint import train_state_meta

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PROGRESS = '[data-testid="stProgress"]'


def wait_idle(page, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout
    )


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, "the page shows a traceback"


def fill(page, label: str, value: str, role: str = "textbox") -> None:
    box = page.get_by_role(role, name=label, exact=True)
    box.fill(value)
    box.press("Enter")
    wait_idle(page)


def start_job(page, name: str, epochs: int) -> None:
    fill(page, "Name", name)
    fill(page, "Epochs", str(epochs), role="spinbutton")
    fill(page, "Hidden sizes", "32")
    page.get_by_role("button", name="Start training").click()
    # the new run's progress (a short one may be done by the first poll), not "Stopped ·"
    shown = re.compile(r"^(Epoch [\d,]+ of [\d,]+ · step|Finished)")
    page.locator(PROGRESS).get_by_text(shown).wait_for(timeout=90_000)


def test_train_watch_stop_then_finish_and_explore(page, app_url, app_dirs):
    page.set_viewport_size({"width": 1440, "height": 2000})  # the app scrolls inside its frame
    page.goto(app_url)  # a deep link on a fresh server shows "Page not found" first
    page.wait_for_selector(DECODED, timeout=60_000)
    wait_idle(page)  # a click while Explore's first run is still going can be lost
    page.get_by_role("link", name="Train", exact=True).click()
    page.get_by_role("button", name="Start training").wait_for(timeout=60_000)
    wait_idle(page)

    # a long job: the live view polls, then Stop ends it with a checkpoint
    start_job(page, "e2e-long", epochs=400)
    # .first: while the fragment redraws, the old and the new chart can both be in the page
    page.get_by_text("KL per latent dimension").first.wait_for(timeout=30_000)  # after epoch 1
    page.wait_for_selector('img[alt="training samples"]', timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "train-running.png"))
    no_exception(page)
    page.get_by_role("button", name="Stop", exact=True).click()
    page.locator(PROGRESS).get_by_text(re.compile("^Stopped")).wait_for(timeout=60_000)
    assert page.get_by_role("button", name="Resume").count() == 1
    assert train_state_meta(app_dirs["runs"] / "e2e-long") is not None

    # a one-epoch job to the end, then straight into Explore
    start_job(page, "e2e-digits", epochs=1)
    page.locator(PROGRESS).get_by_text(re.compile("^Finished")).wait_for(timeout=90_000)
    wait_idle(page)
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "train-finished.png"))
    page.get_by_role("button", name="Explore this model").click()
    try:
        page.wait_for_selector(DECODED, timeout=60_000)
    except Exception:  # say what the page showed instead, for the CI log
        page.screenshot(path=str(ARTIFACTS / "train-explore-timeout.png"))
        print("page at the timeout:", page.url, page.inner_text("body")[:2000])
        raise
    page.wait_for_selector(".js-plotly-plot .scatterlayer, .js-plotly-plot canvas", timeout=30_000)
    wait_idle(page)
    no_exception(page)
    assert "model=run%3Ae2e-digits" in page.url
    page.screenshot(path=str(ARTIFACTS / "train-explore.png"))
