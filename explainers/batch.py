"""Maps for many images at once: one batched forward and one layer-stopped backward per class slot.

``explain`` handles one image; a dataset needs maps for hundreds (say the true and the
predicted class of every misclassified image). The one-pass methods batch: images
are independent in eval mode, so the gradient of the SUM of each image's own target
score gives every image its own gradient in one backward pass.

Example:
    >>> maps = explain_batch(model, [cat, cup], [[281, 285], [967, 968]])
    >>> maps[0][1].class_index, maps[0][1].map.shape
    (285, (300, 451))
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .clones import borrowed_clone
from .device import plain_out_of_memory
from .errors import ImageError, MethodError, TargetError
from .pipeline import ResultMaker, explain
from .layers import resolve_layers
from .methods.catalog import MethodSpec, resolve_method
from .methods.inference_copy import accepts_channels_last
from .methods.shared_pass import ClassAgnosticMaps, ForwardCapture, forward_capture, shared_cam, to_numpy_map
from .models.spec import LoadedModel
from .results import CamResult
from .targets import ClassTarget, check_index

Progress = Optional[Callable[[float, str], None]]


def default_batch_size(model: LoadedModel) -> int:
    """Images per forward pass: a CPU is fastest per image with small batches (they stay in its caches;
    measured on EfficientNet-Lite0), a GPU with large ones."""
    return 8 if model.device.type == "cpu" else 64


def explain_batch(model: LoadedModel, images: Sequence[Image.Image], classes: Sequence[Sequence[int]],
                  method: str = "gradcam", layer: str | None = None, batch_size: int | None = None,
                  progress: Progress = None) -> list[list[CamResult]]:
    """One method's maps of several classes for each of many images.

    Args:
        model: from ``load_model``.
        images: PIL images (any sizes).
        classes: for each image, the class indices to explain (duplicates count once).
        method: a method key; one-pass methods run batched, slow ones image by image.
        layer: module name (default: the model's recommended layer).
        batch_size: images per forward pass (default: ``default_batch_size``).
        progress: called with (fraction done, "n of N images").
    Returns:
        For each image, one CamResult per distinct class, in the order given; each map on its image's grid.
    """
    batch_size = default_batch_size(model) if batch_size is None else batch_size
    if len(images) != len(classes):
        raise TargetError(f"Got {len(images)} images but {len(classes)} lists of classes; give one list per image.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise MethodError(f"batch_size must be a positive whole number, not {batch_size!r}.")
    spec = resolve_method(method)
    (layer_name,) = resolve_layers(model, [layer] if layer else None)
    wanted = [list(dict.fromkeys(check_index(c, model.num_classes) for c in cs)) for cs in classes]
    for image in images:
        if not isinstance(image, Image.Image):
            raise ImageError(f"Expected PIL images, got {type(image).__name__}.")
    out: list[list[CamResult]] = []
    total = len(images)
    for start in range(0, total, batch_size):
        chunk = range(start, min(start + batch_size, total))
        if spec.kind == "shared":
            batch = [images[i] for i in chunk]
            with plain_out_of_memory(model.device, "this batch of images"), borrowed_clone(model.module) as clone:
                capture = forward_capture(clone, batch_tensor(model, batch), [layer_name], spec.uses_gradients)
                out.extend(cams_from_capture(model, capture, layer_name, spec, [wanted[i] for i in chunk], batch))
        else:  # slow methods batch their own masked passes inside explain()
            out.extend(explain(model, images[i], methods=[spec.key], classes=wanted[i], layers=[layer_name],
                               batch_size=batch_size).results if wanted[i] else [] for i in chunk)
        if progress is not None:
            progress(chunk.stop / total, f"{chunk.stop} of {total} images")
    return out


def batch_tensor(model: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    """(B, 3, H, W) input on the model's device, channels-last: on CPU, batched convolutions run
    about 1.5x faster in that layout (the convolutions propagate it; the weights are not touched).
    Contiguous for a model whose forward cannot take that layout (``accepts_channels_last``)."""
    x = torch.cat([model.preprocessing.to_tensor(im) for im in images]).to(model.device)
    return x.contiguous(memory_format=torch.channels_last) if accepts_channels_last(model.module, x) else x


def cams_from_capture(model: LoadedModel, capture: ForwardCapture, layer: str, spec: MethodSpec,
                      wanted: list[list[int]], images: Sequence[Image.Image]) -> list[list[CamResult]]:
    """The maps of a batch already run through ``forward_capture`` (with gradients from ``layer`` on
    when the method uses them): one layer-stopped backward per class slot, shared by the batch.

    Args:
        wanted: per image, distinct class indices ([] for none).
        images: the batch's images, for each map's grid size.
    Returns:
        Per image, one CamResult per wanted class.
    """
    return maps_from_capture(model, capture, [layer], [spec], wanted, images)


def maps_from_capture(model: LoadedModel, capture: ForwardCapture, layers: Sequence[str],
                      specs: Sequence[MethodSpec], wanted: list[list[int]],
                      images: Sequence[Image.Image]) -> list[list[CamResult]]:
    """Several one-pass methods at several layers from one captured batch: ONE backward per class
    slot (the gradients of every layer at once), shared by every method and image.

    Returns:
        Per image, its CamResults ordered as ``explain`` orders them: method, then class, then layer.
    """
    started = time.perf_counter()
    reshape = model.reshape_transform
    slots = max((len(w) for w in wanted), default=0)
    if slots == 0:
        return [[] for _ in wanted]
    acts = {n: to_numpy_map(capture.outputs[n], reshape) for n in layers}  # each (B, C, h, w)
    logits = capture.logits
    grads: dict[tuple[int, str], np.ndarray] = {}  # (slot, layer) -> (B_slot, C, h, w)
    if any(s.uses_gradients for s in specs):
        for slot in range(slots):
            rows = [b for b, w in enumerate(wanted) if len(w) > slot]
            picked = torch.tensor([wanted[b][slot] for b in rows], device=logits.device)
            score = logits[rows, picked].sum()  # each image's gradient comes from its own score only
            tensors = [capture.outputs[n] for n in layers]
            found = torch.autograd.grad(score, tensors, retain_graph=slot < slots - 1, allow_unused=True)
            for n, g, t in zip(layers, found, tensors):
                full = torch.zeros_like(t) if g is None else g
                grads[(slot, n)] = to_numpy_map(full, reshape)
    raws: list[list[tuple]] = [[] for _ in wanted]
    agnostic = [ClassAgnosticMaps() for _ in wanted]
    for spec in specs:
        for slot in range(slots):
            for b, w in enumerate(wanted):
                if len(w) <= slot:
                    continue
                target = ClassTarget(w[slot])
                for n in layers:
                    g = grads[(slot, n)][b:b + 1] if spec.uses_gradients else None
                    raw = agnostic[b].get(spec, n, lambda: shared_cam(spec.library_class, acts[n][b:b + 1], g, [target]))
                    raws[b].append((spec, n, target, raw))
    logits = logits.detach()
    seconds = (time.perf_counter() - started) / max(sum(len(r) for r in raws), 1)
    results = []
    for b, image in enumerate(images):
        make = ResultMaker(model, logits[b:b + 1], image.width, image.height)
        results.append([make(spec, n, target, raw, seconds) for spec, n, target, raw in raws[b]])
    return results
