"""A model cut after its earliest target layer: the part below runs frozen and without autograd, the part above eager.

Methods that feed many copies of the input through the model and want only the LAYERS' gradients (Smooth
Grad-CAM++) need no graph below the earliest layer. torch.fx traces the model (torchvision's
``create_feature_extractor``), the graph is cut after that layer's node, and the lower part is frozen like
``inference_copy`` (TorchScript, BatchNorm folded into the convolutions, oneDNN kernels): on EfficientNet-Lite0
a pass below ``bn2`` costs about a third of the eager one. Values below the cut that the upper part also reads
(skip connections) cross it as inputs. A model fx cannot trace, or whose split outputs differ from the eager
ones beyond float rounding, gets ``None`` and the caller keeps its eager path.
"""
from __future__ import annotations

import threading
import warnings
import weakref
from typing import Optional, Sequence

import torch
from torch import nn

from ..clones import shell_clone
from .shared_pass import ForwardCapture, forward_capture

_SPLITS: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, Optional[SplitModel]]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
_KEPT_PER_MODEL = 4  # layer choices kept per model
LOGITS = "__logits__"  # the key of the logits among the outputs


class SplitModel:
    """``outputs(x)``: {layer: output, "__logits__": (B, K)}, with autograd only from the first layer on."""

    def __init__(self, lower: nn.Module, upper: nn.Module) -> None:
        self.lower, self.upper = lower, upper

    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.upper(*self.lower(x))


class _Lower(nn.Module):
    """The frozen part below the cut, run without autograd; its outputs become the leaves the backward stops at."""

    def __init__(self, frozen: nn.Module) -> None:
        super().__init__()
        self.frozen = frozen

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            out = self.frozen(x)
        return tuple(t.detach().requires_grad_(True) for t in (out if isinstance(out, tuple) else (out,)))


class _Upper(nn.Module):
    """The part above the cut, with autograd; its inputs are cloned so in-place operations never touch the leaves."""

    def __init__(self, part: nn.Module, crossing_outputs: dict[str, int]) -> None:
        super().__init__()
        self.part, self.crossing_outputs = part, crossing_outputs  # output name -> its input (cut) position

    def forward(self, *leaves: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.enable_grad():
            kept = [t.clone() for t in leaves]  # what a layer output at the cut returns, untouched by the graph
            out = self.part(*(t.clone() for t in kept))
        return {k: kept[self.crossing_outputs[k]] if k in self.crossing_outputs else v for k, v in out.items()}


def split_capture(split: SplitModel, x: torch.Tensor, layers: Sequence[str]) -> ForwardCapture:
    """What ``forward_capture(..., with_grads=True)`` gives, from the split model."""
    outputs = split.outputs(x)
    return ForwardCapture(outputs[LOGITS], {n: outputs[n] for n in layers}, True)


def split_model(model: nn.Module, example: torch.Tensor, layers: Sequence[str]) -> Optional[SplitModel]:
    """The split copy of ``model`` for inputs shaped like ``example`` (any batch size), cut after the earliest
    of ``layers``; ``None`` when the model cannot be traced and split."""
    key = (tuple(layers), tuple(example.shape[1:]), str(example.device), example.dtype)
    with _LOCK:
        splits = _SPLITS.setdefault(model, {})
        if key not in splits:
            if len(splits) >= _KEPT_PER_MODEL:  # each holds a folded copy of the weights: drop the oldest
                splits.pop(next(iter(splits)))
            splits[key] = _build(model, example, list(layers))
        return splits[key]


def _build(model: nn.Module, example: torch.Tensor, layers: list[str]) -> Optional[SplitModel]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fx's and TorchScript's tracer warnings
            return _split(model, example, layers)
    except Exception:  # untraceable (data-dependent control flow, odd outputs): the caller keeps its eager path
        return None


def _split(model: nn.Module, example: torch.Tensor, layers: list[str]) -> Optional[SplitModel]:
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    clone = shell_clone(model).eval()
    last = get_graph_node_names(clone)[1][-1]
    graph = create_feature_extractor(clone, {**{n: n for n in layers}, last: LOGITS})
    nodes = [n for n in graph.graph.nodes if n.op != "output"]
    (returned,) = [n for n in graph.graph.nodes if n.op == "output"][0].args  # {name: node}
    cut = min(nodes.index(returned[n]) for n in layers)  # after the earliest layer: all others are above it
    below, above = nodes[:cut + 1], nodes[cut + 1:]
    later = set(above) | set(returned.values())
    crossing = [n for n in below if n.op != "get_attr" and (any(u in later for u in n.users) or n in later)]
    lower = _graph_module(graph, [], below, lambda get: tuple(get(n) for n in crossing))
    upper = _graph_module(graph, crossing, above, lambda get: {k: get(v) for k, v in returned.items()})
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(lower, (example,), check_trace=False).eval())
        split = SplitModel(_Lower(torch.jit.optimize_for_inference(frozen)),
                           _Upper(upper, {k: crossing.index(v) for k, v in returned.items() if v in crossing}))
    eager = forward_capture(clone, example, layers, with_grads=True)  # the hooks' outputs: before in-place ops
    expected = {LOGITS: eager.logits, **eager.outputs}
    got = split.outputs(example)
    scale = float(eager.logits.abs().max()) or 1.0
    same = set(got) == set(expected) and all(float((got[k] - v).detach().abs().max()) <= 1e-4 * scale
                                              for k, v in expected.items())
    return split if same else None


def _graph_module(root: nn.Module, inputs: list, nodes: list, outputs) -> torch.fx.GraphModule:
    """A graph of ``nodes`` (copied from ``root``'s graph) reading ``inputs`` as placeholders; attribute
    reads it needs from elsewhere are copied in; ``outputs(get)`` builds the returned value."""
    graph, env = torch.fx.Graph(), {}
    for node in inputs:
        env[node] = graph.placeholder(node.name)

    def get(node):
        if node not in env:  # an attribute read (parameters, buffers) defined on the other side of the cut
            env[node] = graph.node_copy(node, get)
        return env[node]

    for node in nodes:
        if node.op != "get_attr":
            env[node] = graph.node_copy(node, get)
    graph.output(outputs(get))
    return torch.fx.GraphModule(root, graph)
