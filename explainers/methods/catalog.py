"""The method registry: every CAM method CAMscope offers, as data.

A method is one entry here. ``kind`` says how the engine computes it:
  "shared"  : from the target layer's activations and gradients of ONE shared
              forward/backward pass (pytorch-grad-cam's ``get_cam_image`` math).
  "model"   : needs extra passes through the model (run on a private clone).
  "guided"  : Guided Backprop and Guided Grad-CAM (input-gradient methods).
  "transformer": from every block's attention, recorded in the same shared forward pass
              (vision transformers with a class token only; see ``transformer_methods.py``).
  "extra"   : computed in ``extra_methods.py`` (CAM, RefineCAM, perturbation, smoothing, IG, baselines).
``family`` groups the app's method picker (see ``FAMILIES`` and ``grouped_methods``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytorch_grad_cam as pgc

from ..registry import Registry


@dataclass(frozen=True)
class MethodSpec:
    key: str  # registry key, e.g. "gradcam++"
    display_name: str  # "Grad-CAM++"
    description: str  # one line
    cost: str  # "one pass" or "N passes (...)"
    paper: str  # reference
    kind: str  # "shared" | "model" | "guided" | "transformer"
    library_class: Optional[type] = None  # the pytorch-grad-cam class whose math we use
    uses_gradients: bool = True
    slow: bool = False  # opt-in in the app: many forward passes
    family: str = ""  # one of FAMILIES; empty: derived from ``kind`` (see family_of)
    min_layers: int = 1  # RefineCAM combines two or more layers


FAMILIES = ("one-pass CAMs", "perturbation", "smoothing", "transformer", "pixel attribution", "baselines")
_KIND_FAMILY = {"shared": "one-pass CAMs", "guided": "pixel attribution", "transformer": "transformer"}
_KEY_FAMILY = {"scorecam": "perturbation", "ablationcam": "perturbation", "fullgrad": "pixel attribution",
               "shapleycam": "one-pass CAMs", "finercam": "one-pass CAMs"}


METHODS: Registry[MethodSpec] = Registry("method")


def _add(key: str, display_name: str, description: str, cost: str, paper: str, kind: str,
         library_class: Optional[type] = None, uses_gradients: bool = True, slow: bool = False) -> None:
    METHODS.add(key, MethodSpec(key, display_name, description, cost, paper, kind, library_class,
                                uses_gradients, slow))


ONE_PASS = "one pass (shared with the other one-pass methods)"
_add("gradcam", "Grad-CAM", "Channels weighted by their spatially averaged gradient.", ONE_PASS,
     "Selvaraju et al., ICCV 2017, arXiv:1610.02391", "shared", pgc.GradCAM)
_add("hirescam", "HiResCAM", "Element-wise gradient x activation, summed over channels; provably faithful.",
     ONE_PASS, "Draelos & Carin, 2020, arXiv:2011.08891", "shared", pgc.HiResCAM)
_add("gradcam_elementwise", "Grad-CAM Element-Wise", "Like HiResCAM but with a ReLU on each gradient x activation term.",
     ONE_PASS, "pytorch-grad-cam (Gildenblat), 2021", "shared", pgc.GradCAMElementWise)
_add("gradcam++", "Grad-CAM++", "Weights from positive second-order gradients; better for several objects.",
     ONE_PASS, "Chattopadhyay et al., WACV 2018, arXiv:1710.11063", "shared", pgc.GradCAMPlusPlus)
_add("xgradcam", "XGrad-CAM", "Gradients weighted by normalized activations (axiom-based).", ONE_PASS,
     "Fu et al., BMVC 2020, arXiv:2008.02312", "shared", pgc.XGradCAM)
_add("layercam", "LayerCAM", "Positive gradients x activations per location; sharper at early layers.", ONE_PASS,
     "Jiang et al., IEEE TIP 2021, doi:10.1109/TIP.2021.3089943", "shared", pgc.LayerCAM)
_add("eigencam", "EigenCAM", "First principal component of the activations; class-agnostic, no gradients.",
     ONE_PASS, "Muhammad & Yeasin, IJCNN 2020, arXiv:2008.00299", "shared", pgc.EigenCAM, uses_gradients=False)
_add("eigengradcam", "EigenGrad-CAM", "First principal component of gradient x activation; class-specific.",
     ONE_PASS, "pytorch-grad-cam, after Muhammad & Yeasin 2020", "shared", pgc.EigenGradCAM)
_add("kpcacam", "KPCA-CAM", "First kernel-PCA component of the activations; class-agnostic.", ONE_PASS,
     "Karmani et al., 2024, arXiv:2410.00267", "shared", pgc.KPCA_CAM, uses_gradients=False)
_add("fem", "FEM", "Feature Explanation Method: channels weighted by their share of k-sigma outliers.",
     ONE_PASS, "Fuad et al., IPTA 2020, hal-02963298", "shared", pgc.FEM, uses_gradients=False)
_add("scorecam", "Score-CAM", "Each channel masks the input; weights are the softmaxed class scores.",
     "N passes (one per channel, batched)", "Wang et al., CVPR-W 2020, arXiv:1910.01279", "model",
     pgc.ScoreCAM, uses_gradients=False, slow=True)
_add("ablationcam", "Ablation-CAM", "Each channel is zeroed in turn; weights are the relative score drops.",
     "N passes (one per channel, batched)", "Desai & Ramaswamy, WACV 2020", "model", pgc.AblationCAM,
     uses_gradients=False, slow=True)
_add("fullgrad", "FullGrad", "Input gradients plus bias gradients of every layer; ignores the chosen layer.",
     "one forward + full backward through all layers", "Srinivas & Fleuret, NeurIPS 2019, arXiv:1905.00780",
     "model", pgc.FullGrad, slow=True)
_add("shapleycam", "ShapleyCAM", "Gradient and Hessian-vector product (Shapley value approximation).",
     "one forward + second-order backward", "Cai et al., 2025, arXiv:2501.06261", "model", pgc.ShapleyCAM,
     slow=True)
_add("finercam", "Finer-CAM", "Grad-CAM of the class minus its most similar classes: fine-grained differences.",
     "one forward + backward per compared class", "Zhang et al., CVPR 2025, arXiv:2501.11309", "model",
     pgc.FinerCAM, slow=True)
_add("guided_backprop", "Guided Backprop", "Input gradient with negative gradients stopped at every ReLU.",
     "one forward + full backward", "Springenberg et al., ICLR-W 2015, arXiv:1412.6806", "guided",
     pgc.GuidedBackpropReLUModel)
_add("guided_gradcam", "Guided Grad-CAM", "Guided Backprop multiplied by the Grad-CAM map.",
     "one forward + full backward, plus the shared pass", "Selvaraju et al., ICCV 2017", "guided")

ATTENTION_PASS = "the shared pass (attention recorded in the same forward)"
_add("attention_rollout", "Attention Rollout", "Attention of every layer (heads averaged, identity added) "
     "multiplied through the network; the class token's row. Class-agnostic; transformers only.",
     ATTENTION_PASS, "Abnar & Zuidema, ACL 2020, arXiv:2005.00928", "transformer", uses_gradients=False)
_add("transformer_attribution", "Transformer Attribution", "Gradient-weighted attention relevance propagated "
     "through the layers; the class token's row. Transformers only.", ATTENTION_PASS + " + one backward",
     "Chefer, Gur & Wolf, CVPR 2021, arXiv:2012.09838", "transformer")
_add("legrad", "LeGrad", "Per block, the gradient of the class score read at that block w.r.t. its attention; "
     "averaged over blocks. Transformers only.", ATTENTION_PASS + " + one backward per block",
     "Bousselham et al., 2024, arXiv:2404.03214", "transformer")


def _extra(key: str, display_name: str, description: str, cost: str, paper: str, family: str,
           uses_gradients: bool = True, slow: bool = False, min_layers: int = 1) -> None:
    METHODS.add(key, MethodSpec(key, display_name, description, cost, paper, "extra", None, uses_gradients, slow,
                                family, min_layers))


_extra("cam", "CAM", "The classifier's class weights over the globally pooled channels (GAP + linear models only).",
       ONE_PASS, "Zhou et al., CVPR 2016, arXiv:1512.04150", "one-pass CAMs", uses_gradients=False)
_extra("refinecam", "RefineCAM", "Grad-CAM++ maps of two or more layers multiplied: early layers denoised.",
       "one pass (shared), all chosen layers", "How to Evaluate and Refine your CAM, 2026, arXiv:2605.14641",
       "one-pass CAMs", min_layers=2)
_extra("occlusion", "Occlusion", "A sliding grey patch; each pixel gets the mean drop in the class score.",
       "N passes (one per patch position, batched)", "Zeiler & Fergus, ECCV 2014, arXiv:1311.2901",
       "perturbation", uses_gradients=False, slow=True)
_extra("sscam", "SS-CAM", "Score-CAM with Gaussian noise on each channel mask, averaged over samples.",
       "samples x channels passes (35 x N, batched)", "Wang et al., 2020, arXiv:2006.14255", "perturbation",
       uses_gradients=False, slow=True)
_extra("iscam", "IS-CAM", "Score-CAM with the masked input integrated from black over 10 steps.",
       "steps x channels passes (10 x N, batched)", "Naidu et al., 2020, arXiv:2010.03023", "perturbation",
       uses_gradients=False, slow=True)
_extra("smoothgradcam++", "Smooth Grad-CAM++", "Grad-CAM++ with gradients averaged over noisy copies of the input.",
       "one batched pass of 4 noisy copies", "Omeiza et al., 2019, arXiv:1908.01224", "smoothing")
_extra("integrated_gradients", "Integrated Gradients", "Input gradients averaged from a black image to the input.",
       "50 forward + full backward (batched)", "Sundararajan et al., ICML 2017, arXiv:1703.01365",
       "pixel attribution", slow=True)
_extra("randomcam", "RandomCAM", "Baseline: the layer's channels summed with random weights.", ONE_PASS,
       "pytorch-grad-cam; Arun et al., Radiology: AI 2021", "baselines", uses_gradients=False)
_extra("sobelcam", "SobelCAM", "Baseline: the image's edges (Sobel gradient magnitude); ignores the model.",
       "no pass (image only)", "pytorch-grad-cam; Arun et al., Radiology: AI 2021", "baselines",
       uses_gradients=False)


def family_of(spec: MethodSpec) -> str:
    """The picker group of a method."""
    return spec.family or _KEY_FAMILY.get(spec.key) or _KIND_FAMILY.get(spec.kind, "one-pass CAMs")


def grouped_methods(slow: bool | None = None, layers: int | None = None) -> list[tuple[str, list[MethodSpec]]]:
    """Methods by family, in ``FAMILIES`` order (unknown families last).

    Args:
        slow: only the slow (or only the fast) methods, when given.
        layers: only the methods that can run on this many layers, when given.
    """
    groups: dict[str, list[MethodSpec]] = {f: [] for f in FAMILIES}
    for spec in list_methods():
        if (slow is None or spec.slow == slow) and (layers is None or spec.min_layers <= layers):
            groups.setdefault(family_of(spec), []).append(spec)
    return [(family, specs) for family, specs in groups.items() if specs]


def picker_label(spec: MethodSpec) -> str:
    """How the method picker shows a method: its family, its name, its cost up front."""
    family = family_of(spec)
    return f"{family[:1].upper() + family[1:]} · {spec.display_name} — {spec.cost}"


def picker_options(slow: bool | None = None, layers: int | None = None) -> dict[str, str]:
    """{method key: picker label}, grouped by family: what a method multiselect lists."""
    return {spec.key: picker_label(spec) for _, specs in grouped_methods(slow, layers) for spec in specs}


def resolve_method(name: str) -> MethodSpec:
    """Find a method by key or display name (case-insensitive)."""
    from ..errors import MethodError

    wanted = name.strip().lower()
    for key, spec in METHODS.items():
        if wanted in (key, spec.display_name.lower(), spec.display_name.lower().replace("-", "")):
            return spec
    raise MethodError(f"Unknown method {name!r}. Known methods: {', '.join(METHODS)}.")


def list_methods() -> list[MethodSpec]:
    return [spec for _, spec in METHODS.items()]
