"""Which layers a model has, what each outputs, which make a map of their own, and the default one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import nn

from .clones import borrowed_clone
from .errors import LayerError
from .models.spec import LoadedModel

_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                 nn.FeatureAlphaDropout)
_ACTIVATION_MODULES = ("torch.nn.modules.activation", "timm.layers.activations", "timm.layers.activations_me",
                       "transformers.activations")  # where the libraries keep their activation-only modules


@dataclass(frozen=True)
class LayerInfo:
    name: str  # as in model.named_modules(), e.g. "blocks.6.0"
    type: str  # class name, e.g. "Conv2d"
    output_shape: tuple[int, ...]  # (B, C, h, w) for one image; () when the output is not a tensor
    recommended: bool = False
    makes_own_map: bool = True  # False: Identity, Dropout, activation only, or a repeat of another layer's output
    same_map_as: str = ""  # the listed layer whose output this module returns as it is ("" if none)

    @property
    def spatial(self) -> bool:
        """True if a CAM can be drawn from this layer's output as it is (a 4D map)."""
        return len(self.output_shape) == 4


def _elementwise(module: nn.Module) -> bool:
    """Identity, Dropout (a no-op in eval mode) or an activation: no map of its own."""
    if isinstance(module, _PASS_THROUGH):
        return True
    return type(module).__module__ in _ACTIVATION_MODULES and not isinstance(module, nn.MultiheadAttention)


def list_layers(model: LoadedModel) -> list[LayerInfo]:
    """Every named module with its output shape, from one dry forward pass of a blank image.

    A module makes no map of its own when it is an Identity, a Dropout, an activation, or a
    module without parameters of its own (a container) that returns a tensor another listed
    module made (``same_map_as`` names that one). The recommended layer always makes its own map:
    when it repeats a child (ResNet's ``layer4`` is its last block's output), the child gives way.

    Returns:
        LayerInfo in ``named_modules`` order (the root module excluded); the
        model's recommended target layer has ``recommended=True``.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    hidden: set[str] = set()
    same: dict[str, str] = {}
    maker: dict[int, tuple[str, int]] = {}  # id(tensor) -> (listed module that made it or "", its _version)
    kept: list[torch.Tensor] = []  # every tensor stays alive for the pass, so no id() is reused
    h, w = model.preprocessing.input_size
    with borrowed_clone(model.module) as clone:
        handles = []

        def recorder(name: str):
            def hook(module: nn.Module, inputs, output) -> None:
                if not isinstance(output, torch.Tensor) or name in shapes:
                    return
                shapes[name] = tuple(output.shape)
                kept.append(output)
                key, version = id(output), output._version  # in-place ops (ReLU, +=) bump the version
                made_by, made_at = maker.get(key, ("", -1))
                repeat = bool(made_by) and made_at == version  # the very values another module output
                own_parameters = any(True for _ in module.parameters(recurse=False))
                if _elementwise(module) or any(output is x for x in inputs):
                    hidden.add(name)
                    if not repeat:
                        maker[key] = ("", version)
                elif not (repeat and not own_parameters):
                    maker[key] = (name, version)
                    return
                hidden.add(name)
                if repeat:
                    same[name] = made_by
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
    _recommended_first(model.target_layer, hidden, same)
    return [LayerInfo(name, type(module).__name__, shapes.get(name, ()), name == model.target_layer,
                      makes_own_map=name in shapes and name not in hidden, same_map_as=same.get(name, ""))
            for name, module in model.module.named_modules() if name]


def _recommended_first(target: str, hidden: set[str], same: dict[str, str]) -> None:
    """The recommended layer is always listed; the layer it repeats then points to it instead."""
    if target not in hidden:
        return
    hidden.discard(target)
    child = same.pop(target, "")
    if child:
        hidden.add(child)
        for name, original in list(same.items()):
            if original == child:
                same[name] = target
        same[child] = target


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
