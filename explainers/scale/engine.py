"""``explain_batch``: maps of many images, several methods and layers, from ONE batched forward pass
and ONE layer-stopped backward pass per class slot (the first class of every image, then the second...).

Each image's results equal ``explain`` on that image alone (a test per one-pass method). On
out-of-memory the batch is halved and retried, down to one image.

Example:
    >>> out = explain_batch(model, [cat, cup], methods=["gradcam", "eigencam"], targets="top-k:2")
    >>> [(r.method, r.class_index) for r in out[0].results]
    [('gradcam', 281), ('gradcam', 285), ('eigencam', 281), ('eigencam', 285)]
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from ..batch import batch_tensor, default_batch_size, maps_from_capture
from ..clones import borrowed_clone
from ..device import plain_out_of_memory
from ..heads import probabilities
from ..errors import ImageError, MethodError, OutOfMemory, TargetError
from ..pipeline import _predictions
from ..layers import resolve_layers
from ..methods.catalog import MethodSpec, resolve_method
from ..methods.layer_split import split_at
from ..methods.shared_pass import ForwardCapture, forward_capture
from ..models.spec import LoadedModel
from ..results import Explanation
from ..targets import check_index

RULE_NAMES = ("predicted", "true", "both", "top-k:K")


@dataclass(frozen=True)
class TargetRule:
    """Which classes to explain per image: the predicted one, the true one, both, or the top k."""

    kind: str  # "predicted" | "true" | "both" | "top-k"
    k: int = 1

    @classmethod
    def parse(cls, text: Union[str, "TargetRule"]) -> "TargetRule":
        if isinstance(text, TargetRule):
            return text
        value = str(text).strip().lower()
        if value in ("predicted", "true", "both"):
            return cls(value)
        match = re.fullmatch(r"top-?k:(\d+)", value)
        if match and int(match.group(1)) >= 1:
            return cls("top-k", int(match.group(1)))
        raise TargetError(f"Unknown targets {text!r}: use one of {', '.join(RULE_NAMES)} (K a whole number >= 1).")

    def __str__(self) -> str:
        return f"top-k:{self.k}" if self.kind == "top-k" else self.kind

    def classes(self, logits: torch.Tensor, label: Optional[int]) -> list[int]:
        """The classes for one image from its (K,) logits and its true class (None when unknown)."""
        order = torch.argsort(logits, descending=True)  # as build_targets orders top-k
        if self.kind == "top-k":
            return [int(i) for i in order[: min(self.k, logits.numel())]]
        picked = [int(order[0])] if self.kind in ("predicted", "both") else []
        if self.kind in ("true", "both") and label is not None:
            picked.append(int(label))
        return list(dict.fromkeys(picked))


@dataclass(frozen=True)
class BatchExplanation(Explanation):
    """An Explanation plus every class's probability (for ranks and true-class probabilities)."""

    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (K,)

    def rank(self, index: int) -> int:
        """1 for the best-scoring class."""
        return 1 + int((self.probabilities > self.probabilities[index]).sum())


Targets = Union[str, TargetRule, Sequence[Sequence[int]]]


def explain_batch(model: LoadedModel, images: Sequence[Image.Image], methods: Sequence[str] = ("gradcam",),
                  targets: Targets = "predicted", labels: Optional[Sequence[Optional[int]]] = None,
                  layers: Optional[Sequence[str]] = None, batch_size: Optional[int] = None,
                  on_batch_size: Optional[Callable[[int], None]] = None) -> list[BatchExplanation]:
    """Explain many images with one-pass methods, ``batch_size`` images per shared pass.

    Args:
        model: from ``load_model``.
        images: PIL images (any sizes).
        methods: one-pass method keys (Grad-CAM, HiResCAM, EigenCAM, ...; see ``list_methods``).
        targets: "predicted", "true", "both", "top-k:K", or per image an explicit list of classes.
        labels: per image its true class (None when unknown); needed by "true" and "both".
        layers: module names (default: the model's recommended layer).
        batch_size: images per pass (default: 8 on a CPU, 64 on a GPU); halved on out-of-memory.
        on_batch_size: told the new batch size whenever it is halved.
    Returns:
        One BatchExplanation per image, its results ordered as ``explain`` orders them (method, class, layer).
    Raises:
        MethodError: a method that needs more than one pass; OutOfMemory: even one image does not fit.
    """
    specs = _one_pass_specs(methods)
    layer_names = resolve_layers(model, layers)
    size = default_batch_size(model) if batch_size is None else batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise MethodError(f"batch_size must be a positive whole number, not {size!r}.")
    for image in images:
        if not isinstance(image, Image.Image):
            raise ImageError(f"Expected PIL images, got {type(image).__name__}.")
    labels = list(labels) if labels is not None else [None] * len(images)
    if len(labels) != len(images):
        raise TargetError(f"Got {len(images)} images but {len(labels)} labels; give one label (or None) per image.")
    labels = [None if c is None else check_index(c, model.num_classes) for c in labels]
    if isinstance(targets, (str, TargetRule)):
        rule = TargetRule.parse(targets)
        pick = lambda logits, i: rule.classes(logits, labels[i])  # noqa: E731
    else:
        chosen = [list(dict.fromkeys(check_index(c, model.num_classes) for c in cs)) for cs in targets]
        if len(chosen) != len(images):
            raise TargetError(f"Got {len(images)} images but {len(chosen)} lists of classes; give one per image.")
        pick = lambda logits, i: chosen[i]  # noqa: E731

    out: list[BatchExplanation] = []
    start = 0
    while start < len(images):
        chunk = range(start, min(start + size, len(images)))
        try:
            out.extend(_explain_chunk(model, [images[i] for i in chunk], list(chunk), specs, layer_names, pick))
        except OutOfMemory:
            if size == 1:
                raise
            size = max(1, size // 2)  # what failed is undone (the graph is freed); retry the same images
            if on_batch_size is not None:
                on_batch_size(size)
            continue
        start = chunk.stop
    return out


def _one_pass_specs(methods: Sequence[str]) -> list[MethodSpec]:
    if isinstance(methods, str):
        methods = [methods]
    specs = list({s.key: s for s in (resolve_method(m) for m in methods)}.values())
    if not specs:
        raise MethodError("No method was chosen: pick at least one.")
    slow = [s.display_name for s in specs if s.kind != "shared"]
    if slow:
        raise MethodError(f"{', '.join(slow)} need more than one pass per image and do not batch; "
                          "use one-pass methods (see `python -m explainers methods`).")
    return specs


def _explain_chunk(model: LoadedModel, images: list[Image.Image], indices: list[int], specs: list[MethodSpec],
                   layers: list[str], pick: Callable[[torch.Tensor, int], list[int]]) -> list[BatchExplanation]:
    started = time.perf_counter()
    with plain_out_of_memory(model.device, "this batch of images"):
        x = batch_tensor(model, images)  # (B, 3, H, W)
        capture = capture_batch(model, x, layers, any(s.uses_gradients for s in specs))
        logits = capture.logits.detach()
        wanted = [pick(logits[b], i) for b, i in enumerate(indices)]
        results = maps_from_capture(model, capture, layers, specs, wanted, images)
        del capture  # frees the graph before the next chunk
    seconds = (time.perf_counter() - started) / len(images)
    probs = probabilities(logits, model.head).cpu().numpy()  # sigmoid per label for a multi-label head
    return [BatchExplanation(model=model.name, image_size=image.size, input_size=tuple(x.shape[-2:]),
                             predictions=_predictions(model, logits[b:b + 1]), results=results[b],
                             timings={"batch (per image)": seconds}, head=model.head,
                             fit=model.preprocessing.fit, probabilities=probs[b])
            for b, image in enumerate(images)]


def capture_batch(model: LoadedModel, x: torch.Tensor, layers: list[str], with_grads: bool) -> ForwardCapture:
    """The batch's logits and layer outputs (graph from the first layer on when ``with_grads``):
    through the model cut at its first layer (frozen below it) when it splits, else eagerly on a clone."""
    split = split_at(model.module, layers, x)
    if split is not None:
        return split.capture(x, with_grads)
    with borrowed_clone(model.module) as clone:
        return forward_capture(clone, x, layers, with_grads)
