"""Checkpoint timeline: a tiny CNN at three training steps (plus a copy of the last) as manifest
entries, the real ``run`` with several --model into one store, then drift equal to skimage/scipy."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explainers.review.timeline import (TimelineError, checkpoints, default_pairs, load_timeline, most_moved,
                                        review_timeline)
from explainers.scale.query import connect
from explainers.scale.rows import decode_raw
from tests.review_store import run_cli

# run order on purpose not alphabetical: the timeline must follow run.json, not sorting
ORDER = ("zeta_init", "mid_step5", "alpha_final", "alpha_final_copy")
SIDE = 32


def _image(label: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy 32 x 32 picture with a bright 10 x 10 square in the left (0) or right (1) half."""
    pixels = rng.integers(0, 60, (SIDE, SIDE, 3)).astype(np.uint8)
    x = int(rng.integers(0, 6)) + (16 if label else 0)
    y = int(rng.integers(0, SIDE - 10))
    pixels[y:y + 10, x:x + 10] = 230
    return pixels


def _batch(images: list[np.ndarray]) -> torch.Tensor:
    x = torch.tensor(np.stack(images), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    return (x - 0.5) / 0.25  # the manifest's preprocessing below


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    import timm
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("timeline")
    models, source = root / "models", root / "set"
    models.mkdir()
    rng = np.random.default_rng(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        net = timm.create_model("test_resnet", num_classes=2)
        labels = [i % 2 for i in range(64)]
        x, y = _batch([_image(c, rng) for c in labels]), torch.tensor(labels)
        optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
        steps = {"zeta_init": 0, "mid_step5": 5, "alpha_final": 60}
        done = 0
        for name, step in steps.items():  # step 0 random, after a few steps, after convergence
            net.train()
            for _ in range(step - done):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(net(x), y).backward()
                optimizer.step()
            done = step
            save_file(net.state_dict(), models / f"{name}.safetensors")
        net.eval()
        with torch.no_grad():
            accuracy = float((net(x).argmax(1) == y).float().mean())
    finally:
        torch.set_num_threads(threads)
    assert accuracy == 1.0  # converged
    (models / "alpha_final_copy.safetensors").write_bytes((models / "alpha_final.safetensors").read_bytes())
    (models / "labels.txt").write_text("left\nright\n")
    (models / "models.toml").write_text("".join(
        f'[[model]]\nname = "{n}"\narchitecture = "timm/test_resnet"\nweights = "{n}.safetensors"\n'
        f'labels = "labels.txt"\ntarget_layer = "layer2"\n[model.preprocessing]\ninput_size = [{SIDE}, {SIDE}]\n'
        'mean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\ninterpolation = "nearest"\n\n' for n in ORDER))
    for i in range(12):
        label = i % 2
        (source / ("left", "right")[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(_image(label, rng)).save(source / ("left", "right")[label] / f"{i:02d}.png")
    out = root / "store"
    env = {"CAMSCOPE_MODELS_DIR": str(models), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    models_args = [a for n in ORDER for a in ("--model", n)]
    done = run_cli(source, out, *models_args, "--targets", "both", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "12 images explained" in done.stdout
    return out


def _decoded(store: Path, image_id: str, model: str, class_index: int) -> np.ndarray:
    con = connect(store)
    raw, shape, scale = con.execute("SELECT raw, raw_shape, raw_scale FROM maps WHERE image_id = ? AND model = ? "
                                    "AND class_index = ? AND method = 'gradcam'",
                                    [image_id, model, class_index]).fetchone()
    con.close()
    return decode_raw(raw, shape, scale)


def _normalized(raw: np.ndarray, size: int) -> np.ndarray:
    import cv2

    up = cv2.resize(np.maximum(raw, 0).astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    span = up.max() - up.min()
    return (up - up.min()) / span if span > 0 else np.zeros_like(up)


def test_run_keeps_the_checkpoint_order_and_one_layer(store):
    run = json.loads((store / "run.json").read_text())
    assert [m["name"] for m in run["settings"]["models"]] == list(ORDER)
    assert {tuple(m["layers"]) for m in run["settings"]["models"]} == {("layer2",)}
    assert checkpoints(store) == list(ORDER)
    timeline = load_timeline(store)
    assert timeline.models == ORDER and timeline.layer == "layer2" and timeline.method == "gradcam"
    assert len(timeline.image_ids) == 12 and timeline.missing == 0
    assert set(timeline.class_source) == {"true"}  # --targets both stores the true class in every checkpoint
    assert [int(c) for c in timeline.class_index] == [0] * 6 + [1] * 6  # left/ then right/, sorted ids


def test_drift_equals_skimage_and_scipy_on_the_decoded_maps(store):
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    review = review_timeline(store)
    timeline = review.timeline
    pairs = default_pairs(len(ORDER))
    assert pairs == [(0, 1), (1, 2), (2, 3), (0, 3)]
    assert [(d.first, d.second) for d in review.drifts] == [(ORDER[i], ORDER[j]) for i, j in pairs]
    for (i, j), drift in zip(pairs, review.drifts):
        for n, image_id in enumerate(timeline.image_ids):
            c = int(timeline.class_index[n])
            a = _normalized(_decoded(store, image_id, ORDER[i], c), timeline.size)
            b = _normalized(_decoded(store, image_id, ORDER[j], c), timeline.size)
            assert drift.ssim[n] == pytest.approx(structural_similarity(a, b, data_range=1.0), abs=1e-6)
            rho = spearmanr(a.ravel(), b.ravel()).statistic
            assert drift.spearman[n] == pytest.approx(rho, abs=1e-6, nan_ok=True)
    first_last = review.drifts[-1]
    assert float(np.nanmin(first_last.ssim)) < 0.99  # the evidence moved while training


def test_identical_checkpoints_do_not_drift(store):
    same = review_timeline(store).drifts[2]  # alpha_final -> alpha_final_copy
    assert same.label == "alpha_final -> alpha_final_copy"
    np.testing.assert_allclose(same.ssim, 1.0, atol=1e-9)
    np.testing.assert_allclose(same.spearman, 1.0, atol=1e-9)


def test_flagged_images_have_the_lowest_first_to_last_ssim(store):
    review = review_timeline(store, share=0.25)
    drift = review.drifts[-1]
    lowest = np.argsort(drift.ssim, kind="stable")[:3]  # ceil(0.25 * 12)
    assert [m.image_id for m in review.flagged] == [review.timeline.image_ids[i] for i in lowest]
    assert [m.ssim for m in review.flagged] == sorted(m.ssim for m in review.flagged)
    below = most_moved(review.timeline, drift, threshold=float(np.median(drift.ssim)))
    assert {m.image_id for m in below} == {review.timeline.image_ids[i] for i in range(12)
                                          if drift.ssim[i] < np.median(drift.ssim)}
    counts, edges = drift.histogram("ssim", bins=10)
    assert counts.sum() == 12 and edges[0] == -1 and edges[-1] == 1
    assert review.drifts[2].quantiles()["ssim"][0.5] == pytest.approx(1.0)


def test_one_checkpoint_is_refused_with_a_sentence(store):
    with pytest.raises(TimelineError, match="at least two checkpoints"):
        load_timeline(store, models=["alpha_final"])
    with pytest.raises(TimelineError, match="no model 'nope'"):
        load_timeline(store, models=["alpha_final", "nope"])


def test_the_class_compared_is_the_true_one_else_the_last_prediction(tmp_path):
    from explainers.scale.rows import encode_raw, map_stats, table
    from explainers.scale.store import Store

    def row(image_id: str, model: str, class_index: int, rank: int, is_true) -> dict:
        raw = np.arange(16, dtype=np.float32).reshape(4, 4) + class_index
        data, scale = encode_raw(raw)
        return {"image_id": image_id, "model": model, "width": 8, "height": 8, "method": "gradcam", "layer": "l",
                "class_index": class_index, "rank": rank, "is_true": is_true, "probability": 0.5, "raw": data,
                "raw_shape": [4, 4], "raw_scale": scale, **map_stats(raw)}

    rows = [row("t.png", m, 0, 1, False) for m in "ab"] + [row("t.png", m, 1, 2, True) for m in "ab"]
    rows += [row("p.png", m, 0, 1, None) for m in "ab"]  # label unknown: the last checkpoint's prediction
    rows += [row("x.png", "a", 0, 1, None), row("x.png", "b", 1, 1, None)]  # b predicts a class a has no map of
    settings = {"models": [{"name": m, "layers": ["l"]} for m in "ab"], "methods": ["gradcam"], "targets": "top-k:2"}
    store = Store.open(tmp_path / "s", settings, "hand", "local")
    store.write({"maps": table("maps", rows), "predictions": table("predictions", [{"image_id": i, "model": m}
                 for i in ("t.png", "p.png", "x.png") for m in "ab"]), "skipped": table("skipped", [])})
    store.close("complete", {})
    auto = load_timeline(tmp_path / "s")
    assert (auto.image_ids, list(auto.class_index), auto.class_source, auto.missing) == (
        ("p.png", "t.png"), [0, 1], ("last", "true"), 1)
    assert load_timeline(tmp_path / "s", target="true").image_ids == ("t.png",)
    last = load_timeline(tmp_path / "s", target="last")
    assert (last.image_ids, list(last.class_index)) == (("p.png", "t.png"), [0, 0])
    assert auto.raw_max[1, 0] == pytest.approx(16.0)  # class 1's map: 1..16
    assert (auto.maps[0, 0].min(), auto.maps[0, 0].max()) == (0.0, 1.0)  # each map scaled by its own min..max
    with pytest.raises(TimelineError, match="Unknown target"):
        load_timeline(tmp_path / "s", target="first")
