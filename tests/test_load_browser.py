"""Eight browsers at once against one server, twice: each its own image and class, its own correct map,
no hook left on the shared model, and the server's memory back near its baseline once they leave
(the baseline is taken after a first wave, so what a server keeps on purpose is not counted as a leak)."""
from __future__ import annotations

import io
import json
import time
import zipfile

import numpy as np
import pytest

from explainers.pipeline import explain
from explainers.io import load_image
from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, NO_CHROMIUM, ROOT, running_server
from tests.test_load import rss_bytes

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)

# (gallery title, file, class): eight sessions, seven images, eight different (image, class) pairs
SESSIONS = [("Cat (Chelsea)", "cat.jpg", 281), ("Coffee", "coffee.jpg", 967), ("Astronaut", "astronaut.jpg", 834),
            ("Rocket launch", "rocket.jpg", 812), ("Photographer", "camera.jpg", 759),
            ("Hubble deep field", "hubble.jpg", 100), ("Retina", "retina.jpg", 500), ("Cat (Chelsea)", "cat.jpg", 285)]
TTL = 5  # seconds a closed tab's session is kept for a reload (Streamlit's default is 120)
WAIT = 240_000  # ms: eight sessions share two cores
VIEWPORT = {"width": 1400, "height": 1350}
KEPT = 1.18  # settled after the first wave / after one session (measured: 1.09-1.11 fixed, 1.26 leaking)
GROWTH = 1.10  # settled after the second wave / after the first (measured: 1.036-1.039)


def _settled(page) -> None:
    page.get_by_test_id("stImageCaption").filter(has_text="Grad-CAM · ").first.wait_for(timeout=WAIT)
    page.get_by_test_id("stButton").filter(has_text="Build the zip").wait_for(timeout=WAIT)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=WAIT)


def _download_map(page, index: int) -> tuple[dict, np.ndarray | None]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.get_by_test_id("stButton").filter(has_text="Build the zip").click()  # the zip is built on request
    ready = page.get_by_test_id("stDownloadButton").filter(has_text="Everything")
    ready.wait_for(timeout=WAIT)
    for attempt in range(4):  # a click that lands while the button is redrawn starts nothing: click again
        try:
            with page.expect_download(timeout=WAIT // 4) as download:
                ready.click()
            break
        except PlaywrightTimeout:
            if attempt == 3:
                raise
    with zipfile.ZipFile(download.value.path()) as archive:
        settings = json.loads(archive.read("settings.json"))
        name = f"gradcam_class{index}/map.npy"
        cam = np.load(io.BytesIO(archive.read(name))) if name in archive.namelist() else None
    return settings, cam


def _memory_settles(pid: int, limit: float, seconds: float) -> int:
    deadline, now = time.monotonic() + seconds, rss_bytes(pid)
    while now > limit and time.monotonic() < deadline:
        time.sleep(2)
        now = rss_bytes(pid)
    return now


def _settled_rss(pid: int, seconds: float = 60) -> int:
    """The server's RSS once the sessions that left are shut down and their heap trimmed: the first
    reading within 1% of the one 2 s before it (or the last one after ``seconds``)."""
    deadline, before = time.monotonic() + seconds, rss_bytes(pid)
    while time.monotonic() < deadline:
        time.sleep(2)
        now = rss_bytes(pid)
        if abs(now - before) <= 0.01 * before:
            return now
        before = now
    return before


def _open_wave(browser, url: str, expected: dict, categories: list[str], sync_api) -> list:
    """Eight browsers at once, each its own (image, class), each checked; returns their (open) contexts."""
    contexts = [browser.new_context(accept_downloads=True, viewport=VIEWPORT) for _ in SESSIONS]
    pages = [context.new_page() for context in contexts]
    for page in pages:  # each step goes to all eight before any is waited on
        page.goto(url)
    for page, (title, _, _) in zip(pages, SESSIONS):
        page.get_by_test_id("stSelectbox").filter(has_text="Sample image").click()
        page.get_by_role("option", name=title, exact=True).click()
    for page, (_, name, _) in zip(pages, SESSIONS):
        page.get_by_text(f"As uploaded: {name}", exact=False).wait_for(timeout=WAIT)
        page.get_by_test_id("stNumberInput").filter(has_text="Class index").wait_for(timeout=WAIT)
    for page, (_, _, index) in zip(pages, SESSIONS):
        box = page.get_by_label("Class index")
        box.fill(str(index))
        box.press("Enter")
    for k, (page, (_, name, index)) in enumerate(zip(pages, SESSIONS)):
        chosen = page.get_by_test_id("stSelectbox").filter(has_text="Class to explain").locator("input")
        sync_api.expect(chosen).to_have_value(f"{index}: {categories[index]}", timeout=WAIT)
        for _ in range(5):  # the rerun for the new class may still be drawing its panels
            _settled(page)
            assert page.get_by_test_id("stException").count() == 0
            assert page.get_by_test_id("stAlertContentError").count() == 0
            settings, cam = _download_map(page, index)
            if cam is not None:
                break
            time.sleep(3)
        assert (settings["image"]["name"], settings["class"]["index"]) == (name, index), k
        np.testing.assert_allclose(cam.astype(np.float32), expected[(name, index)], atol=1e-3,  # float16 maps
                                   err_msg=f"session {k}")
    return contexts


def test_eight_browser_sessions_each_see_their_own_result(lite0, tmp_path):
    """Two waves of eight browsers, two checks.

    1. Sessions that left are released: the settled memory after the first wave is within 18% of the
       memory after one session. What a server keeps on purpose (the maps in st.cache_data, the model
       clones' pool, the allocator's high-water marks) measured 9-11% here; without the session
       shutdown and the arena cap it measured 26%.
    2. Nothing grows wave after wave: the second wave settles within 10% of the first (measured 3.6-3.9%).
    Each figure is read the same way: after the wave's sessions expire, once two readings agree.
    """
    sync_api = pytest.importorskip("playwright.sync_api")
    expected = {(name, index): explain(lite0, load_image(ROOT / "assets" / "samples" / name), methods=["gradcam"],
                                       classes=[index]).results[0].map for _, name, index in SESSIONS}
    with running_server(tmp_path / "streamlit.log", "--server.disconnectedSessionTTL", str(TTL)) as (url, server), \
            sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            warm = browser.new_context(viewport=VIEWPORT)
            warm.new_page().goto(url)
            _settled(warm.pages[0])  # the model is loaded and a first map drawn
            warm.close()
            time.sleep(TTL + 6)  # that session expires and is shut down
            start = _settled_rss(server.pid)

            peaks = []
            for wave in range(2):
                contexts = _open_wave(browser, url, expected, lite0.categories, sync_api)
                peaks.append(rss_bytes(server.pid))
                print(f"wave {wave + 1}: eight sessions checked, server RSS {peaks[-1] / 2**20:.0f} MiB", flush=True)
                for context in contexts:
                    context.close()
                time.sleep(TTL + 6)  # the wave's sessions expire and are shut down
                if wave == 0:
                    baseline = _settled_rss(server.pid)

            check = browser.new_context(viewport=VIEWPORT)  # the shared model, seen from a ninth session
            page = check.new_page()
            page.goto(f"{url}/model")
            page.get_by_text("Shared model, checked on this run: no hooks · no stored gradients",
                             exact=False).wait_for(timeout=WAIT)
            check.close()
        finally:
            browser.close()
        now = _settled_rss(server.pid)  # read as the baseline was
        now = _memory_settles(server.pid, baseline * GROWTH, seconds=60) if now > baseline * GROWTH else now
    mib = 2**20
    print(f"server RSS: after one session {start / mib:.0f} MiB; first wave peak {peaks[0] / mib:.0f}, settled "
          f"{baseline / mib:.0f} MiB (the baseline); second wave peak {peaks[1] / mib:.0f}, after {now / mib:.0f} MiB")
    assert baseline <= start * KEPT, (f"sessions that left were not released: {baseline / mib:.0f} MiB after the "
                                      f"first wave, {start / mib:.0f} MiB after one session")
    assert now <= baseline * GROWTH, (f"server memory {now / mib:.0f} MiB after the second wave, baseline "
                                      f"{baseline / mib:.0f} MiB after the first (peaks {peaks[0] / mib:.0f}, "
                                      f"{peaks[1] / mib:.0f} MiB)")
