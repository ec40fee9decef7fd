"""Token layouts found from the model itself: no per-model reshape code.

A vision transformer's blocks output tokens (B, L, C): some prefix tokens (class,
distillation, register tokens) then the patches of an h x w grid, row by row.
Swin-like blocks in timm output channels-last maps (B, H, W, C). CAM methods want
(B, C, h, w). ``TokenLayout`` turns any of these into (B, C, h, w), knowing only:
  - the patch grid: the output size of the model's first Conv2d (the patch embedding
    or the stem) at the model's input size; hierarchical stages halve it (Swin, ConvNeXt);
  - the number of prefix tokens: the sizes of the model's class / distillation /
    register token parameters (timm's ``num_prefix_tokens`` when it says so).
``inspect_model`` runs one forward and backward pass on a noise image to list the
layers whose output maps onto the grid and to pick the recommended layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

_PREFIX_PARAMETERS = ("cls_token", "distillation_token", "dist_token", "register_tokens", "reg_token",
                      "class_token")
_MAX_HALVINGS = 6  # hierarchical models halve the grid at most this many times


@dataclass(frozen=True)
class TokenLayout:
    """How a layer output maps onto the patch grid; callable as a pytorch-grad-cam reshape transform."""

    grid: tuple[int, int]  # (h, w) patch grid at the model's input size
    prefix_tokens: int = 0  # class / distillation / register tokens before the patches

    def grids(self) -> list[tuple[int, int]]:
        """The patch grid and its halvings (the stages of hierarchical models), finest first."""
        h, w = self.grid
        out = []
        for _ in range(_MAX_HALVINGS + 1):
            if h < 1 or w < 1:
                break
            out.append((h, w))
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        return out

    def kind(self, shape: tuple[int, ...]) -> Optional[str]:
        """"map" (B, C, h, w), "channels_last" (B, H, W, C), "tokens" (B, L, C), or None (no grid)."""
        grids = self.grids()
        if len(shape) == 4:
            if tuple(shape[2:]) in grids:
                return "map"
            if tuple(shape[1:3]) in grids:
                return "channels_last"
            gh, gw = self.grid  # other strides (floor-rounded pooling): a map no larger than the grid
            return "map" if 1 < shape[2] * shape[3] and shape[2] <= gh and shape[3] <= gw else None
        if len(shape) == 3:
            return "tokens" if self._token_grid(shape[1]) is not None else None
        return None

    def _token_grid(self, length: int) -> Optional[tuple[int, int, int]]:
        """(prefix, h, w) for L tokens: the finest grid whose size plus the prefix is L."""
        for h, w in self.grids():
            if length == self.prefix_tokens + h * w:
                return self.prefix_tokens, h, w
        return None

    def map_shape(self, shape: tuple[int, ...]) -> Optional[tuple[int, int]]:
        """(h, w) of the map a layer output of this shape becomes, or None."""
        kind = self.kind(shape)
        if kind == "map":
            return int(shape[2]), int(shape[3])
        if kind == "channels_last":
            return int(shape[1]), int(shape[2])
        if kind == "tokens":
            _, h, w = self._token_grid(shape[1])  # type: ignore[misc]
            return h, w
        return None

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        kind = self.kind(tuple(tensor.shape))
        if kind == "channels_last":
            return tensor.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        if kind == "tokens":
            prefix, h, w = self._token_grid(tensor.shape[1])  # type: ignore[misc]
            patches = tensor[:, prefix:, :]  # (B, h*w, C), row-major as the patch embedding flattens
            return patches.reshape(tensor.shape[0], h, w, tensor.shape[2]).permute(0, 3, 1, 2)
        return tensor  # (B, C, h, w) already, or not a map (the engine says so)


def count_prefix_tokens(module: nn.Module) -> int:
    """Class, distillation and register tokens, counted from the model's own parameters."""
    for sub in module.modules():
        value = getattr(sub, "num_prefix_tokens", None)  # timm states it
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    count = 0
    for name, param in module.named_parameters():
        if name.rsplit(".", 1)[-1] in _PREFIX_PARAMETERS:
            count += int(param.shape[-2]) if param.dim() >= 2 else 1  # (1, n, C) or (C,)
    return count


def patch_grid(module: nn.Module, input_size: tuple[int, int]) -> Optional[tuple[int, int]]:
    """The output size of the first Conv2d (patch embedding or stem) at ``input_size``."""
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return None
    sizes = []
    for axis, size in enumerate(input_size):
        pad = conv.padding[axis] if isinstance(conv.padding, tuple) else 0
        sizes.append((size + 2 * pad - conv.dilation[axis] * (conv.kernel_size[axis] - 1) - 1)
                     // conv.stride[axis] + 1)
    return sizes[0], sizes[1]


def token_layout(module: nn.Module, input_size: tuple[int, int]) -> Optional[TokenLayout]:
    """The model's token layout, or None when it has no convolution to find the grid from."""
    grid = patch_grid(module, input_size)
    return None if grid is None else TokenLayout(grid, count_prefix_tokens(module))


@dataclass(frozen=True)
class ModelInspection:
    """What one forward and backward pass on noise says about a model."""

    layout: Optional[TokenLayout]
    target_layer: Optional[str]  # recommended: the last layer with a spatially varying gradient
    grids: dict[str, tuple[int, int]]  # layer -> (h, w) of its map, for every layer that maps onto the grid
    token_model: bool  # some layer outputs tokens or channels-last maps


def _is_norm(module: nn.Module) -> bool:
    return "norm" in type(module).__name__.lower()


def inspect_model(module: nn.Module, input_size: tuple[int, int], device: torch.device | str = "cpu"
                  ) -> ModelInspection:
    """Find the layout, each layer's grid and the recommended layer.

    The recommended layer is the last layer (in the order layers finish) whose map gets a
    gradient from the top class at two or more grid positions: a CNN's last stage, a ViT's
    last block's first norm (after it, only the class token reaches the head), a Swin's
    final norm. Token outputs count only at normalization layers, as pytorch-grad-cam
    recommends (``blocks[-1].norm1``), not at the attention's inner projections.
    """
    layout = token_layout(module, input_size)
    module.eval()
    outputs: list[tuple[str, torch.Tensor, bool]] = []  # (layer, output, may be recommended)
    handles = []

    def recorder(name: str, sub: nn.Module):
        def hook(_m, _inputs, output):
            if isinstance(output, torch.Tensor) and output.requires_grad and layout is not None:
                kind = layout.kind(tuple(output.shape))
                if kind is not None:
                    outputs.append((name, output, kind == "map" or _is_norm(sub)))
        return hook

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, *input_size, generator=generator).to(device)
    try:
        for name, sub in module.named_modules():
            if name:
                handles.append(sub.register_forward_hook(recorder(name, sub)))
        with torch.enable_grad():
            logits = module(x.requires_grad_(True))
            grads = torch.autograd.grad(logits[0].max(), [t for _, t, _ in outputs], allow_unused=True
                                        ) if outputs else []
    finally:
        for handle in handles:
            handle.remove()
    grids: dict[str, tuple[int, int]] = {}
    chosen, token_model = None, False
    for (name, tensor, candidate), grad in zip(outputs, grads):
        shape = tuple(tensor.shape)
        grids.setdefault(name, layout.map_shape(shape))  # type: ignore[union-attr, arg-type]
        token_model = token_model or layout.kind(shape) != "map"  # type: ignore[union-attr]
        if grad is None or not candidate:
            continue
        per_position = layout(grad.detach()).abs().sum(dim=1)[0]  # (h, w)
        if int((per_position > 0).sum()) >= 2:
            chosen = name
    return ModelInspection(layout, chosen, grids, token_model)


def inspect_into(model) -> ModelInspection:
    """Inspect a LoadedModel and keep the layout, grids and recommended layer in ``model.extra``."""
    from ..errors import ModelError

    inspection = inspect_model(model.module, model.preprocessing.input_size, model.device)
    if inspection.layout is not None:
        model.extra["layout"] = inspection.layout
    model.extra["grids"] = inspection.grids
    model.extra["token_model"] = inspection.token_model
    if not model.spec.target_layer:
        if inspection.target_layer is None:
            raise ModelError(f"Model {model.name!r}: no layer maps onto the image grid; give a target_layer.")
        model.extra["target_layer"] = inspection.target_layer
    return inspection
