"""Options that change how a map method is computed: pytorch-grad-cam's smoothings and Captum's noise tunnel."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..errors import MethodError

NOISE_TUNNEL_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")  # as Captum's NoiseTunnel names them

# Draws noise of a given shape. Injectable so tests can hand a method the very tensors a library drew.
NoiseSource = Callable[[tuple[int, ...]], torch.Tensor]


def gaussian_noise(std: float, seed: int = 0, device: torch.device | str = "cpu") -> NoiseSource:
    """Zero-mean Gaussian noise drawn on ``device`` from a seeded generator (reproducible maps)."""
    generator = torch.Generator(device=device).manual_seed(seed)

    def draw(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=device) * std

    return draw


@dataclass(frozen=True)
class NoiseTunnel:
    """Captum's NoiseTunnel: ``samples`` noisy copies of the input (noise std ``std``, in model-input units)."""

    kind: str = "smoothgrad"  # smoothgrad | smoothgrad_sq | vargrad
    samples: int = 5  # Captum's default nt_samples
    std: float = 1.0  # Captum's default stdevs

    def __post_init__(self) -> None:
        if self.kind not in NOISE_TUNNEL_TYPES:
            raise MethodError(f"Unknown noise tunnel {self.kind!r}; use one of: {', '.join(NOISE_TUNNEL_TYPES)}.")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise MethodError(f"The noise tunnel needs a positive whole number of samples, not {self.samples!r}.")
        if not self.std >= 0:
            raise MethodError(f"The noise tunnel's standard deviation must be 0 or more, not {self.std!r}.")

    def noisy_copies(self, x: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
        """``samples`` copies of the (1, 3, H, W) ``x`` plus noise drawn in one call, as Captum draws it: (N, 3, H, W)."""
        return x + noise((self.samples, *x.shape[1:])).to(x.device, x.dtype)

    def combine(self, maps: torch.Tensor) -> torch.Tensor:
        """Captum's ``_compute_smoothing`` over the sample axis (0)."""
        mean = maps.mean(dim=0)
        if self.kind == "smoothgrad":
            return mean
        mean_sq = (maps * maps).mean(dim=0)
        return mean_sq if self.kind == "smoothgrad_sq" else mean_sq - mean * mean


@dataclass(frozen=True)
class MethodOptions:
    """How the maps of one ``explain`` call are computed.

    Args:
        aug_smooth: pytorch-grad-cam's test-time augmentation (flips x brightness 0.9/1/1.1, maps averaged),
            for the one-pass CAMs; the 6 copies go through one batched pass.
        eigen_smooth: the first principal component of the weighted activations instead of their sum.
        noise_tunnel: average the maps of noisy copies (one batched pass) for gradient methods.
        occlusion_window / occlusion_stride: patch side and step in model-input pixels.
        occlusion_fill: the value the patch is filled with, in model-input (normalized) units; 0 is the mean colour.
        smooth_samples / smooth_std: Smooth Grad-CAM++ (TorchCAM's defaults 4 and 0.3).
        sscam_samples / sscam_std: SS-CAM (TorchCAM's defaults 35 and 2.0); iscam_samples: IS-CAM (10).
        ig_steps: Integrated Gradients' steps (Captum's default 50, Gauss-Legendre).
        seed: seeds every random draw (noise, RandomCAM), so a map is reproducible.
        frozen_inference: run occlusion, SS-CAM and IS-CAM on a frozen TorchScript copy of the model
            (BatchNorm folded; 2-3x faster on a CPU; built once per model, see ``inference_copy.py``).
        rollout_head_fusion / rollout_discard_ratio: attention rollout's head fusion (mean, max, min) and the
            share of the lowest attention weights dropped.
        noise: inject the noise source instead (tests pass a library's own draws).
    """

    aug_smooth: bool = False
    eigen_smooth: bool = False
    noise_tunnel: Optional[NoiseTunnel] = None
    occlusion_window: int = 32
    occlusion_stride: int = 16
    occlusion_fill: float = 0.0
    smooth_samples: int = 4
    smooth_std: float = 0.3
    sscam_samples: int = 35
    sscam_std: float = 2.0
    iscam_samples: int = 10
    ig_steps: int = 50
    seed: int = 0
    frozen_inference: bool = True
    rollout_head_fusion: str = "mean"  # attention rollout (Abnar & Zuidema's defaults: mean, no discard)
    rollout_discard_ratio: float = 0.0
    noise: Optional[NoiseSource] = None

    def __post_init__(self) -> None:
        if self.aug_smooth and self.noise_tunnel is not None:
            raise MethodError("Pick either aug-smooth or a noise tunnel, not both.")
        for name in ("occlusion_window", "occlusion_stride", "smooth_samples", "sscam_samples", "iscam_samples",
                     "ig_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MethodError(f"{name.replace('_', ' ').capitalize()} must be a positive whole number, "
                                  f"not {value!r}.")
        if self.occlusion_stride > self.occlusion_window:
            raise MethodError("The occlusion stride cannot be larger than its window (pixels would be skipped).")

    def noise_source(self, std: float, device: torch.device) -> NoiseSource:
        return self.noise if self.noise is not None else gaussian_noise(std, self.seed, device)

    def suffix(self) -> str:
        """What to append to a map's method name when these options changed it."""
        parts = (["aug-smooth"] if self.aug_smooth else []) + (["eigen-smooth"] if self.eigen_smooth else [])
        if self.noise_tunnel is not None:
            parts.append(f"{self.noise_tunnel.kind} x{self.noise_tunnel.samples}")
        return f" ({', '.join(parts)})" if parts else ""
