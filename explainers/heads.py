"""Probabilities from logits, as the model's head defines them.

A softmax head picks one class: probabilities over all classes sum to 1. A sigmoid head
(multi-label, or a single-logit binary head) scores each label on its own: sigmoid(logit)
per label, never a softmax.
"""
from __future__ import annotations

import torch

HEADS = ("softmax", "sigmoid")
INDEPENDENT = "independent labels"  # how a sigmoid head's probabilities are shown


def probabilities(logits: torch.Tensor, head: str = "softmax") -> torch.Tensor:
    """(..., K) logits -> (..., K) probabilities: softmax over K, or sigmoid per label."""
    logits = logits.detach().float()
    if head == "sigmoid":
        return torch.sigmoid(logits)
    if head != "softmax":
        raise ValueError(f"unknown head {head!r}; heads are {', '.join(HEADS)}")
    return torch.softmax(logits, dim=-1)


def probability_caption(head: str) -> str:
    """What the probabilities mean, for charts and reports."""
    return f"probability ({INDEPENDENT}: sigmoid per label)" if head == "sigmoid" else "probability (softmax)"
