"""CAM (Zhou et al., CVPR 2016, arXiv:1512.04150): the classifier's weights over globally pooled channels.

Only defined when the chosen layer is followed by global average pooling and ONE linear layer;
checked numerically here (the logits must equal the linear layer applied to the pooled layer output).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import MethodError


def classifier_weights(model: nn.Module, layer: str, layer_output: torch.Tensor,
                       logits: torch.Tensor) -> torch.Tensor:
    """The (K, C) weights of the linear layer that turns the pooled ``layer`` output into the logits,
    on ``layer_output``'s device.

    Raises:
        MethodError: when the model is not "``layer`` -> global average pooling -> one linear layer".
    """
    channels = layer_output.shape[1]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)
               and m.in_features == channels and m.out_features == logits.shape[-1]]
    refusal = (f"CAM needs the layer to be followed only by global average pooling and one linear layer; "
               f"layer {layer!r} is not (use Grad-CAM: on such models it equals CAM).")
    if layer_output.dim() != 4 or not linears:
        raise MethodError(refusal)
    fc = linears[-1]
    weight = fc.weight.detach().float().to(layer_output.device)
    bias = None if fc.bias is None else fc.bias.detach().float().to(layer_output.device)
    with torch.inference_mode():
        pooled = layer_output.detach().float().mean(dim=(2, 3))  # (1, C)
        predicted = nn.functional.linear(pooled, weight, bias)
        if not torch.allclose(predicted, logits.detach().float().to(pooled.device), rtol=1e-3, atol=1e-3):
            raise MethodError(refusal)
    return weight


def class_activation_map(weights: torch.Tensor, activations: torch.Tensor, target) -> torch.Tensor:
    """sum_k w_k^c A_k for the target (a class, or a contrast: targets are linear in the logits).

    Args:
        weights: (K, C) classifier weights; activations: (1, C, h, w).
    Returns:
        (h, w) map before ReLU, as TorchCAM's CAM computes it.
    """
    w = target(weights.t())  # (C,): the target applied to each channel's column of class weights
    return torch.nansum(w[:, None, None] * activations[0].float(), dim=0)
