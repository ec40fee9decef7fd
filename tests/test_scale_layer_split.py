"""The model cut at its target layer: frozen below, autograd above; same outputs and gradients as eager."""
from __future__ import annotations

import torch
from torch import nn

from explainers.clones import has_hooks, parameters_snapshot, shell_clone
from explainers.methods.shared_pass import forward_capture
from explainers.scale.layer_split import split_at


class SkipPastTheLayer(nn.Module):
    """conv -> bn -> [layer: conv] -> in-place ReLU, plus the bn output carried past the layer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.layer, self.relu = nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(inplace=True)
        self.head = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        early = self.bn(self.stem(x))
        late = self.relu(self.layer(early))  # in place on the layer's output
        return self.head((late + early).mean((2, 3)))


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer, self.head = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x)
        if y.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            y = y * 2
        return self.head(y.mean((2, 3)))


def _model(cls: type) -> nn.Module:
    torch.manual_seed(0)
    model = cls().eval()
    if hasattr(model, "bn"):  # BatchNorm statistics that folding must reproduce
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    return model


def _eager(model: nn.Module, x: torch.Tensor, layers: list[str], target: int):
    capture = forward_capture(shell_clone(model), x, layers, True)
    grads = torch.autograd.grad(capture.logits[:, target].sum(), [capture.outputs[n] for n in layers])
    return capture, grads


def test_split_equals_eager_with_a_skip_connection_and_in_place_ops():
    model, x = _model(SkipPastTheLayer), torch.randn(4, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    before = parameters_snapshot(model)
    split = split_at(model, ["layer"], x[:2])
    assert split is not None and isinstance(split.lower, torch.jit.ScriptModule)  # frozen below the layer
    got = split.capture(x, with_grads=True)  # a batch size the split was not built with
    (grad,) = torch.autograd.grad(got.logits[:, 3].sum(), [got.outputs["layer"]])
    want, (want_grad,) = _eager(model, x, ["layer"], 3)
    assert torch.allclose(got.logits, want.logits, atol=1e-5)
    assert torch.allclose(got.outputs["layer"], want.outputs["layer"], atol=1e-5)  # not the ReLU'd values
    assert got.outputs["layer"].min() < 0  # ... which the in-place ReLU would have clipped
    assert torch.allclose(grad, want_grad, atol=1e-6)
    assert not has_hooks(model) and all(torch.equal(v, before[k]) for k, v in parameters_snapshot(model).items())
    assert split_at(model, ["layer"], x[:2]) is split  # built once per model, layers and input shape


def test_two_layers_the_later_one_captured_above_the_cut():
    model, x = _model(SkipPastTheLayer), torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    split = split_at(model, ["layer", "bn"], x)
    assert split is not None and split.layers == ("bn", "layer")  # cut at the first one the model runs
    got = split.capture(x, with_grads=True)
    grads = torch.autograd.grad(got.logits[:, 0].sum(), [got.outputs["bn"], got.outputs["layer"]])
    want, want_grads = _eager(model, x, ["bn", "layer"], 0)
    for name, g, w in zip(["bn", "layer"], grads, want_grads):
        assert torch.allclose(got.outputs[name], want.outputs[name], atol=1e-5)
        assert torch.allclose(g, w, atol=1e-6)


def test_an_untraceable_model_is_not_split():
    model = _model(Untraceable)
    assert split_at(model, ["layer"], torch.randn(1, 3, 8, 8)) is None  # explain_batch then runs it eagerly


def test_out_of_memory_while_building_is_raised_and_not_remembered(monkeypatch):
    import pytest

    from explainers.scale import layer_split

    model, x = _model(SkipPastTheLayer), torch.randn(2, 3, 8, 8)
    real = layer_split._frozen
    monkeypatch.setattr(layer_split, "_frozen", lambda *a: (_ for _ in ()).throw(torch.OutOfMemoryError("fake")))
    with pytest.raises(torch.OutOfMemoryError):  # explain_batch turns it into a halved batch
        split_at(model, ["layer"], x)
    monkeypatch.setattr(layer_split, "_frozen", real)
    assert split_at(model, ["layer"], x) is not None  # the next try builds it
