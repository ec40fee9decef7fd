"""Time to first maps in a browser on a warm server: `streamlit run app.py` + headless Chromium.

    python bench/bench_first_maps.py --repeat 3

Starts the app (CPU), loads the Compare page once (the server is then warm: model loaded, the
cat's maps cached), then per repeat opens a fresh browser page at 1280 x 720 and times
(a) page load until all six default panels show, for the cat (maps cached on the server), and
(b) switching the gallery to a photo not seen yet until its six panels show (maps computed).
Needs Debian's chromium at /usr/bin/chromium. Times depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, running_server  # noqa: E402

METHOD_NAMES = ["Grad-CAM", "Grad-CAM++", "XGrad-CAM", "HiResCAM", "LayerCAM", "EigenCAM"]
UNSEEN = ["Coffee", "Astronaut", "Rocket launch", "Photographer", "Hubble deep field", "Retina"]


def wait_panels(page, text: str = "") -> None:
    for name in METHOD_NAMES:
        page.get_by_test_id("stImageCaption").filter(has_text=f"{name} · {text}").first.wait_for(timeout=300_000)


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cached, fresh = [], []
    with tempfile.TemporaryDirectory() as folder, running_server(Path(folder) / "streamlit.log") as (url, _):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            start = time.perf_counter()
            warmup = browser.new_page(viewport={"width": 1280, "height": 720})
            warmup.goto(url)
            wait_panels(warmup)
            print(f"cold server, first page: {time.perf_counter() - start:.1f} s")
            warmup.close()
            for i in range(min(args.repeat, len(UNSEEN))):
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                start = time.perf_counter()
                page.goto(url)
                wait_panels(page)
                cached.append(time.perf_counter() - start)
                sidebar = page.get_by_test_id("stSidebar")
                start = time.perf_counter()
                sidebar.get_by_test_id("stSelectbox").filter(has_text="Sample image").click()
                page.get_by_role("option", name=UNSEEN[i], exact=True).click()
                page.wait_for_function(  # six panels of the new photo (its top class, not the cat's)
                    "() => { const c = [...document.querySelectorAll('[data-testid=stImageCaption]')]"
                    ".map(e => e.innerText); return c.some(t => t.startsWith('As uploaded: ') && !t.includes('cat.jpg'))"
                    " && c.filter(t => t.includes(' @ ') && !t.includes('Egyptian cat @')).length >= 6; }",
                    timeout=300_000)
                fresh.append(time.perf_counter() - start)
                page.close()
            browser.close()
    print(f"warm server, page load to six panels (maps cached): median {statistics.median(cached):.1f} s "
          f"of {', '.join(f'{t:.1f}' for t in cached)}")
    print(f"warm server, a new gallery photo to six panels (maps computed): median {statistics.median(fresh):.1f} s "
          f"of {', '.join(f'{t:.1f}' for t in fresh)}")


if __name__ == "__main__":
    main()
