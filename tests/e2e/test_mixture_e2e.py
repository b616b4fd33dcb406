"""A model with a learned mixture prior in Chromium: the browser's Random z draws from that
prior. Its components all sit at +2.5 with σ ≈ 0.02, where N(0, I) would hardly ever go."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.conftest import start_app, stop_app, wait_healthy
from tests.e2e.helpers import free_port
from tests.e2e.test_e2e import no_exception, open_explore, snap
from tests.helpers import far_mixture_run

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SLIDER = ".vl-sliders input[type=range]"  # the latent panel's sliders (not the pad's)
AT = 2.5


@pytest.fixture(scope="module")
def mixture_url(tmp_path_factory, browser):
    root = tmp_path_factory.mktemp("mixture-e2e")
    far_mixture_run(root / "assets" / "digits-mlp", at=AT)
    (root / "runs").mkdir()
    dirs = {"assets": root / "assets", "runs": root / "runs", "cache": root / "cache", "root": root}
    port = free_port()
    proc = start_app(dirs, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        stop_app(proc)


def test_random_z_in_the_browser_draws_from_the_learned_prior(page, mixture_url):
    open_explore(page, mixture_url)
    button = page.get_by_role("button", name="Random z")
    assert "learned mixture of 3 Gaussians" in button.get_attribute("title")
    sliders = page.locator(SLIDER)
    before = [float(sliders.nth(i).input_value()) for i in range(sliders.count())]
    button.click()
    for _ in range(100):  # the sliders move when the browser has drawn z (in a shadow root)
        values = [float(sliders.nth(i).input_value()) for i in range(sliders.count())]
        if values != before:
            break
        page.wait_for_timeout(100)
    after = np.array([float(sliders.nth(i).input_value()) for i in range(sliders.count())])
    assert len(after) == 4 and np.all(np.abs(after - AT) < 0.15), (before, after)
    no_exception(page)
    snap(page, "explore-mixture-prior.png")
