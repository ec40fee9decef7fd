"""No request leaves the machine: every page of the app, in headless Debian Chromium, asks only the app's
own host (no fonts.gstatic.com favicon, no CDN); and the server log of those runs stays quiet."""
from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from tests.streamlit_server import CHROMIUM, NO_CHROMIUM, ROOT, chromium_page, running_server

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
PAGE_TITLES = ["Compare methods", "Compare classes", "Compare layers", "Compare models", "Dataset confusion",
               "Evaluate", "Review a store", "Layers & model"]


def test_every_page_asks_only_the_apps_own_host(tmp_path):
    log = tmp_path / "streamlit.log"
    requests: list[str] = []
    with running_server(log) as (url, _), chromium_page(viewport={"width": 1280, "height": 720}) as page:
        page.on("request", lambda request: requests.append(request.url))
        page.goto(url)
        page.get_by_test_id("stSidebarNav").wait_for(timeout=120_000)
        for title in PAGE_TITLES:
            page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
            page.get_by_role("heading", name=re.compile(r"\w")).first.wait_for(timeout=120_000)
            page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=180_000)
            page.wait_for_load_state("networkidle")
        favicon = page.evaluate("() => [...document.querySelectorAll('link[rel~=icon]')].map(l => l.href)")
    own = urlparse(url).netloc
    outside = sorted({u for u in requests if urlparse(u).scheme not in ("data", "blob") and urlparse(u).netloc != own})
    assert outside == []
    assert len(requests) > 20  # the pages really loaded (scripts, styles, media)
    assert favicon and all(urlparse(f).netloc == own for f in favicon), favicon
    text = log.read_text(errors="replace")
    noisy = [line for line in text.splitlines() if re.search(r"Warning|warn\(|\d+%\|", line)]
    assert noisy == [], noisy[:5]  # point 15: no third-party warnings, no tqdm bars in the server log
    assert (ROOT / "assets" / "icon.png").is_file()


def test_a_page_opened_first_by_its_url_runs_inside_the_frame(tmp_path):
    """A fresh server whose first request is a page's URL: Streamlit starts in its old pages/ mode and
    runs that page alone; the page must still come with the sidebar (image, model, fit)."""
    with running_server(tmp_path / "streamlit.log") as (url, _), \
            chromium_page(viewport={"width": 1280, "height": 720}) as page:
        page.goto(f"{url}/model")
        page.get_by_role("heading", name="Layers & model").wait_for(timeout=120_000)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_text("Image source").wait_for(timeout=60_000)
        sidebar.get_by_text("Image fit").wait_for(timeout=60_000)
        nav = page.get_by_test_id("stSidebarNav").inner_text()
        assert "Compare methods" in nav and "app" not in nav.split()  # the app's navigation, not pages/'s
