"""A model cut at its target layer: a frozen, gradient-free part below and an autograd part above.

Who needs it: the batched engine (``scale/engine.py``: per batch, the layer outputs, the logits and the
logits' gradients w.r.t. the layers) and Smooth Grad-CAM++ (``smoothing.py``: many noisy copies, the
layers' gradients only). Everything below the first layer is plain inference, so it runs through a
frozen TorchScript copy (``inference_copy.frozen_trace``: BatchNorm folded into the convolutions; on the
CPU the oneDNN Graph fuser joins convolutions with their activations, or, with ``mkldnn=True``,
MKLDNN convolutions as in ``inference_copy``), about 3x faster than the eager model on
EfficientNet-Lite0 at batch 8 on one core; only the part above the layer (for a CNN, the
pooling and classifier) runs eagerly with autograd, from the layer output as a leaf tensor.
(torch.compile would do the same but compiles for minutes on a small CPU; TorchScript is deprecated
but works.) It lives in ``methods/`` because it builds on ``shared_pass`` and ``inference_copy``, and
``scale/`` already imports ``methods/`` (never the reverse).

The cut is found with ``torch.fx`` (the requested layers are traced as leaf modules): the lower
graph holds every node the first layer depends on; the upper graph takes what it needs from the
lower one (the layer output, and any earlier value a skip connection carries past it); a captured
layer's output is cloned before later nodes read it, so in-place operations leave it as the eager
hooks see it. A model that ``torch.fx`` cannot trace, or whose cut does not reproduce the eager
logits and layer outputs on a check batch, is not split (``split_at`` returns None) and runs eagerly.

The split is built once per model, layers and input shape (the last ``KEPT_PER_MODEL`` of them are
kept: each holds a folded copy of the weights) and reads the weights then (as ``inference_copy``
does): load changed weights as a new model. Running out of memory while building raises and caches
nothing. Folding BatchNorm changes float rounding: layer outputs and logits differ from the eager
model's by about 1e-6 relative (logits by ~2e-5 on a scale of 20), far below what a heat map shows.
"""
from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import fx, nn

from ..clones import shell_clone
from .inference_copy import agrees, frozen_trace, optimized_for_inference
from .shared_pass import ForwardCapture, forward_capture

_SPLITS: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, Optional[LayerSplit]]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
KEPT_PER_MODEL = 4  # layer choices and input shapes kept per model, the most recently used


@dataclass
class LayerSplit:
    """``lower(x)`` -> the values the upper part needs (the first layer's output first);
    ``upper(*values)`` -> (logits, the other layers' outputs)."""

    lower: nn.Module
    upper: fx.GraphModule
    layers: tuple[str, ...]  # captured layers in the order the model runs them; the first one is the cut
    fuse: bool = True  # run ``lower`` under the oneDNN Graph fuser (CPU only)

    def capture(self, x: torch.Tensor, with_grads: bool) -> ForwardCapture:
        """What ``forward_capture`` returns, with the graph (when ``with_grads``) from the cut on."""
        with torch.no_grad(), _onednn_fusion(self.fuse and x.device.type == "cpu"):
            values = self.lower(x)
        values = values if isinstance(values, tuple) else (values,)
        first = values[0].detach().requires_grad_(with_grads)  # the leaf the backward stops at
        with torch.set_grad_enabled(with_grads):
            logits, *others = self.upper(first, *values[1:])
        return ForwardCapture(logits, dict(zip(self.layers, [first, *others])), with_grads)


def split_at(model: nn.Module, layers: Sequence[str], example: torch.Tensor,
             mkldnn: bool = False) -> Optional[LayerSplit]:
    """The split of ``model`` at the first of ``layers`` for inputs shaped like ``example`` (any batch
    size; cached per model, layers and input shape); None when the model cannot be split (then run it eagerly).

    Args:
        model: the shared model (never modified; the graphs are built from a clone).
        layers: module names whose outputs are captured.
        example: an input batch on the model's device.
        mkldnn: the lower part with ``optimize_for_inference``'s MKLDNN convolutions (as ``inference_copy``)
            instead of the oneDNN Graph fuser. The results agree within rounding; only the speed differs,
            measured on EfficientNet-Lite0, one core: the batched engine (cut at ``bn2``, batches of 8) is
            faster fused (bench_scale: 138 vs 109 images/s), Smooth Grad-CAM++ (cut at ``blocks.5``,
            4 noisy copies) with MKLDNN (bench_methods: 0.042 vs 0.055 s).
    Raises:
        torch.OutOfMemoryError: while building; nothing is cached, a later call tries again.
    """
    key = (tuple(layers), tuple(example.shape[1:]), str(example.device), example.dtype, mkldnn)
    with _LOCK:
        splits = _SPLITS.setdefault(model, {})
        if key in splits:
            splits[key] = splits.pop(key)  # now the most recently used
            return splits[key]
        split = _build(model, tuple(layers), example, mkldnn)
        while len(splits) >= KEPT_PER_MODEL:
            splits.pop(next(iter(splits)))  # the least recently used
        splits[key] = split
        return split


class _LayerTracer(fx.Tracer):
    """fx's tracer with the captured layers (and timm's untraceable modules) kept as single calls."""

    def __init__(self, layers: Sequence[str]) -> None:
        modules, functions = _timm_notrace()
        super().__init__(autowrap_functions=tuple(functions))
        self.layers, self.notrace = set(layers), tuple(modules)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.layers or isinstance(m, self.notrace) or super().is_leaf_module(m, qualname)


def _timm_notrace() -> tuple[list, list]:
    try:
        from timm.layers import _fx
    except ImportError:  # no timm: plain torch.fx
        return [], []
    return list(_fx.get_notrace_modules()), list(_fx.get_notrace_functions())


def _build(model: nn.Module, layers: tuple[str, ...], example: torch.Tensor, mkldnn: bool) -> Optional[LayerSplit]:
    clone = shell_clone(model)
    try:
        graph = _LayerTracer(layers).trace(clone)
    except Exception:  # data-dependent control flow and the like: fx cannot trace it, run eagerly
        return None
    nodes = {n.target: n for n in graph.nodes if n.op == "call_module" and n.target in layers}
    if len(nodes) != len(layers) or any(len(n.users) == 0 for n in nodes.values()):
        return None  # a layer called twice, or not at all: the eager hooks handle (or report) it
    order = [n for n in graph.nodes if n.op == "call_module" and n.target in layers]
    cut, others = order[0], order[1:]
    below = _ancestors(cut)
    outputs = [n for n in graph.nodes if n.op == "output"]
    if len(outputs) != 1:
        return None
    above = [n for n in graph.nodes if n not in below and n.op not in ("output",)]
    needed = [cut] + [n for n in graph.nodes if n in below and n is not cut
                      and any(u in above or u.op == "output" for u in n.users)]
    try:
        lower = fx.GraphModule(clone, _subgraph(graph, [n for n in graph.nodes if n in below], needed, []))
        upper = fx.GraphModule(clone, _subgraph(graph, above, [outputs[0].args[0], *others], needed))
        lower = _frozen(lower, example[:1], mkldnn)  # one image: building must not need a batch's memory
        split = LayerSplit(lower, upper, (cut.target, *(n.target for n in others)), fuse=not mkldnn)
        if not _reproduces(clone, split, example[:1]):
            return None
    except torch.OutOfMemoryError:
        raise  # not a property of the model: nothing is cached, the engine halves the batch and retries
    except Exception:  # a graph the cut breaks (e.g. a tuple flowing past the layer): run eagerly
        return None
    return split


def _frozen(lower: fx.GraphModule, example: torch.Tensor, mkldnn: bool) -> nn.Module:
    """``lower`` traced and frozen (BatchNorm folded), run twice: TorchScript's profiling executor
    optimizes (and on the CPU fuses) the graph on its second call."""
    frozen = frozen_trace(lower, example)
    if mkldnn:
        return optimized_for_inference(frozen)
    with torch.no_grad(), _onednn_fusion(example.device.type == "cpu"):
        for _ in range(2):
            frozen(example)
    return frozen


_FUSION_LOCK = threading.Lock()


@contextmanager
def _onednn_fusion(on: bool):
    """TorchScript's oneDNN Graph fuser, on for this block only (the switch is process-wide; it only
    decides how graphs optimized meanwhile are compiled, and their results agree within rounding)."""
    if not on:
        yield
        return
    with _FUSION_LOCK:
        previous = torch.jit.onednn_fusion_enabled()
        torch.jit.enable_onednn_fusion(True)
        try:
            yield
        finally:
            torch.jit.enable_onednn_fusion(previous)


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen, todo = {node}, [node]
    while todo:
        for parent in todo.pop().all_input_nodes:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def _subgraph(graph: fx.Graph, nodes: list[fx.Node], results: list, inputs: list[fx.Node]) -> fx.Graph:
    """A new graph of ``nodes`` whose placeholders are ``inputs`` and whose output is ``results``.
    A captured layer's value is cloned before later nodes use it: an in-place op must not change it."""
    new, env = fx.Graph(), {}
    for node in inputs:
        env[node] = new.placeholder(node.name)
    clones = {inputs[0], *(r for r in results[1:] if isinstance(r, fx.Node))} if inputs else set()
    for node in nodes:
        env[node] = new.node_copy(node, lambda n: env[n])
    kept = {n: env[n] for n in env}
    for node in clones:  # later ops read the clone; the captured value stays as it was
        value = env[node]
        with new.inserting_after(value):
            copy = new.call_method("clone", (value,))
        value.replace_all_uses_with(copy, delete_user_cb=lambda u: u is not copy)
        kept[node] = value
    new.output(fx.node.map_arg(tuple(results) if len(results) > 1 or inputs else results[0], lambda n: kept[n]))
    new.lint()
    return new


def _reproduces(model: nn.Module, split: LayerSplit, example: torch.Tensor) -> bool:
    """The split's logits and layer outputs equal the eager model's on random inputs, one more than the
    example's batch (a size the trace never saw: nothing may be fixed to the example's batch size)."""
    x = torch.randn((example.shape[0] + 1, *example.shape[1:]), generator=torch.Generator().manual_seed(0)).to(example)
    eager = forward_capture(model, x, list(split.layers), True)  # True: outputs kept from in-place ops
    with torch.no_grad():
        got = split.capture(x, False)
    return agrees(got.logits, eager.logits) and all(agrees(got.outputs[n], eager.outputs[n]) for n in split.layers)
