"""How the engine runs the methods registered with kind "extra": one function per method, all with one signature."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import baselines, perturbation, pixel_attribution, smoothing
from .guided import saliency
from .inference_copy import CacheSizedPasses, accepts_channels_last, cache_sized_batch, inference_copy
from .layer_split import LayerSplit, split_at
from .options import MethodOptions
from .original_cam import class_activation_map, classifier_weights
from .refine_cam import refine_cam
from .shared_pass import first_component

Progress = Optional[Callable[[float, str], None]]


@dataclass
class JobContext:
    """What one slow method needs from an ``explain`` call (the shared pass already ran)."""

    clone: nn.Module  # private clone, no hooks
    image: Image.Image  # as uploaded
    model_input_image: Image.Image  # resized as the model sees it
    x: torch.Tensor  # (1, 3, H, W)
    layers: list[str]  # every chosen layer
    acts: dict[str, np.ndarray]  # layer -> (1, C, h, w)
    grads: dict  # (target number, layer) -> (1, C, h, w), when the shared pass took gradients
    targets: list
    logits: torch.Tensor  # (1, K)
    batch_size: int
    progress: Progress
    options: MethodOptions
    reshape: Optional[Callable] = None
    shared_model: Optional[nn.Module] = None  # the model itself: key of its frozen inference copy
    cache: dict = field(default_factory=dict)  # results computed for all layers at once

    def inference_model(self, differentiable: bool = False) -> nn.Module:
        """What the hook-free passes run on: the frozen copy when the options allow it (``differentiable``:
        one that input gradients flow through)."""
        if self.options.frozen_inference and self.shared_model is not None:
            return CacheSizedPasses(inference_copy(self.shared_model, self.x, differentiable))
        return CacheSizedPasses(self.clone)

    def layer_split(self) -> Optional[LayerSplit]:
        """The model cut after the earliest chosen layer (frozen below it), when the options allow it."""
        if self.options.frozen_inference and self.shared_model is not None:
            return split_at(self.shared_model, self.layers, self.x, mkldnn=True)
        return None


def layers_for(key: str, layers: list[str]) -> list[str]:
    """The result layers of a method: RefineCAM gives one map over all chosen layers."""
    return ["+".join(layers)] if key == "refinecam" else list(layers)


def needs_shared_gradients(key: str) -> bool:
    return key == "refinecam"


def run(key: str, ctx: JobContext, layer: str) -> list[np.ndarray]:
    """One raw map per target for method ``key`` at ``layer``."""
    return _RUNNERS[key](ctx, layer)


def _cam(ctx: JobContext, layer: str) -> list[np.ndarray]:
    acts = torch.from_numpy(ctx.acts[layer])
    weights = classifier_weights(ctx.clone, layer, acts, ctx.logits.cpu())
    if ctx.options.eigen_smooth:
        return [first_component((t(weights.t())[None, :, None, None] * acts).numpy())[0] for t in ctx.targets]
    return [class_activation_map(weights, acts, t).numpy() for t in ctx.targets]


def _refinecam(ctx: JobContext, _layer: str) -> list[np.ndarray]:
    height, width = ctx.x.shape[-2:]
    return [refine_cam([ctx.acts[n] for n in ctx.layers], [ctx.grads[(t_i, n)] for n in ctx.layers], t,
                       (width, height), ctx.options.eigen_smooth) for t_i, t in enumerate(ctx.targets)]


def _occlusion(ctx: JobContext, _layer: str) -> list[np.ndarray]:
    o = ctx.options
    return perturbation.occlusion(ctx.inference_model(), ctx.x, ctx.logits, ctx.targets, o.occlusion_window,
                                  o.occlusion_stride, o.occlusion_fill, ctx.batch_size, ctx.progress)


def _sscam(ctx: JobContext, layer: str) -> list[np.ndarray]:
    o = ctx.options
    return perturbation.smoothed_score_cam(ctx.inference_model(), ctx.x, ctx.logits, ctx.acts[layer], ctx.targets,
                                           o.sscam_samples, o.noise_source(o.sscam_std, ctx.x.device),
                                           ctx.batch_size, ctx.progress)


def _iscam(ctx: JobContext, layer: str) -> list[np.ndarray]:
    return perturbation.integrated_score_cam(ctx.inference_model(), ctx.x, ctx.logits, ctx.acts[layer], ctx.targets,
                                             ctx.options.iscam_samples, ctx.batch_size, ctx.progress)


def _smoothgradcampp(ctx: JobContext, layer: str) -> list[np.ndarray]:
    o = ctx.options
    if "smoothgradcam++" not in ctx.cache:  # every layer from the same noisy copies, as TorchCAM's multi-layer call
        ctx.cache["smoothgradcam++"] = smoothing.smooth_gradcam_pp(
            ctx.clone, ctx.x, ctx.layers, ctx.acts, ctx.targets, o.smooth_samples,
            o.noise_source(o.smooth_std, ctx.x.device), ctx.reshape, o.eigen_smooth, split=ctx.layer_split())
    return [m[layer] for m in ctx.cache["smoothgradcam++"]]


def _integrated_gradients(ctx: JobContext, _layer: str) -> list[np.ndarray]:
    # each forward + backward over a few steps: on the CPU the saved activations then stay in the cache
    o, model, batch = ctx.options, ctx.inference_model(differentiable=True), cache_sized_batch(ctx.x, ctx.batch_size)
    x = ctx.x
    if (isinstance(model.model, torch.jit.ScriptModule) and x.device.type == "cpu"
            and accepts_channels_last(model.model, x)):  # the frozen copy itself: what the steps run on
        # channels-last steps through the frozen copy: its convolutions and their backward ran IG 10-15%
        # faster (bench_methods); the attribution moves by float rounding only, as the frozen copy already does
        x = x.contiguous(memory_format=torch.channels_last)
    if o.noise_tunnel is not None:
        attributions = pixel_attribution.noisy_integrated_gradients(
            model, x, ctx.targets, o.ig_steps, o.noise_tunnel, o.noise_source(o.noise_tunnel.std, x.device),
            batch, ctx.progress)
    else:
        attributions = pixel_attribution.integrated_gradients(model, x, ctx.targets, o.ig_steps,
                                                              batch_size=batch, progress=ctx.progress)
    return [saliency(a[0].permute(1, 2, 0).cpu().numpy()) for a in attributions]


def _randomcam(ctx: JobContext, layer: str) -> list[np.ndarray]:
    raw = baselines.random_cam(ctx.acts[layer], ctx.options.seed)
    return [raw for _ in ctx.targets]


def _sobelcam(ctx: JobContext, _layer: str) -> list[np.ndarray]:
    raw = baselines.sobel_map(ctx.model_input_image)
    return [raw for _ in ctx.targets]


_RUNNERS = {"cam": _cam, "refinecam": _refinecam, "occlusion": _occlusion, "sscam": _sscam, "iscam": _iscam,
            "smoothgradcam++": _smoothgradcampp, "integrated_gradients": _integrated_gradients,
            "randomcam": _randomcam, "sobelcam": _sobelcam}
