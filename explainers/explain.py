"""The engine's entry points: ``predict`` and ``explain``."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam.utils.image import scale_cam_image

from .clones import borrowed_clone
from .device import plain_out_of_memory
from .errors import ImageError, MethodError
from .layers import resolve_layers
from .methods import extra_methods, smoothing
from .methods import guided as guided_methods
from .methods import model_methods
from .methods.catalog import MethodSpec, resolve_method
from .methods.options import MethodOptions
from .methods.shared_pass import forward_capture, layer_gradients, shared_cam, to_numpy_map
from .models.spec import LoadedModel
from .results import CamResult, Explanation, Prediction
from .targets import ClassTarget, ContrastTarget, Target, build_targets, finer_target

Progress = Optional[Callable[[float, str], None]]
FULL_MODEL_LAYER = "(whole model)"  # FullGrad uses every bias layer, not the chosen one


def _check_image(image: object) -> Image.Image:
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.size == 0:
            raise ImageError("The image array must have shape (height, width) or (height, width, 3).")
        image = Image.fromarray(image.astype(np.uint8) if image.dtype != np.uint8 else image)
    if not isinstance(image, Image.Image):
        raise ImageError(f"Expected an image (PIL image or array), got {type(image).__name__}.")
    if image.width < 1 or image.height < 1:
        raise ImageError("The image is empty (0 pixels).")
    return image


def _check_model(model: object) -> LoadedModel:
    if not isinstance(model, LoadedModel):
        raise MethodError("Expected a model from explainers.load_model (or wrap_module), "
                          f"got {type(model).__name__}.")
    return model


def _predictions(model: LoadedModel, logits: torch.Tensor, k: int = 5) -> list[Prediction]:
    probs = torch.softmax(logits.detach().float()[0], dim=-1)
    top = torch.argsort(probs, descending=True)[: min(k, probs.numel())]
    return [Prediction(int(i), model.categories[int(i)], float(logits[0, i]), float(probs[i])) for i in top]


def predict(model: LoadedModel, image: Image.Image, k: int = 5) -> list[Prediction]:
    """The model's top-k classes for ``image`` (best first), with logits and probabilities."""
    model, image = _check_model(model), _check_image(image)
    with plain_out_of_memory(model.device, "this prediction"), torch.inference_mode():
        logits = model.module(model.preprocessing.to_tensor(image).to(model.device))
    return _predictions(model, logits, k)


def on_grid(raw: np.ndarray, width: int, height: int) -> np.ndarray:
    """A map resized to width x height and normalized to [0, 1], scaled exactly as pytorch-grad-cam
    scales a single layer's map (normalize, resize, normalize again)."""
    resized = scale_cam_image(np.maximum(raw, 0)[None], (width, height))
    return np.clip(scale_cam_image(resized)[0], 0.0, 1.0)


def explain(model: LoadedModel, image: Image.Image, methods: Sequence[str] = ("gradcam",),
            classes: Sequence[int] | None = None, top_k: int | None = None,
            contrast: tuple[int, int] | None = None, layers: Sequence[str] | None = None,
            progress: Progress = None, batch_size: int = 16, options: MethodOptions | None = None) -> Explanation:
    """Explain ``image`` with several methods, layers and targets at once.

    All one-pass methods (Grad-CAM, HiResCAM, Grad-CAM++, ...) share ONE forward
    pass and, per target, one backward pass that stops at the target layers.

    Args:
        model: from ``load_model``.
        image: a PIL image (any size; the whole image is resized, not cropped).
        methods: method keys or display names (see ``list_methods``).
        classes / top_k: which classes to explain (default: the top-1 class).
        contrast: (A, B) adds a map for "A rather than B" (logit A minus logit B).
        layers: module names (default: the model's recommended layer).
        progress: called with (fraction done, what is running) during slow methods.
        batch_size: masked passes per batch for Score-CAM, Ablation-CAM, occlusion, SS-CAM and IS-CAM.
        options: aug-smooth, eigen-smooth, a noise tunnel, and the settings of the methods that have some.
    Returns:
        An Explanation with one CamResult per (method, layer, target).
    """
    model, image = _check_model(model), _check_image(image)
    if isinstance(methods, str):
        methods = [methods]
    specs = list({s.key: s for s in (resolve_method(m) for m in methods)}.values())
    if not specs:
        raise MethodError("No method was chosen: pick at least one.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise MethodError(f"batch_size must be a positive whole number, not {batch_size!r}.")
    layer_names = resolve_layers(model, layers)
    reshape = model.spec.reshape_transform
    width, height = image.size
    x = model.preprocessing.to_tensor(image).to(model.device)
    keys = {s.key for s in specs}
    options = options or MethodOptions()
    need_grads = any(s.kind == "shared" and s.uses_gradients for s in specs) or bool(
        keys & {"guided_gradcam", "finercam"}) or any(extra_methods.needs_shared_gradients(k) for k in keys)
    results: list[CamResult] = []
    timings: dict[str, float] = {}
    jobs = [s for s in specs if s.kind != "shared"]
    report = _Reporter(progress, 1 + len(jobs))

    with plain_out_of_memory(model.device, "this explanation"), borrowed_clone(model.module) as clone:
        start = time.perf_counter()
        capture = forward_capture(clone, x, layer_names, need_grads)
        targets = build_targets(capture.logits, classes, top_k, contrast)
        acts = {n: to_numpy_map(capture.outputs[n], reshape) for n in layer_names}
        grads: dict[tuple[int, str], np.ndarray] = {}
        if need_grads:
            for t_i, target in enumerate(targets):
                for n, g in layer_gradients(capture, target, layer_names).items():
                    grads[(t_i, n)] = to_numpy_map(g, reshape)
                if "finercam" in keys:  # Finer-CAM's target needs only one more backward on the same graph
                    finer = finer_target(capture.logits, target.index)
                    for n, g in layer_gradients(capture, finer, layer_names).items():
                        grads[("finer", t_i, n)] = to_numpy_map(g, reshape)
        timings["shared pass"] = shared_time = time.perf_counter() - start
        logits = capture.logits.detach()
        del capture  # frees the graph
        make = ResultMaker(model, logits, width, height)

        shared_specs = [s for s in specs if s.kind == "shared"]
        n_shared = max(len(shared_specs) * len(targets) * len(layer_names), 1)
        smoothed = _smoothed_shared_maps(shared_specs, clone, x, layer_names, targets, reshape, options)
        for spec in shared_specs:
            shown = _with_options(spec, options)
            for t_i, target in enumerate(targets):
                for n in layer_names:
                    t0 = time.perf_counter()
                    raw = smoothed[(spec.key, t_i, n)] if smoothed else shared_cam(
                        spec.library_class, acts[n], grads.get((t_i, n)), [target], eigen_smooth=options.eigen_smooth)
                    results.append(make(shown, n, target, raw, time.perf_counter() - t0 + shared_time / n_shared))
        report.step("one-pass methods done")

        context = extra_methods.JobContext(clone, image, model.preprocessing.resize(image), x, layer_names, acts,
                                           grads, targets, logits, batch_size, None, options, reshape, model.module)
        for spec in jobs:
            t0 = time.perf_counter()
            sub = report.sub(spec.display_name)
            if spec.kind == "extra":
                context.progress = sub
                for n in extra_methods.layers_for(spec.key, layer_names):
                    raws = extra_methods.run(spec.key, context, n)
                    elapsed = (time.perf_counter() - t0) / max(len(raws), 1)
                    results.extend(make(_with_options(spec, options), n, t, raw, elapsed)
                                   for t, raw in zip(targets, raws))
                timings[spec.key] = time.perf_counter() - t0
                report.step(f"{spec.display_name} done")
                continue
            for n in ([FULL_MODEL_LAYER] if spec.key == "fullgrad" else layer_names):
                raws = _run_job(spec, clone, model, n, x, acts.get(n), targets, grads, logits, batch_size, sub,
                                options)
                elapsed = (time.perf_counter() - t0) / max(len(raws), 1)
                results.extend(make(_with_options(spec, options), n, t, raw, elapsed) for t, raw in zip(targets, raws))
            timings[spec.key] = time.perf_counter() - t0
            report.step(f"{spec.display_name} done")

    return Explanation(model=model.name, image_size=(width, height), input_size=tuple(x.shape[-2:]),
                       predictions=_predictions(model, logits), results=results, timings=timings)


_OPTION_METHODS = {"cam", "refinecam", "randomcam", "smoothgradcam++"}  # "extra" methods eigen-smooth applies to


def _with_options(spec: MethodSpec, options: MethodOptions) -> MethodSpec:
    """The spec named with the options that changed its maps (e.g. "Grad-CAM (aug-smooth)")."""
    if spec.kind == "shared":
        applied = options
    elif spec.key in _OPTION_METHODS:
        applied = MethodOptions(eigen_smooth=options.eigen_smooth)
    elif spec.key == "guided_backprop":
        applied = MethodOptions(noise_tunnel=options.noise_tunnel)
    else:
        return spec
    suffix = applied.suffix()
    return dataclasses.replace(spec, display_name=spec.display_name + suffix) if suffix else spec


def _smoothed_shared_maps(specs: list[MethodSpec], clone: torch.nn.Module, x: torch.Tensor, layers: list[str],
                          targets: list[Target], reshape, options: MethodOptions) -> dict:
    """The one-pass maps under aug-smooth or a noise tunnel (their own batched pass); {} when neither is on."""
    if not specs:
        return {}
    if options.aug_smooth:
        return smoothing.aug_smooth_maps(specs, clone, x, layers, targets, reshape, options.eigen_smooth)
    if options.noise_tunnel is not None:
        tunnel = options.noise_tunnel
        return smoothing.noise_tunnel_maps(specs, clone, x, layers, targets, tunnel,
                                           options.noise_source(tunnel.std, x.device), reshape, options.eigen_smooth)
    return {}


def _run_job(spec: MethodSpec, clone: torch.nn.Module, model: LoadedModel, layer: str, x: torch.Tensor,
             acts: np.ndarray | None, targets: list[Target], grads: dict, logits: torch.Tensor,
             batch_size: int, progress: Progress, options: MethodOptions | None = None) -> list[np.ndarray]:
    """One slow method for every target at one layer; returns one raw map per target."""
    reshape = model.spec.reshape_transform
    if spec.key == "scorecam":
        return model_methods.score_cam(clone, x, acts, targets, batch_size, progress)
    if spec.key == "ablationcam":
        return [model_methods.ablation_cam(clone, layer, x, acts, t, reshape, batch_size, progress) for t in targets]
    if spec.key in ("fullgrad", "shapleycam"):
        return [model_methods.library_full_map(spec.key, clone, layer, x, t, reshape) for t in targets]
    if spec.key == "finercam":
        gradcam = resolve_method("gradcam").library_class
        return [shared_cam(gradcam, acts, grads[("finer", t_i, layer)], [finer_target(logits, t.index)])
                for t_i, t in enumerate(targets)]
    tunnel = options.noise_tunnel if options is not None else None
    if spec.key == "guided_backprop" and tunnel is not None:
        noisy = smoothing.noisy_guided_backprop(clone, x, targets, tunnel, options.noise_source(tunnel.std, x.device))
        return [guided_methods.saliency(g) for g in noisy]
    if spec.key in ("guided_backprop", "guided_gradcam"):
        out = []
        for t_i, t in enumerate(targets):
            sal = guided_methods.saliency(guided_methods.guided_backprop(clone, x, t))  # (H_in, W_in)
            if spec.key == "guided_gradcam":
                cam = shared_cam(resolve_method("gradcam").library_class, acts, grads[(t_i, layer)], [t])
                sal = sal * on_grid(cam, sal.shape[1], sal.shape[0])
            out.append(sal)
        return out
    raise MethodError(f"Method {spec.display_name} is registered but has no implementation.")


class ResultMaker:
    """Builds CamResults: names, scores and the map on the original image grid."""

    def __init__(self, model: LoadedModel, logits: torch.Tensor, width: int, height: int) -> None:
        self.model, self.logits, self.width, self.height = model, logits, width, height
        self.probs = torch.softmax(logits.float()[0], dim=-1)

    def __call__(self, spec: MethodSpec, layer: str, target: Target, raw: np.ndarray, seconds: float) -> CamResult:
        raw = np.maximum(np.asarray(raw, dtype=np.float32), 0)
        cats = self.model.categories
        other = target.other if isinstance(target, ContrastTarget) else None
        return CamResult(
            method=spec.key, method_name=spec.display_name, layer=layer, class_index=target.index,
            class_name=cats[target.index], score=float(target(self.logits)[0]),
            probability=float(self.probs[target.index]), raw=raw,
            map=on_grid(raw, self.width, self.height), seconds=float(seconds),
            contrast_index=other, contrast_name=cats[other] if other is not None else None)


class _Reporter:
    """Maps each stage's own 0..1 progress onto the whole call's 0..1."""

    def __init__(self, progress: Progress, stages: int) -> None:
        self.progress, self.stages, self.done = progress, stages, 0

    def step(self, label: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done / self.stages, 1.0), label)

    def sub(self, label: str) -> Progress:
        if self.progress is None:
            return None
        base, share = self.done / self.stages, 1 / self.stages
        return lambda fraction, text=label: self.progress(min(base + share * fraction, 1.0), f"{label}: {text}")
