"""The engine's entry points: ``predict`` and ``explain``."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam.utils.image import scale_cam_image

from .clones import borrowed_clone
from .device import plain_out_of_memory
from .errors import ImageError, MethodError
from .heads import probabilities
from .layers import resolve_layers
from .methods import extra_methods, smoothing
from .methods import guided as guided_methods
from .methods import model_methods
from .methods.catalog import MethodSpec, resolve_method
from .methods.options import MethodOptions
from .methods.shared_pass import ClassAgnosticMaps, forward_capture, layer_gradients, shared_cam, to_numpy_map
from .fit import normalized_on_image
from .methods.transformer_methods import (ATTENTION_LAYER, NEEDS_GRADIENTS, AttentionRecorder,
                                          transformer_maps)
from .models.spec import LoadedModel, Preprocessing
from .progress import MethodProgress, Progress, ProgressTracker
from .results import CamResult, Explanation, Prediction
from .targets import ClassTarget, ContrastTarget, Target, build_targets, finer_target

ResultSink = Optional[Callable[[list[CamResult]], None]]
STEPS = 100  # the progress steps of a method that reports fractions (occlusion, SS-CAM, IS-CAM, ...)
UNITS = {"scorecam": "masked pass", "ablationcam": "ablation pass"}  # the others count maps
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
    probs = probabilities(logits[0], model.head)
    if model.head == "sigmoid":  # every label above 0.5 is a finding: show them all, at least k
        k = max(k, int((probs > 0.5).sum()))
    top = torch.argsort(probs, descending=True)[: min(k, probs.numel())]
    return [Prediction(int(i), model.categories[int(i)], float(logits[0, i]), float(probs[i]), model.head)
            for i in top]


def predict(model: LoadedModel, image: Image.Image, k: int = 5, fit: str | None = None) -> list[Prediction]:
    """The model's top-k classes for ``image`` (best first), with logits and probabilities.

    ``fit`` ("squash", "letterbox", "crop"; default: the model's preprocessing) says how a
    non-square image meets the model's input (see ``explainers.fit``)."""
    model, image = _check_model(model), _check_image(image)
    model = model.with_fit(fit) if fit is not None else model
    with plain_out_of_memory(model.device, "this prediction"), torch.inference_mode():
        logits = model.module(model.preprocessing.to_tensor(image).to(model.device))
    return _predictions(model, logits, k)


def on_grid(raw: np.ndarray, width: int, height: int, preprocessing: Preprocessing | None = None) -> np.ndarray:
    """A map resized to width x height and normalized to [0, 1], scaled exactly as pytorch-grad-cam
    scales a single layer's map (normalize, resize, normalize again).

    With ``preprocessing`` whose fit is "letterbox" or "crop", the map goes back through that fit:
    the padding is dropped, and with "crop" the part of the image the model did not see is NaN."""
    if preprocessing is not None and preprocessing.fit != "squash":
        return normalized_on_image(raw, preprocessing.input_size, preprocessing.placement(width, height),
                                   width, height)
    resized = scale_cam_image(np.maximum(raw, 0)[None], (width, height))
    return np.clip(scale_cam_image(resized)[0], 0.0, 1.0)


def explain(model: LoadedModel, image: Image.Image, methods: Sequence[str] = ("gradcam",),
            classes: Sequence[int] | None = None, top_k: int | None = None,
            contrast: tuple[int, int] | None = None, layers: Sequence[str] | None = None,
            progress: Progress = None, batch_size: int = 16, on_result: ResultSink = None,
            fit: str | None = None, options: MethodOptions | Mapping[str, Mapping[str, object]] | None = None
            ) -> Explanation:
    """Explain ``image`` with several methods, layers and targets at once.

    All one-pass methods (Grad-CAM, HiResCAM, Grad-CAM++, ...) share ONE forward
    pass and, per target, one backward pass that stops at the target layers.

    Args:
        model: from ``load_model``.
        image: a PIL image (any size; by default the whole image is resized, not cropped).
        methods: method keys or display names (see ``list_methods``).
        classes / top_k: which classes to explain (default: the top-1 class).
        contrast: (A, B) adds a map for "A rather than B" (logit A minus logit B).
        layers: module names (default: the model's recommended layer).
        progress: called with (fraction done, what is running), from 0, with counts and the time
            left during slow methods (see ``explainers.progress``).
        batch_size: masked passes per batch for Score-CAM, Ablation-CAM, occlusion, SS-CAM and IS-CAM.
        on_result: called with each method's results as soon as that method is done (the one-pass
            methods together), so a caller can keep them if the call is interrupted later.
        fit: "squash", "letterbox" or "crop" (default: the model's preprocessing, "squash"); the
            maps come back on the original image grid through the same fit (NaN outside a crop).
        options: a ``MethodOptions`` (aug-smooth, eigen-smooth, a noise tunnel, attention rollout's head
            fusion and discard ratio, and the settings of the other methods that have some); or only
            per-method settings, e.g. ``{"attention_rollout": {"head_fusion": "max", "discard_ratio": 0.9}}``
            (defaults: the papers').
    Returns:
        An Explanation with one CamResult per (method, layer, target).
    """
    model, image = _check_model(model), _check_image(image)
    model = model.with_fit(fit) if fit is not None else model
    if isinstance(methods, str):
        methods = [methods]
    specs = list({s.key: s for s in (resolve_method(m) for m in methods)}.values())
    if not specs:
        raise MethodError("No method was chosen: pick at least one.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise MethodError(f"batch_size must be a positive whole number, not {batch_size!r}.")
    layer_names = resolve_layers(model, layers)
    reshape = model.reshape_transform
    width, height = image.size
    x = model.preprocessing.to_tensor(image).to(model.device)
    keys = {s.key for s in specs}
    settings: Mapping[str, Mapping[str, object]] = {}
    if isinstance(options, Mapping):  # only per-method settings, e.g. {"attention_rollout": {...}}
        settings, options = options, None
    options = options or MethodOptions()
    settings = settings or {"attention_rollout": {"head_fusion": options.rollout_head_fusion,
                                                  "discard_ratio": options.rollout_discard_ratio}}
    need_grads = any(s.kind == "shared" and s.uses_gradients for s in specs) or bool(
        keys & {"guided_gradcam", "finercam"}) or any(extra_methods.needs_shared_gradients(k) for k in keys)
    results: list[CamResult] = []
    timings: dict[str, float] = {}
    jobs = [s for s in specs if s.kind not in ("shared", "transformer")]
    attention_keys = [s.key for s in specs if s.kind == "transformer"]

    with plain_out_of_memory(model.device, "this explanation"), borrowed_clone(model.module) as clone:
        start = time.perf_counter()
        ProgressTracker(progress, {}).start()  # 0 at once: the shared pass can take seconds on a big model
        recorder = attention_recorder(clone, model, attention_keys)
        try:
            # gradients of every block's attention need the graph from the input on (CAMs alone: from the layer)
            from_start = {"grads_from_start": True} if set(attention_keys) & set(NEEDS_GRADIENTS) else {}
            capture = forward_capture(clone, x, layer_names, need_grads, **from_start)
        finally:
            if recorder is not None:
                recorder.detach()
        targets = build_targets(capture.logits, classes, top_k, contrast)
        attention_maps = (transformer_maps(recorder, attention_keys, targets, capture.logits, settings)
                          if recorder else {})
        maps_needed = any(s.kind != "transformer" for s in specs)  # attention maps need no layer map
        acts = {n: to_numpy_map(capture.outputs[n], reshape) for n in layer_names} if maps_needed else {}
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

        tracker = ProgressTracker(progress, {s.display_name: _plan(s, acts, layer_names, len(targets))
                                             for s in jobs})
        shared_specs = [s for s in specs if s.kind == "shared"]
        n_shared = max(len(shared_specs) * len(targets) * len(layer_names), 1)
        smoothed = _smoothed_shared_maps(shared_specs, clone, x, layer_names, targets, reshape, options)
        agnostic = ClassAgnosticMaps()
        for spec in shared_specs:
            shown = _with_options(spec, options)
            for t_i, target in enumerate(targets):
                for n in layer_names:
                    t0 = time.perf_counter()
                    raw = smoothed[(spec.key, t_i, n)] if smoothed else agnostic.get(
                        spec, n, lambda: shared_cam(spec.library_class, acts[n], grads.get((t_i, n)), [target],
                                                    eigen_smooth=options.eigen_smooth))
                    results.append(make(shown, n, target, raw, time.perf_counter() - t0 + shared_time / n_shared))
        for (key, t_i), raw in attention_maps.items():
            results.append(make(resolve_method(key), ATTENTION_LAYER, targets[t_i], raw, shared_time / n_shared))
        if results and on_result is not None:
            on_result(list(results))

        context = extra_methods.JobContext(clone, image, model.preprocessing.resize(image), x, layer_names, acts,
                                           grads, targets, logits, batch_size, None, options, reshape, model.module)
        for spec in jobs:
            t0 = time.perf_counter()
            counter, made, shown = tracker.method(spec.display_name), [], _with_options(spec, options)
            extra = spec.kind == "extra"
            result_layers = (extra_methods.layers_for(spec.key, layer_names) if extra
                             else [FULL_MODEL_LAYER] if spec.key == "fullgrad" else layer_names)
            for n in result_layers:
                if extra:
                    context.progress = _fraction_counter(counter.call(STEPS))
                    raws = extra_methods.run(spec.key, context, n)
                else:
                    raws = _run_job(spec, clone, model, n, x, acts.get(n), targets, grads, logits, batch_size,
                                    counter, options)
                elapsed = (time.perf_counter() - t0) / max(len(raws), 1)
                made.extend(make(shown, n, t, raw, elapsed) for t, raw in zip(targets, raws))
            timings[spec.key] = time.perf_counter() - t0
            results.extend(made)
            tracker.finish(spec.display_name)
            if on_result is not None:
                on_result(made)

    return Explanation(model=model.name, image_size=(width, height), input_size=tuple(x.shape[-2:]),
                       predictions=_predictions(model, logits), results=results, timings=timings,
                       head=model.head, fit=model.preprocessing.fit)


def _plan(spec: MethodSpec, acts: dict[str, np.ndarray], layers: Sequence[str], n_targets: int) -> tuple[int, str]:
    """(upper bound of the units of work, unit name) of one slow method: its masked passes, else its maps."""
    if spec.kind == "extra":  # these report a fraction of their run: counted in hundredths
        return STEPS * len(extra_methods.layers_for(spec.key, list(layers))), "step"
    channels = [acts[n].shape[1] for n in layers]  # (1, C, h, w) per layer
    if spec.key == "scorecam":  # one sweep for all targets; constant channels run once (fewer)
        return sum(channels), UNITS[spec.key]
    if spec.key == "ablationcam":
        return sum(channels) * n_targets, UNITS[spec.key]
    return (1 if spec.key == "fullgrad" else len(layers)) * n_targets, "map"


def _fraction_counter(count) -> Progress:
    """A (fraction, text) callback over a (done, total) counter of ``STEPS`` steps."""
    return lambda fraction, _text="": count(int(round(min(max(float(fraction), 0.0), 1.0) * STEPS)), STEPS)


_OPTION_METHODS = {"cam", "refinecam", "randomcam", "smoothgradcam++"}  # "extra" methods eigen-smooth applies to


def _with_options(spec: MethodSpec, options: MethodOptions) -> MethodSpec:
    """The spec named with the options that changed its maps (e.g. "Grad-CAM (aug-smooth)")."""
    if spec.kind == "shared":
        applied = options
    elif spec.key in _OPTION_METHODS:
        applied = MethodOptions(eigen_smooth=options.eigen_smooth)
    elif spec.key in ("guided_backprop", "integrated_gradients"):  # the pixel attributions a tunnel applies to
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
             batch_size: int, counter: MethodProgress, options: MethodOptions | None = None) -> list[np.ndarray]:
    """One slow method for every target at one layer; returns one raw map per target."""
    reshape = model.reshape_transform
    if spec.key == "scorecam":
        return model_methods.score_cam(clone, x, acts, targets, batch_size, counter.call(acts.shape[1]))
    if spec.key == "ablationcam":
        return [model_methods.ablation_cam(clone, layer, x, acts, t, reshape, batch_size, counter.call(acts.shape[1]))
                for t in targets]
    tunnel = options.noise_tunnel if options is not None else None
    if spec.key == "guided_backprop" and tunnel is not None:  # the noisy copies in one batched pass
        noisy = smoothing.noisy_guided_backprop(clone, x, targets, tunnel, options.noise_source(tunnel.std, x.device))
        for _ in targets:
            counter.step()
        return [guided_methods.saliency(g) for g in noisy]
    out = []
    for t_i, t in enumerate(targets):
        out.append(_one_map(spec, clone, model, layer, x, acts, t_i, t, grads, logits))
        counter.step()
    return out


def _one_map(spec: MethodSpec, clone: torch.nn.Module, model: LoadedModel, layer: str, x: torch.Tensor,
             acts: np.ndarray | None, t_i: int, target: Target, grads: dict, logits: torch.Tensor) -> np.ndarray:
    """The raw map of a method that makes one map per call (FullGrad, ShapleyCAM, Finer-CAM, guided)."""
    if spec.key in ("fullgrad", "shapleycam"):
        return model_methods.library_full_map(spec.key, clone, layer, x, target, model.reshape_transform)
    if spec.key == "finercam":
        gradcam = resolve_method("gradcam").library_class
        return shared_cam(gradcam, acts, grads[("finer", t_i, layer)], [finer_target(logits, target.index)])
    if spec.key in ("guided_backprop", "guided_gradcam"):
        sal = guided_methods.saliency(guided_methods.guided_backprop(clone, x, target))  # (H_in, W_in)
        if spec.key == "guided_gradcam":
            cam = shared_cam(resolve_method("gradcam").library_class, acts, grads[(t_i, layer)], [target])
            sal = sal * on_grid(cam, sal.shape[1], sal.shape[0])
        return sal
    raise MethodError(f"Method {spec.display_name} is registered but has no implementation.")


def attention_recorder(clone: torch.nn.Module, model: LoadedModel, keys: list[str]) -> AttentionRecorder | None:
    """Hooks that record every block's attention in the shared forward, when a transformer method is asked."""
    if not keys:
        return None
    recorder = AttentionRecorder.for_model(clone, model.extra.get("layout"), model.preprocessing.input_size,
                                           resolve_method(keys[0]).display_name)
    recorder.attach()
    return recorder


class ResultMaker:
    """Builds CamResults: names, scores and the map on the original image grid."""

    def __init__(self, model: LoadedModel, logits: torch.Tensor, width: int, height: int) -> None:
        self.model, self.logits, self.width, self.height = model, logits, width, height
        self.probs = probabilities(logits[0], model.head)

    def __call__(self, spec: MethodSpec, layer: str, target: Target, raw: np.ndarray, seconds: float) -> CamResult:
        raw = np.maximum(np.asarray(raw, dtype=np.float32), 0)
        cats = self.model.categories
        other = target.other if isinstance(target, ContrastTarget) else None
        return CamResult(
            method=spec.key, method_name=spec.display_name, layer=layer, class_index=target.index,
            class_name=cats[target.index], score=float(target(self.logits)[0]),
            probability=float(self.probs[target.index]), raw=raw,
            map=on_grid(raw, self.width, self.height, self.model.preprocessing), seconds=float(seconds),
            contrast_index=other, contrast_name=cats[other] if other is not None else None)
