"""Private per-call copies of a shared model, so hooks never touch the shared object.

Streamlit sessions share one cached model across threads. A forward hook put on
that model would fire in every thread, and ``.grad`` written by a backward pass
would land on shared parameters. So each call borrows a *shell clone*: new
Module objects (own hook dicts, own ``_modules``) whose Parameters are new
``nn.Parameter`` objects viewing the SAME storage (no weight copy), with the
buffers shared as they are. Clones are pooled per model and reused.
"""
from __future__ import annotations

import copy
import threading
import weakref
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


def shell_clone(model: nn.Module) -> nn.Module:
    """A structural copy of ``model`` that shares weight storage but no Python state.

    Returns:
        A module in eval mode; its parameters are distinct Parameter objects
        (so ``.grad`` and hooks on them stay private) backed by the same memory.
    """
    memo: dict[int, object] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(param.detach(), requires_grad=param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = buffer  # read-only in eval mode: safe to share
    clone = copy.deepcopy(model, memo)
    clone.eval()
    return clone


def has_hooks(model: nn.Module) -> bool:
    """True if any module or parameter of ``model`` carries a hook."""
    if any(_module_hooked(module) for module in model.modules()):
        return True
    return any(getattr(p, "_backward_hooks", None) for p in model.parameters())


class ClonePool:
    """Clones of one model, handed to one caller at a time."""

    def __init__(self, model: nn.Module) -> None:
        self._model_ref = weakref.ref(model)
        self._free: list[tuple[nn.Module, list[nn.Module], list[nn.Parameter]]] = []
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self) -> Iterator[nn.Module]:
        with self._lock:
            entry = self._free.pop() if self._free else None
        if entry is None:
            model = self._model_ref()
            if model is None:
                raise RuntimeError("the model was released while being explained")
            clone = shell_clone(model)
            # walked once here: named_modules() on every call costs more than a small model's head
            entry = (clone, list(clone.modules()), list(clone.parameters()))
        try:
            yield entry[0]
        finally:
            if not any(_module_hooked(m) for m in entry[1]):  # never reuse a clone a hook escaped from
                for param in entry[2]:
                    if param.grad is not None:
                        param.grad = None
                with self._lock:
                    if len(self._free) < 8:
                        self._free.append(entry)

    def free_clones(self) -> list[nn.Module]:
        with self._lock:
            return [entry[0] for entry in self._free]


def _module_hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks)


_POOLS: "weakref.WeakKeyDictionary[nn.Module, ClonePool]" = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


@contextmanager
def borrowed_clone(model: nn.Module) -> Iterator[nn.Module]:
    """Borrow a private clone of ``model`` for the duration of the ``with`` block."""
    with _POOLS_LOCK:
        pool = _POOLS.get(model)
        if pool is None:
            pool = _POOLS[model] = ClonePool(model)
    with pool.borrow() as clone:
        yield clone


def module_by_name(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (as in ``named_modules``), or KeyError."""
    modules = dict(model.named_modules())
    return modules[name]


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where ``name`` is; used on clones only."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def parameters_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter and buffer (for tests that prove nothing changed)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
