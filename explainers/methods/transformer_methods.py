"""Transformer-native explanations from the attention captured in the shared forward pass.

  attention_rollout        Abnar & Zuidema, ACL 2020: heads fused (mean), identity added, rows
                           renormalized, the product over all layers, the class token's row.
  transformer_attribution  Chefer, Gur & Wolf, CVPR 2021: gradient-weighted attention relevance
                           R <- R + E_h[(dA * A)+] R propagated through the layers (the LRP-free
                           rule of their ICCV 2021 follow-up), the class token's row.
  legrad                   Bousselham et al. 2024: for each block, the head applied to that block's
                           mean token; its gradient w.r.t. the block's attention, positive part,
                           averaged over heads and queries; averaged over blocks (as TorchCAM 0.5).

Attention probabilities are read where each library computes them: torchvision's
nn.MultiheadAttention (asked for per-head weights, its output recomputed from them so they
are on the graph, as TorchCAM does), timm's ``attn_drop`` (fused attention turned off on the
private clone), and Hugging Face attention modules returning (output, weights) (eager attention).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MethodError
from ..models.token_layout import TokenLayout, token_layout

ATTENTION_LAYER = "(attention, all blocks)"  # the "layer" of a transformer-native map
NEEDS_GRADIENTS = ("transformer_attribution", "legrad")


def _is_hf_attention(module: nn.Module) -> bool:
    name = type(module).__name__
    return name.endswith("Attention") and not name.endswith("SelfAttention") and hasattr(module, "config")


def attention_sources(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules whose forward produces attention probabilities, in module order."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention) or _is_hf_attention(module):
            out.append((name, module))
        elif hasattr(module, "fused_attn") and isinstance(getattr(module, "attn_drop", None), nn.Module):
            out.append((f"{name}.attn_drop" if name else "attn_drop", module.attn_drop))
    return out


def _block_of(model: nn.Module, name: str) -> Optional[str]:
    """The transformer block holding an attention: the nearest ancestor with a LayerNorm child."""
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        ancestor = ".".join(parts[:end])
        if any(isinstance(child, nn.LayerNorm) for child in model.get_submodule(ancestor).children()):
            return ancestor
    return None


@dataclass
class AttentionRecorder:
    """Hooks for ONE forward pass of a private clone: every block's attention and output tokens."""

    clone: nn.Module
    layout: TokenLayout
    attentions: list[torch.Tensor] = field(default_factory=list)  # (1, heads, N, N) per block, forward order
    blocks: list[torch.Tensor] = field(default_factory=list)  # (1, N, C) per block
    _handles: list = field(default_factory=list)

    @classmethod
    def for_model(cls, clone: nn.Module, layout: Optional[TokenLayout], input_size: tuple[int, int],
                  method_name: str) -> "AttentionRecorder":
        sources = attention_sources(clone)
        layout = layout or token_layout(clone, input_size)
        if not sources or layout is None or layout.prefix_tokens < 1:
            raise MethodError(f"{method_name} explains vision transformers with a class token; this model has "
                              "no such self-attention (a CNN, or windowed attention as in Swin): "
                              "pick a CAM method such as Grad-CAM.")
        return cls(clone, layout)

    def attach(self) -> None:
        """Add the hooks (removed by ``detach``, which the caller runs in ``finally``)."""
        for name, module in attention_sources(self.clone):
            if isinstance(module, nn.MultiheadAttention):
                self._handles.append(module.register_forward_pre_hook(_ask_weights, with_kwargs=True))
                self._handles.append(module.register_forward_hook(self._torch_attention, with_kwargs=True))
            elif isinstance(module, nn.Dropout):
                parent = self.clone.get_submodule(name.rsplit(".", 1)[0]) if "." in name else self.clone
                parent.fused_attn = False  # the clone is private: the shared model keeps its fused kernel
                self._handles.append(module.register_forward_hook(self._tensor_attention))
            else:
                self._handles.append(module.register_forward_hook(self._tuple_attention))
            block = _block_of(self.clone, name)
            if block is not None:
                self._handles.append(self.clone.get_submodule(block).register_forward_hook(self._block))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _keep(self, attention: Optional[torch.Tensor]) -> None:
        if isinstance(attention, torch.Tensor) and attention.dim() == 4 and attention.shape[-1] == attention.shape[-2]:
            self.attentions.append(attention)

    def _tensor_attention(self, _m, _inputs, output) -> None:
        self._keep(output)

    def _tuple_attention(self, _m, _inputs, output) -> None:
        if isinstance(output, tuple) and len(output) > 1:
            self._keep(output[1])

    def _torch_attention(self, module: nn.MultiheadAttention, inputs, _kwargs, output):
        attention, value = output[1], inputs[2]  # (B, heads, N, N), (B, N, C)
        # nn.MultiheadAttention returns a copy of its weights, off the graph: recompute the output from them
        b, n, c = value.shape
        v = F.linear(value, module.in_proj_weight[2 * c:], None if module.in_proj_bias is None else
                     module.in_proj_bias[2 * c:]).reshape(b, n, module.num_heads, c // module.num_heads).transpose(1, 2)
        out = module.out_proj(torch.matmul(attention, v).transpose(1, 2).reshape(b, n, c))
        self._keep(attention)
        return out, None

    def _block(self, _m, _inputs, output) -> None:
        if isinstance(output, tuple):
            output = output[0]
        if isinstance(output, torch.Tensor) and output.dim() == 3:
            self.blocks.append(output)

    # --- the maps -----------------------------------------------------------------------------------

    def _check(self, method_name: str) -> None:
        n = self.layout.prefix_tokens + self.layout.grid[0] * self.layout.grid[1]
        if not self.attentions or any(a.shape[-1] != n for a in self.attentions):
            raise MethodError(f"{method_name} needs global self-attention over the class token and all "
                              f"{self.layout.grid[0]} x {self.layout.grid[1]} patches; this model's attention "
                              "does not cover them (windowed or pooled attention).")

    def _class_row(self, relevance: torch.Tensor) -> torch.Tensor:
        h, w = self.layout.grid
        return relevance[0, 0, self.layout.prefix_tokens:].reshape(h, w)  # the class token's row

    def rollout(self, head_fusion: str = "mean", discard_ratio: float = 0.0) -> torch.Tensor:
        """(h, w) attention rollout; the paper's defaults: mean over heads, nothing discarded."""
        self._check("Attention rollout")
        with torch.no_grad():
            n = self.attentions[0].shape[-1]
            eye = torch.eye(n, device=self.attentions[0].device)
            result = eye[None]
            for attention in self.attentions:
                fused = fuse_heads(attention.float(), head_fusion)  # (1, N, N)
                if discard_ratio > 0:
                    fused = _discard_lowest(fused, discard_ratio)
                a = fused + eye
                a = a / a.sum(dim=-1, keepdim=True)
                result = a @ result
            return self._class_row(result)

    def attribution(self, score: torch.Tensor) -> torch.Tensor:
        """(h, w) gradient-weighted attention relevance for ``score`` (a scalar on the graph)."""
        self._check("Transformer attribution")
        grads = torch.autograd.grad(score, self.attentions, retain_graph=True, allow_unused=True)
        with torch.no_grad():
            n = self.attentions[0].shape[-1]
            relevance = torch.eye(n, device=score.device)[None]
            for attention, grad in zip(self.attentions, grads):
                grad = torch.zeros_like(attention) if grad is None else grad
                weighted = (grad * attention).float().clamp(min=0).mean(dim=1)  # (1, N, N): E_h[(dA * A)+]
                relevance = relevance + weighted @ relevance
            return self._class_row(relevance)

    def legrad(self, target: Callable[[torch.Tensor], torch.Tensor], projection: Callable) -> torch.Tensor:
        """(h, w) LeGrad: per block, d head(norm(mean token)) / d attention, positive, averaged."""
        self._check("LeGrad")
        if len(self.blocks) != len(self.attentions):
            raise MethodError("LeGrad could not pair each attention with its block's output tokens.")
        maps = []
        for index, (tokens, attention) in enumerate(zip(self.blocks, self.attentions)):
            score = target(projection(tokens)).sum()
            (grad,) = torch.autograd.grad(score, attention, retain_graph=True)
            maps.append(grad.float().relu().mean(dim=(1, 2))[0, self.layout.prefix_tokens:])  # (h*w,)
        h, w = self.layout.grid
        return torch.stack(maps).mean(dim=0).reshape(h, w).detach()


def fuse_heads(attention: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """(B, heads, N, N) -> (B, N, N): mean, max or min over heads."""
    if how == "mean":
        return attention.mean(dim=1)
    if how == "max":
        return attention.max(dim=1).values
    if how == "min":
        return attention.min(dim=1).values
    raise MethodError(f"Head fusion must be mean, max or min, not {how!r}.")


def _discard_lowest(fused: torch.Tensor, ratio: float) -> torch.Tensor:
    # as in the rollout reference code (jacobgil/vit-explain): zero the lowest weights, never the class token's
    flat = fused.reshape(fused.shape[0], -1).clone()
    k = int(flat.shape[-1] * ratio)
    _, indices = flat.topk(k, dim=-1, largest=False)
    for row, idx in zip(flat, indices):
        row[idx[idx != 0]] = 0
    return flat.reshape(fused.shape)


def _ask_weights(_module, args, kwargs):
    # nn.MultiheadAttention(q, k, v, key_padding_mask, need_weights, attn_mask, average_attn_weights)
    args, kwargs = list(args), dict(kwargs)
    for position, key, value in ((4, "need_weights", True), (6, "average_attn_weights", False)):
        if len(args) > position:
            args[position] = value
        else:
            kwargs[key] = value
    return tuple(args), kwargs


def score_projection(clone: nn.Module, num_logits: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """tokens (B, N, C) -> logits (B, K): the model's final LayerNorm and classifier on the mean token."""
    linears = [(n, m) for n, m in clone.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_logits]
    if not linears:
        raise MethodError("LeGrad needs the model's classifier (a linear layer with one output per class); "
                          "this model has none (a single-logit head, or a custom head).")
    head_name, head = linears[-1]
    norms = [m for n, m in clone.named_modules() if isinstance(m, nn.LayerNorm) and
             tuple(m.normalized_shape) == (head.in_features,) and not _inside_block(n)]
    norm = norms[-1] if norms else nn.Identity()
    return lambda tokens: head(norm(tokens.mean(dim=1)))


def _inside_block(name: str) -> bool:
    return any(part.isdigit() or part.startswith("encoder_layer_") for part in name.split("."))


def transformer_maps(recorder: AttentionRecorder, keys: list[str], targets: list, logits: torch.Tensor,
                     options: Optional[dict] = None) -> dict[tuple[str, int], "np.ndarray"]:
    """{(method key, target number): (h, w) raw map} from one recorded forward pass.

    ``options["attention_rollout"]`` may set ``head_fusion`` (mean, max, min) and ``discard_ratio``.
    """
    import numpy as np

    out: dict[tuple[str, int], np.ndarray] = {}
    projection = score_projection(recorder.clone, int(logits.shape[-1])) if "legrad" in keys else None
    rollout_options = dict((options or {}).get("attention_rollout", {}))
    unknown = sorted(set(rollout_options) - {"head_fusion", "discard_ratio"})
    if unknown:
        raise MethodError(f"Attention rollout has no option {unknown[0]!r}; its options are head_fusion and "
                          "discard_ratio.")
    ratio = rollout_options.get("discard_ratio", 0.0)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise MethodError(f"The discard ratio must be a number from 0 to below 1, not {ratio!r}.")
    rollout = (recorder.rollout(rollout_options.get("head_fusion", "mean"), float(ratio))
               if "attention_rollout" in keys else None)  # class-agnostic: once
    for t_i, target in enumerate(targets):
        if rollout is not None:
            out[("attention_rollout", t_i)] = rollout.cpu().numpy().astype(np.float32)
        if "transformer_attribution" in keys:
            out[("transformer_attribution", t_i)] = recorder.attribution(
                target(logits).sum()).cpu().numpy().astype(np.float32)
        if projection is not None:
            out[("legrad", t_i)] = recorder.legrad(target, projection).cpu().numpy().astype(np.float32)
    return out
