"""Load and faults: memory over many explanations in a row, and a failure in one session."""
from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
import torch

from explainers.clones import has_hooks
from explainers.pipeline import explain


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line")


def pool_clones(model) -> list[torch.nn.Module]:
    from explainers import clones

    pool = clones._POOLS.get(model.module)
    return pool.free_clones() if pool is not None else []


pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads memory from /proc (Linux)")


def test_200_explanations_in_a_row_keep_memory_flat(lite0, cat_image, coffee_image):
    # Small photos keep 200 calls near a minute on 2 busy cores; the model still runs at 224 x 224.
    images = [cat_image.resize((96, 64)), coffee_image.resize((64, 96))]
    jobs = [(images[i % 2], ("gradcam", "layercam")[i % 3 == 0], (281, 967, 285, 968)[i % 4]) for i in range(200)]
    for image, method, index in jobs[:20]:  # warm-up: allocator pools, clone pool, lazy imports
        explain(lite0, image, methods=[method], classes=[index])
    gc.collect()
    cuda = lite0.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        cuda_before = torch.cuda.memory_allocated(lite0.device)
    before = rss_bytes()
    first = {}
    for image, method, index in jobs:
        raw = explain(lite0, image, methods=[method], classes=[index]).results[0].raw
        first.setdefault((id(image), method, index), raw)
        np.testing.assert_array_equal(raw, first[(id(image), method, index)])  # same call, same map
    gc.collect()
    after = rss_bytes()
    assert after < before * 1.05, f"resident memory grew {100 * (after / before - 1):.1f}% over 200 calls"
    if cuda:
        torch.cuda.synchronize()
        assert torch.cuda.memory_allocated(lite0.device) == cuda_before
    assert not has_hooks(lite0.module) and not any(has_hooks(c) for c in pool_clones(lite0))


# --- a failure in one session ------------------------------------------------------------------------

OUT_OF_MEMORY = ("The computer ran out of memory for this explanation. Try fewer methods or layers, a smaller "
                 "image or batch, or a smaller model; nothing else was affected.")


def test_out_of_memory_in_the_engine_is_a_plain_error_and_frees_the_clone(monkeypatch, lite0, cat_image):
    import explainers.pipeline as engine
    from explainers.errors import OutOfMemory

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(engine, "ResultMaker", out_of_memory)
    with pytest.raises(OutOfMemory) as caught:
        explain(lite0, cat_image, methods=["gradcam"])
    assert str(caught.value) == OUT_OF_MEMORY
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)  # kept for the server log
    monkeypatch.undo()
    assert not has_hooks(lite0.module) and not any(has_hooks(c) for c in pool_clones(lite0))
    assert explain(lite0, cat_image, methods=["gradcam"]).results[0].class_index == 285  # works again


def test_an_out_of_memory_error_in_one_session_spares_the_others(monkeypatch, lite0):
    pytest.importorskip("streamlit")
    import explainers.pipeline as engine
    from tests.test_app import assert_clean, new_app, panel_captions
    from ui import loaders, state

    loaders._cam.clear()  # maps cached by earlier tests would hide the failure
    original = engine.ResultMaker
    failing_width = 640  # the retina photo (640 x 640); the cat is 451 x 300

    def out_of_memory_for_the_retina(model, logits, width, height):  # runs inside the borrowed clone
        if width == failing_width:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return original(model, logits, width, height)

    monkeypatch.setattr(engine, "ResultMaker", out_of_memory_for_the_retina)
    victim, other = new_app(), new_app()
    victim.session_state[state.GALLERY_CHOICE] = "Retina"
    victim.run()
    assert not victim.exception
    assert [e.value for e in victim.error] == [OUT_OF_MEMORY]  # a plain message, no traceback
    assert not panel_captions(victim)
    other.run()  # meanwhile another session works, on the same shared model
    assert_clean(other)
    assert panel_captions(other)
    victim.run()  # the failure is not cached: it happens again while the fault lasts
    assert [e.value for e in victim.error] == [OUT_OF_MEMORY]
    monkeypatch.setattr(engine, "ResultMaker", original)
    victim.run()  # nothing stayed locked or broken: the same session recovers
    assert_clean(victim)
    assert panel_captions(victim)
    model = loaders.get_model(state.DEFAULT_MODEL)
    assert not has_hooks(model.module) and not any(has_hooks(c) for c in pool_clones(model))

