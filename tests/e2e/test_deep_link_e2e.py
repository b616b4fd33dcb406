"""A deep link as the very first request of a fresh server. Streamlit then takes pages/ for a
legacy page folder and runs the page script alone; the page must come back inside the frame
(navigation, model picker), with no "Page not found" notice (vae/ui/frame.py)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import start_app, stop_app, wait_healthy
from tests.e2e.helpers import free_port
from tests.e2e.test_e2e import no_exception, snap, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

NAV = '[data-testid="stSidebarNav"] a'


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("encode", "Encode your own image"),
        ("traverse?model=asset:digits-wide", "Traverse"),
        # the home page, which "/" also serves
        ("explore?model=asset:digits-wide", "Explore the latent space"),
    ],
)
def test_first_request_of_a_fresh_server_opens_the_page_in_the_frame(page, app_dirs, path, title):
    port = free_port()
    proc = start_app(app_dirs, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        page.goto(f"{url}/{path}")  # nothing has visited this server before
        page.get_by_role("heading", name=title).first.wait_for(timeout=90_000)
        wait_idle(page, timeout=90_000)
        page.wait_for_timeout(500)  # a late notice would arrive by now
        assert page.get_by_text("Page not found").count() == 0
        nav = page.locator(NAV)
        # each link's last line is its label (the first is the icon's ligature, when it has one)
        links = [nav.nth(i).inner_text().split("\n")[-1].strip() for i in range(nav.count())]
        assert "Encode an image" in links and "Model library" in links, links  # the frame's
        assert "app" not in links  # Streamlit's legacy listing of the pages/ folder
        assert page.get_by_text("VAE Latent Explorer").count() >= 1  # the sidebar's header
        assert page.get_by_text("Pick or add a model in the sidebar").count() == 0
        snap(page, f"deep-link-{path.split('?')[0]}.png")
        if "model=" in path:
            sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
            assert "20-d latent" in sidebar  # the link's model (digits-mlp has 4)
        assert page.get_by_role("heading", name=title).count() == 1  # the page ran once
        no_exception(page)
    finally:
        stop_app(proc)
