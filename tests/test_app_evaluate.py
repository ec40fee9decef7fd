"""The Evaluate page, driven by AppTest on the embedded model and the cat (CPU, nothing downloaded)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from explainers.metrics import faithfulness as F  # noqa: E402
from explainers.metrics import localisation as L  # noqa: E402
from ui import evaluate as ev  # noqa: E402
from explainers.metrics import verdicts  # noqa: E402
from ui import loaders, report, state  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/evaluate.py"


def new_page(**settings) -> AppTest:
    ev._stored.clear()  # every test starts with no metric computed (the cache is per process)
    ev._road_times.clear()  # and with no ROAD run measured
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state[ev.METHODS] = ["gradcam"]  # one method keeps every run cheap
    at.session_state[ev.STEPS] = 5
    at.session_state[ev.SANITY_STEPS] = 1
    at.session_state[ev.SANITY_REFERENCE] = False
    at.session_state[ev.ZOOMS] = []
    at.session_state[ev.NOISE_SAMPLES] = 0
    for key, value in settings.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(PAGE).run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def gradcam_map(lite0, at: AppTest) -> np.ndarray:
    chosen = at.session_state[state.SELECTION]
    found = loaders.explanations(lite0, chosen.image, chosen.image_sha256, lite0.target_layer,
                                 at.session_state[state.CLASS_INDEX], ["gradcam"])
    return found["gradcam"].map


def test_the_page_runs_and_waits_for_its_buttons():
    at = new_page()
    assert at.title[0].value == "Evaluate maps"
    labels = [b.label for b in at.button]
    assert labels == ["Run faithfulness (24 forward passes)", "Run the sanity check (2 explanations)",
                      "Run stability (2 explanations)"]  # 2 maps (Grad-CAM, random) x 2 curves x 6 steps
    assert not at.metric and not at.get("plotly_chart")  # nothing slow ran unasked


def test_faithfulness_curves_and_areas_match_the_engine_and_are_cached(lite0, monkeypatch):
    at = new_page()
    at.button(key=ev.RUN_FAITHFULNESS).click().run()
    assert_clean(at)
    metrics = {(m.label, i // 2): m.value for i, m in enumerate(at.metric)}
    assert len(at.metric) == 4  # Grad-CAM and the random reference, two areas each
    chosen = at.session_state[state.SELECTION]
    cls = at.session_state[state.CLASS_INDEX]
    direct = F.deletion_insertion(lite0, chosen.image, gradcam_map(lite0, at), cls, steps=5)
    assert metrics[("Deletion area (lower is better)", 0)] == f"{direct.deletion.area:.3f}"
    assert metrics[("Insertion area (higher is better)", 0)] == f"{direct.insertion.area:.3f}"
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"].split(" · ")[0] for t in figure["data"]] == ["deletion", "insertion"]
    assert figure["layout"]["title"]["text"] == "Grad-CAM"

    calls = []
    monkeypatch.setattr(ev.faithfulness, "deletion_insertion", lambda *a, **k: calls.append(a))
    at.run()  # a rerun shows the cached curves without the button or a new computation
    assert_clean(at)
    assert calls == [] and len(at.metric) == 4
    assert ev.RUN_FAITHFULNESS not in [b.key for b in at.button]


def test_a_box_around_the_peak_is_a_hit_and_a_corner_box_a_miss(lite0):
    at = new_page()
    cam = gradcam_map(lite0, at)
    x, y = L.peak(cam)
    box = (max(x - 30, 0), max(y - 30, 0), x + 30, y + 30)
    for key, value in zip(ev.BOX, box):
        at.number_input(key=key).set_value(value)
    at.run()
    assert_clean(at)
    truth = L.ground_truth(cam.shape[0], cam.shape[1], box=box)
    expected = L.localise(cam, truth)
    caption = next(c for i in at.image for c in i.captions if c.startswith("Grad-CAM"))
    assert caption == (f"Grad-CAM · hit (0.0 px) · energy {expected.energy:.2f} · IoU {expected.iou:.2f}")
    for key, value in zip(ev.BOX, (0, 0, 10, 10)):
        at.number_input(key=key).set_value(value)
    at.run()
    caption = next(c for i in at.image for c in i.captions if c.startswith("Grad-CAM"))
    assert caption.startswith("Grad-CAM · miss (")
    assert any("centre point" in c.value and "**miss**" in c.value for c in at.caption)


def test_an_uploaded_mask_is_the_ground_truth(lite0):
    from PIL import Image

    at = new_page()
    cam = gradcam_map(lite0, at)
    mask = np.zeros((cam.shape[0] // 2, cam.shape[1] // 2), np.uint8)  # stored at half size
    mask[:, mask.shape[1] // 2:] = 255  # the right half of the image
    data = io.BytesIO()
    Image.fromarray(mask).save(data, format="PNG")
    at.radio(key=ev.TRUTH_KIND).set_value("Mask").run()
    at.file_uploader(key=ev.MASK).upload("mask.png", data.getvalue(), "image/png").run()
    assert_clean(at)
    truth = L.ground_truth(cam.shape[0], cam.shape[1], mask=mask)
    expected = L.localise(cam, truth)
    caption = next(c for i in at.image for c in i.captions if c.startswith("Grad-CAM"))
    assert f"energy {expected.energy:.2f} · IoU {expected.iou:.2f}" in caption


def test_an_impossible_box_is_a_sentence_and_the_other_tabs_still_work():
    at = new_page()
    at.number_input(key=ev.BOX[2]).set_value(0).run()  # x1 = 0 <= x0
    assert not at.exception
    assert [e.value for e in at.error] == ["A box needs x1 > x0 and y1 > y0; got (112, 75, 0, 225)."]
    assert ev.RUN_SANITY in [b.key for b in at.button]


def test_sanity_check_strip_and_similarity_chart():
    at = new_page()
    at.button(key=ev.RUN_SANITY).click().run()
    assert_clean(at)
    strip = next(i for i in at.image if i.captions and i.captions[0] == "original")
    assert len(strip.captions) == 2 and strip.captions[1].startswith("classifier · ρ ")
    (figure,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]  # the faithfulness tab is empty
    assert figure["data"][0]["name"] == "Grad-CAM · Spearman" and figure["data"][1]["name"] == "Grad-CAM · SSIM"
    assert any("No verdict from fewer than 5" in c.value for c in at.caption)  # one step gives no verdict
    assert not at.success and not at.warning


def test_stability_shows_the_spread():
    at = new_page()
    at.button(key=ev.RUN_STABILITY).click().run()
    assert_clean(at)
    caption = next(c for i in at.image for c in i.captions if "mean spread" in c)
    spread = float(caption.split("mean spread ")[1].split(" ")[0])
    assert caption.startswith("Grad-CAM") and 0.0 < spread < 0.5
    assert any(c.value.startswith("Views: mirror.") for c in at.caption)


def test_faithfulness_gives_a_verdict_per_metric_and_the_report_records_the_settings(lite0, monkeypatch):
    recorded: dict = {}
    offer = report.offer
    monkeypatch.setattr(report, "offer", lambda *a, **k: (recorded.update(k.get("metrics") or {}), offer(*a, **k)))
    at = new_page()
    assert any(c.value.startswith("ROAD: about ") and "one imputation timed here: " in c.value for c in at.caption)
    at.button(key=ev.RUN_FAITHFULNESS).click().run()
    assert_clean(at)
    chosen = at.session_state[state.SELECTION]
    cls = at.session_state[state.CLASS_INDEX]
    ours = F.deletion_insertion(lite0, chosen.image, gradcam_map(lite0, at), cls, steps=5)
    rand = F.deletion_insertion(lite0, chosen.image, F.random_saliency(chosen.image.height, chosen.image.width, 0),
                                cls, steps=5)
    expected = verdicts.versus_reference({"gradcam": verdicts.faithfulness_scores(ours),
                                          "random": verdicts.faithfulness_scores(rand)}, "random")
    lines = [m.value for m in at.markdown]
    for verdict in expected:
        assert any(f"{verdict.metric}: **{verdict.label}**] ({verdict.value:.3f} vs {verdict.reference:.3f})" in line
                   for line in lines), verdict
        assert recorded[f"Grad-CAM · {verdict.metric} · verdict"] == verdict.sentence
    assert recorded["Faithfulness setting · steps"] == "5 (6 forward passes per curve)"
    assert recorded["Faithfulness setting · deletion fills removed pixels with"].startswith("mean: ")
    assert recorded["Faithfulness setting · insertion starts from"].startswith("blur: ")
    assert recorded["Localisation setting · ground truth"] == \
        "box x0=112, y0=75, x1=338, y1=225 (pixels of the 451 × 300 image; x0 ≤ x < x1)"
    assert recorded["Localisation setting · pointing tolerance"] == "15 px at 224 px = 20.1 px here"
    assert recorded["Localisation setting · IoU threshold"] == "0.5 of the map's maximum"
    assert recorded["Grad-CAM · pointing game · verdict"].startswith("Pointing game: ")
    assert "Grad-CAM · IoU · verdict" in recorded and "Grad-CAM · energy in the ground truth · verdict" in recorded


def test_the_road_estimate_is_the_last_measured_run(monkeypatch):
    at = new_page()
    at.checkbox(key=ev.ROAD).check().run()
    monkeypatch.setattr(ev.faithfulness, "road", _slow_road)
    at.button(key=ev.RUN_FAITHFULNESS).click().run()
    assert_clean(at)
    caption = next(c.value for c in at.caption if c.value.startswith("ROAD: about "))
    seconds = float(caption.split("about ")[1].split(" s")[0])
    assert "measured on the last ROAD run" in caption and seconds >= 1  # the stub sleeps 1.2 s


def _slow_road(*args, **kwargs):
    import time

    time.sleep(1.2)
    return F.RoadScores(np.array([0.5]), 0.9, np.array([0.2]), np.array([0.8]))
