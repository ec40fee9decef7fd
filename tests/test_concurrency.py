"""Many threads on one shared model get exactly what they get alone; no hook survives any call."""
import threading

import numpy as np
import pytest
import torch

from explainers.clones import has_hooks, parameters_snapshot
from explainers.pipeline import explain

JOBS = [("cat", 281, "gradcam"), ("cat", 285, "gradcam++"), ("coffee", 967, "layercam"),
        ("coffee", 968, "hirescam"), ("astronaut", 0, "gradcam"), ("cat", 967, "xgradcam"),
        ("coffee", 281, "eigengradcam"), ("astronaut", 834, "gradcam")]


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


def test_threads_get_what_they_get_alone(lite0, cat_image, coffee_image, astronaut_image):
    images = {"cat": cat_image, "coffee": coffee_image, "astronaut": astronaut_image.resize((256, 256))}
    alone = {job: explain(lite0, images[job[0]], methods=[job[2]], classes=[job[1]]).results[0].raw
             for job in JOBS}
    for p in lite0.module.parameters():
        p.grad = None  # other tests run the library directly on this model, which fills .grad
    before = parameters_snapshot(lite0.module)
    failures: list[str] = []

    def worker(offset: int) -> None:
        for i in range(20):
            job = JOBS[(offset + i) % len(JOBS)]
            raw = explain(lite0, images[job[0]], methods=[job[2]], classes=[job[1]]).results[0].raw
            if not np.array_equal(raw, alone[job]):
                failures.append(f"{job}: max diff {np.abs(raw - alone[job]).max()}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert hook_count(lite0.module) == 0 and not has_hooks(lite0.module)
    after = parameters_snapshot(lite0.module)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in lite0.module.parameters())
    assert not lite0.module.training


def test_no_hook_after_a_failing_call(lite0, cat_image):
    from explainers import ExplainerError

    with pytest.raises(ExplainerError, match="out of range"):
        explain(lite0, cat_image, methods=["gradcam"], classes=[5000])
    with pytest.raises(ExplainerError, match="pick a convolutional layer"):
        explain(lite0, cat_image, methods=["gradcam"], layers=["global_pool"])  # (1, 1280): not a map
    assert hook_count(lite0.module) == 0
    from explainers import clones
    assert all(not has_hooks(c) for c in clones._POOLS[lite0.module].free_clones())


def test_failure_inside_the_forward_leaves_no_hook(lite0, cat_image, monkeypatch):
    from explainers.methods import shared_pass

    def boom(*args, **kwargs):
        raise RuntimeError("simulated out of memory")

    # The failure happens inside the model's forward, after the engine's hooks are registered.
    original = shared_pass.forward_capture

    def failing_capture(clone, x, layers, with_grads):
        clone.classifier.register_forward_pre_hook(boom)
        try:
            return original(clone, x, layers, with_grads)
        finally:
            clone.classifier._forward_pre_hooks.clear()

    monkeypatch.setattr("explainers.pipeline.forward_capture", failing_capture)
    with pytest.raises(RuntimeError, match="simulated"):
        explain(lite0, cat_image, methods=["gradcam"])
    monkeypatch.undo()
    assert hook_count(lite0.module) == 0
    from explainers import clones
    assert all(hook_count(c) == 0 for c in clones._POOLS[lite0.module].free_clones())
    assert explain(lite0, cat_image, methods=["gradcam"]).results[0].map.max() == pytest.approx(1.0)
