"""Which layers a model has, what each outputs, and which one to explain by default."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import nn

from .clones import borrowed_clone
from .errors import LayerError
from .models.spec import LoadedModel


@dataclass(frozen=True)
class LayerInfo:
    name: str  # as in model.named_modules(), e.g. "blocks.6.0"
    type: str  # class name, e.g. "Conv2d"
    output_shape: tuple[int, ...]  # (B, C, h, w) for one image; () when the output is not a tensor
    recommended: bool = False

    @property
    def spatial(self) -> bool:
        """True if a CAM can be drawn from this layer's output as it is (a 4D map)."""
        return len(self.output_shape) == 4


def list_layers(model: LoadedModel) -> list[LayerInfo]:
    """Every named module with its output shape, from one dry forward pass of a blank image.

    Returns:
        LayerInfo in ``named_modules`` order (the root module excluded); the
        model's recommended target layer has ``recommended=True``.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    h, w = model.preprocessing.input_size
    with borrowed_clone(model.module) as clone:
        handles = []

        def recorder(name: str):
            def hook(_module: nn.Module, _inputs, output) -> None:
                if isinstance(output, torch.Tensor) and name not in shapes:
                    shapes[name] = tuple(output.shape)
            return hook

        try:
            for name, module in clone.named_modules():
                if name:
                    handles.append(module.register_forward_hook(recorder(name)))
            with torch.no_grad():
                clone(torch.zeros(1, 3, h, w, device=model.device))
        finally:
            for handle in handles:
                handle.remove()
    return [LayerInfo(name, type(module).__name__, shapes.get(name, ()), name == model.target_layer)
            for name, module in model.module.named_modules() if name]


def resolve_layers(model: Union[LoadedModel, nn.Module], names: Sequence[str] | None,
                   default: str | None = None) -> list[str]:
    """Check layer names against the model; None means the recommended layer."""
    module = model.module if isinstance(model, LoadedModel) else model
    if not names:
        names = [default or (model.target_layer if isinstance(model, LoadedModel) else "")]
    known = dict(module.named_modules())
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name or name not in known:
            close = [k for k in known if k and isinstance(name, str) and name and name in k][:5]
            hint = f" Did you mean: {', '.join(close)}?" if close else " List them with `python -m explainers layers`."
            raise LayerError(f"The model has no layer named {name!r}.{hint}")
        if name not in out:
            out.append(name)
    return out
