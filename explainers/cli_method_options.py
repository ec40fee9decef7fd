"""The command line's method options: ``--aug-smooth``, ``--eigen-smooth``, a noise tunnel, occlusion's patch."""
from __future__ import annotations

import argparse

from .methods.options import NOISE_TUNNEL_TYPES, MethodOptions, NoiseTunnel


def add_method_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("method options")
    g.add_argument("--aug-smooth", action="store_true",
                   help="pytorch-grad-cam's test-time augmentation (flips x brightness), for one-pass CAMs")
    g.add_argument("--eigen-smooth", action="store_true",
                   help="first principal component of the weighted activations instead of their sum")
    g.add_argument("--noise-tunnel", choices=NOISE_TUNNEL_TYPES, default=None,
                   help="average maps of noisy copies (Captum's NoiseTunnel) for gradient methods")
    g.add_argument("--nt-samples", type=int, default=5, metavar="N", help="noise tunnel samples (default: 5)")
    g.add_argument("--nt-std", type=float, default=1.0, metavar="S", help="noise tunnel std (default: 1.0)")
    g.add_argument("--occlusion-window", type=int, default=32, metavar="PX", help="occlusion patch (default: 32)")
    g.add_argument("--occlusion-stride", type=int, default=16, metavar="PX", help="occlusion step (default: 16)")
    g.add_argument("--rollout-fusion", default="mean", choices=("mean", "max", "min"),
                   help="attention rollout: how heads are fused (default: mean, as the paper)")
    g.add_argument("--rollout-discard", type=float, default=0.0, metavar="RATIO",
                   help="attention rollout: share of the lowest attention weights dropped (default: 0)")


def method_options(args: argparse.Namespace) -> MethodOptions:
    tunnel = (NoiseTunnel(args.noise_tunnel, args.nt_samples, args.nt_std) if args.noise_tunnel else None)
    return MethodOptions(aug_smooth=args.aug_smooth, eigen_smooth=args.eigen_smooth, noise_tunnel=tunnel,
                         occlusion_window=args.occlusion_window, occlusion_stride=args.occlusion_stride,
                         rollout_head_fusion=args.rollout_fusion, rollout_discard_ratio=args.rollout_discard)


def options_summary(options: MethodOptions) -> dict:
    """The options as plain data, for summary.json."""
    tunnel = options.noise_tunnel
    return {"aug_smooth": options.aug_smooth, "eigen_smooth": options.eigen_smooth,
            "noise_tunnel": None if tunnel is None else {"type": tunnel.kind, "samples": tunnel.samples,
                                                         "std": tunnel.std},
            "occlusion_window": options.occlusion_window, "occlusion_stride": options.occlusion_stride,
            "attention_rollout": {"head_fusion": options.rollout_head_fusion,
                                  "discard_ratio": options.rollout_discard_ratio}}
