"""Smoothing over many copies of the input, each batched through ONE forward and one backward per target:
Smooth Grad-CAM++ (TorchCAM), pytorch-grad-cam's ``aug_smooth`` and Captum's noise tunnel."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from pytorch_grad_cam.utils.image import scale_cam_image
from torch import nn

from .catalog import MethodSpec
from .guided import guided_clone
from .options import NoiseSource, NoiseTunnel
from .layer_split import LayerSplit
from .shared_pass import first_component, forward_capture, layer_gradients, shared_cam, to_numpy_map

Reshape = Optional[Callable[[torch.Tensor], torch.Tensor]]
AUGMENTATIONS = [(flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1)]  # ttach, as the library's


def _as_map(tensor: torch.Tensor, reshape: Reshape) -> torch.Tensor:
    return torch.from_numpy(to_numpy_map(tensor, reshape)).to(tensor.device)


def smooth_gradcam_pp(clone: nn.Module, x: torch.Tensor, layers: Sequence[str], clean_acts: dict[str, np.ndarray],
                      targets: Sequence[Callable], samples: int, noise: NoiseSource, reshape: Reshape = None,
                      eigen_smooth: bool = False, eps: float = 1e-8,
                      split: Optional[LayerSplit] = None) -> list[dict[str, np.ndarray]]:
    """Smooth Grad-CAM++ (Omeiza et al., 2019, arXiv:1908.01224) exactly as TorchCAM 0.5's SmoothGradCAMpp.

    The ``samples`` noisy copies go through one batched forward that is differentiated only from the layers on.
    As TorchCAM does: alpha from the gradients' 2nd and 3rd powers averaged over the samples and the clean
    activations; the weights and the map from the LAST noisy sample's gradient and activations.

    Args:
        noise: called once per sample with the input's shape (1, 3, H, W), in order.
        split: the model cut at the layers (``layer_split.py``): the copies run frozen and gradient-free below
            them, several times faster; else ``clone``'s forward, differentiated from the layers on.
    Returns:
        per target, {layer: (h, w) map before ReLU}.
    """
    noisy = x + torch.cat([noise(tuple(x.shape)).to(x.device, x.dtype) for _ in range(samples)])  # (N, 3, H, W)
    capture = (split.capture(noisy, with_grads=True) if split is not None
               else forward_capture(clone, noisy, layers, with_grads=True))
    last = {n: _as_map(capture.outputs[n], reshape)[-1:] for n in layers}  # (1, C, h, w)
    out = []
    for target in targets:
        maps = {}
        for n, g in layer_gradients(capture, target, layers).items():
            g = _as_map(g, reshape)  # (N, C, h, w)
            clean = torch.from_numpy(clean_acts[n]).to(g.device)
            g2, g3 = g.pow(2).mean(dim=0, keepdim=True), g.pow(3).mean(dim=0, keepdim=True)
            alpha = g2 / (2 * g2 + (g3 * clean).flatten(2).sum(-1)[..., None, None] + eps)
            weights = (alpha * torch.relu(g[-1:])).flatten(2).sum(-1)  # (1, C)
            weighted = weights[..., None, None] * last[n]
            maps[n] = (first_component(weighted.cpu().numpy())[0] if eigen_smooth
                       else torch.nansum(weighted, dim=1)[0].cpu().numpy())
        out.append(maps)
    return out


def _batched_pass(specs: Sequence[MethodSpec], clone: nn.Module, batch: torch.Tensor, layers: Sequence[str],
                  targets: Sequence[Callable], reshape: Reshape):
    """One forward of ``batch`` (N copies), then per target one layer-stopped backward: yields
    (target number, target, {layer: (N, C, h, w) activations}, {layer: (N, C, h, w) gradients} or {})."""
    need_grads = any(s.uses_gradients for s in specs)
    capture = forward_capture(clone, batch, layers, need_grads)
    acts = {n: to_numpy_map(capture.outputs[n], reshape) for n in layers}
    for t_i, target in enumerate(targets):
        grads = ({n: to_numpy_map(g, reshape) for n, g in layer_gradients(capture, target, layers).items()}
                 if need_grads else {})
        yield t_i, target, acts, grads


def aug_smooth_maps(specs: Sequence[MethodSpec], clone: nn.Module, x: torch.Tensor, layers: Sequence[str],
                    targets: Sequence[Callable], reshape: Reshape = None,
                    eigen_smooth: bool = False) -> dict[tuple[str, int, str], np.ndarray]:
    """pytorch-grad-cam's ``aug_smooth`` for one-pass CAMs: the 6 augmented copies in one batched pass.

    Returns:
        {(method key, target number, layer): (H, W) map at the model input's resolution, in [0, 1]}.
    """
    height, width = x.shape[-2:]
    batch = torch.cat([(x.flip(3) if flip else x) * factor for flip, factor in AUGMENTATIONS])  # (6, 3, H, W)
    out = {}
    for t_i, target, acts, grads in _batched_pass(specs, clone, batch, layers, targets, reshape):
        for spec in specs:
            for n in layers:
                cams = []
                for i, (flip, _factor) in enumerate(AUGMENTATIONS):
                    g = grads[n][i:i + 1] if grads and spec.uses_gradients else None
                    cam = np.maximum(shared_cam(spec.library_class, acts[n][i:i + 1], g, [target],
                                                eigen_smooth=eigen_smooth), 0)[None]
                    cam = scale_cam_image(np.maximum(scale_cam_image(cam, (width, height)), 0))[0]
                    cams.append(cam[:, ::-1] if flip else cam)  # de-augment: flip back
                out[(spec.key, t_i, n)] = np.mean(np.float32(cams), axis=0)
    return out


def noise_tunnel_maps(specs: Sequence[MethodSpec], clone: nn.Module, x: torch.Tensor, layers: Sequence[str],
                      targets: Sequence[Callable], tunnel: NoiseTunnel, noise: NoiseSource, reshape: Reshape = None,
                      eigen_smooth: bool = False) -> dict[tuple[str, int, str], np.ndarray]:
    """Captum's NoiseTunnel around one-pass CAMs: ``tunnel.samples`` noisy copies in one batched pass.

    Args:
        noise: called once with shape (N, 3, H, W), as Captum draws it.
    Returns:
        {(method key, target number, layer): (h, w) combined map before ReLU}.
    """
    noisy = tunnel.noisy_copies(x, noise)
    out = {}
    for t_i, target, acts, grads in _batched_pass(specs, clone, noisy, layers, targets, reshape):
        for spec in specs:
            for n in layers:
                maps = [shared_cam(spec.library_class, acts[n][i:i + 1],
                                   grads[n][i:i + 1] if grads and spec.uses_gradients else None, [target],
                                   eigen_smooth=eigen_smooth) for i in range(tunnel.samples)]
                out[(spec.key, t_i, n)] = tunnel.combine(torch.from_numpy(np.stack(maps))).numpy()
    return out


def noisy_guided_backprop(model: nn.Module, x: torch.Tensor, targets: Sequence[Callable], tunnel: NoiseTunnel,
                          noise: NoiseSource) -> list[np.ndarray]:
    """Captum's NoiseTunnel around Guided Backprop, the noisy copies in one batched pass.

    Returns:
        per target, the combined (H, W, 3) input gradient.
    """
    clone = guided_clone(model)
    noisy = tunnel.noisy_copies(x, noise).requires_grad_(True)
    out = []
    with torch.enable_grad():
        logits = clone(noisy)
        for i, target in enumerate(targets):
            (grad,) = torch.autograd.grad(target(logits).sum(), noisy, retain_graph=i < len(targets) - 1)
            out.append(tunnel.combine(grad).permute(1, 2, 0).cpu().numpy().astype(np.float32))
    return out
