"""Real-browser tests: `streamlit run app.py`, headless Debian Chromium via Playwright: an upload,
and the Compare page's first screen at 1280 x 720.

Set CAMSCOPE_SCREENSHOT=1 to also copy the 1280 x 720 screenshot to docs/compare.png for the README.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import zipfile

import pytest
from PIL import Image

from tests.streamlit_server import CHROMIUM, NO_CHROMIUM, ROOT, chromium_page, running_server

METHOD_NAMES = ["Grad-CAM", "Grad-CAM++", "XGrad-CAM", "HiResCAM", "LayerCAM", "EigenCAM"]  # the page's default

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("server") / "streamlit.log") as (url, _):
        yield url


def test_upload_shows_every_heatmap(server_url, tmp_path):
    upload = tmp_path / "upload_cat.png"
    Image.open(ROOT / "assets" / "samples" / "cat.jpg").save(upload)

    with chromium_page(accept_downloads=True, viewport={"width": 1400, "height": 1350}) as page:
        page.goto(server_url)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_test_id("stRadioOption").filter(has_text="Upload").click()
        with page.expect_file_chooser(timeout=60_000) as chooser:
            sidebar.get_by_test_id("stFileUploaderDropzone").get_by_test_id("stBaseButton-secondary").click()
        chooser.value.set_files(str(upload))

        page.get_by_text("As uploaded: upload_cat.png", exact=False).first.wait_for(timeout=180_000)
        for name in METHOD_NAMES:
            caption = page.get_by_test_id("stImageCaption").filter(has_text=re.compile(rf"^{re.escape(name)} · "))
            caption.first.wait_for(timeout=180_000)
        for widget in ("stSlider", "stMultiSelect", "stDownloadButton"):  # drawn lazily: wait for the real ones
            page.get_by_test_id(widget).first.wait_for(state="visible", timeout=60_000)
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=180_000)
        page.wait_for_load_state("networkidle")
        captions = page.get_by_test_id("stImageCaption").all_inner_texts()
        panels = [c for c in captions if re.match(r"^.+ @ .+ · \d+\.\d\d s$", c)]
        assert [p.split(" · ")[0] for p in panels] == METHOD_NAMES
        assert all(" raw " in p for p in panels)  # each panel gives its map's range in raw units
        images = page.locator('[data-testid="stImage"] img')
        loaded = images.evaluate_all("els => els.filter(e => e.complete && e.naturalWidth > 0).length")
        assert loaded >= 2 + len(METHOD_NAMES)  # as uploaded, as the model sees it, one per method
        assert page.get_by_test_id("stException").count() == 0
        assert page.get_by_test_id("stAlertContentError").count() == 0

        page.get_by_role("button", name=re.compile("Build the zip of everything")).click()
        ready = page.get_by_test_id("stDownloadButton").filter(has_text="Everything")
        ready.wait_for(timeout=120_000)
        with page.expect_download(timeout=120_000) as download:
            ready.click()
        with zipfile.ZipFile(download.value.path()) as archive:
            settings = json.loads(archive.read("settings.json"))
            assert len([n for n in archive.namelist() if n.endswith("/map.npy")]) == len(METHOD_NAMES)
        assert settings["model"]["name"] == "efficientnet_lite0"
        assert settings["image"]["name"] == "upload_cat.png"
        assert [m["name"] for m in settings["methods"]] == METHOD_NAMES

        assert settings["downloads"]["capped"] is False


def test_original_and_three_maps_on_the_first_screen_at_1280_by_720(server_url, tmp_path):
    with chromium_page(viewport={"width": 1280, "height": 720}) as page:
        page.goto(server_url)
        for name in METHOD_NAMES:
            caption = page.get_by_test_id("stImageCaption").filter(has_text=re.compile(rf"^{re.escape(name)} · "))
            caption.first.wait_for(timeout=180_000)
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=180_000)
        page.wait_for_load_state("networkidle")
        cells = page.locator('[data-testid="stMain"] [data-testid="stImage"]').evaluate_all(
            """els => els.map(e => { const r = e.querySelector('img').getBoundingClientRect();
                const c = e.querySelector('[data-testid="stImageCaption"]');
                return {top: r.top, bottom: r.bottom, left: r.left, right: r.right,
                        caption: c ? c.innerText : ''}; })""")
        on_screen = [c for c in cells if c["bottom"] <= 720 and c["top"] >= 0 and c["right"] <= 1280
                     and c["bottom"] > c["top"]]
        assert any(c["caption"].startswith("As uploaded: cat.jpg") for c in on_screen), cells
        maps = [c for c in on_screen if " @ " in c["caption"]]
        assert len(maps) >= 3, cells
        assert page.evaluate("window.scrollY") == 0

        shot = tmp_path / "compare.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("CAMSCOPE_SCREENSHOT"):
            (ROOT / "docs").mkdir(exist_ok=True)
            shutil.copyfile(shot, ROOT / "docs" / "compare.png")
