"""Real-browser test of the Review page: `streamlit run app.py` with CAMSCOPE_STORES_DIR set to a real small store,
headless Debian Chromium: open the page, filter, open an image on Compare."""
from __future__ import annotations

import re

import pytest

from tests.review_store import make_review_store
from tests.streamlit_server import CHROMIUM, NO_CHROMIUM, chromium_page, running_server

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    stores = make_review_store(tmp_path_factory.mktemp("review"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAMSCOPE_STORES_DIR", str(stores))
        with running_server(tmp_path_factory.mktemp("server") / "streamlit.log") as (url, _):
            yield url


def test_filter_then_open_an_image_on_compare(server_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with chromium_page(viewport={"width": 1400, "height": 1200}) as page:
        page.goto(server_url)
        page.get_by_test_id("stSidebarNav").get_by_text("Review a store", exact=True).click(timeout=120_000)
        page.get_by_text(re.compile(r"^14 maps match · page 1 of 2")).wait_for(timeout=120_000)

        page.get_by_test_id("stExpander").get_by_text("Filters", exact=True).click()
        page.get_by_text("Predicted class", exact=True).wait_for(timeout=30_000)
        page.get_by_test_id("stSelectbox").filter(has_text="True class").click()
        page.get_by_role("option", name="tabby", exact=True).click()
        page.get_by_text(re.compile(r"^4 maps match · page 1 of 1")).wait_for(timeout=60_000)
        tiles = page.get_by_test_id("stImageCaption").filter(has_text=re.compile(r" · scale: own min to max · strength: raw max "))
        sync_api.expect(tiles).to_have_count(4, timeout=60_000)  # the earlier run's tiles go once it ends
        assert all(re.search(r" · (tabby|Egyptian cat) · p 0\.\d\d · ", t) for t in tiles.all_inner_texts())
        assert page.get_by_test_id("stException").count() == 0

        page.get_by_role("button", name="Open on Compare").first.click()
        page.get_by_role("heading", name="Compare CAM methods").wait_for(timeout=120_000)
        page.get_by_test_id("stImageCaption").filter(has_text="As uploaded: tabby/cat.jpg").wait_for(
            timeout=180_000)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_text("From the store", exact=False).wait_for(timeout=60_000)
        assert page.url.rstrip("/") == server_url.rstrip("/") or page.url.endswith("/compare")
        assert page.get_by_test_id("stException").count() == 0
