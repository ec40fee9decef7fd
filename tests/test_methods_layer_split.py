"""The model cut at its target layer (the batched engine and Smooth Grad-CAM++ both run through it):
frozen below, autograd above; same outputs and gradients as eager."""
from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from explainers.clones import has_hooks, parameters_snapshot, shell_clone
from explainers.methods import layer_split
from explainers.methods.layer_split import KEPT_PER_MODEL, split_at
from explainers.methods.shared_pass import forward_capture, layer_gradients
from explainers.models.spec import Preprocessing


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
    model, x = _model(SkipPastTheLayer), torch.randn(2, 3, 8, 8)
    real = layer_split._frozen
    monkeypatch.setattr(layer_split, "_frozen", lambda *a: (_ for _ in ()).throw(torch.OutOfMemoryError("fake")))
    with pytest.raises(torch.OutOfMemoryError):  # explain_batch turns it into a halved batch
        split_at(model, ["layer"], x)
    monkeypatch.setattr(layer_split, "_frozen", real)
    assert split_at(model, ["layer"], x) is not None  # the next try builds it


class Skip(nn.Module):
    """A skip connection across the layer "b" and an in-place ReLU on its output: both must survive the cut."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.bn = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.b, self.c = nn.Conv2d(6, 6, 3, padding=1), nn.Conv2d(6, 6, 1)
        self.fc = nn.Linear(6, 4)
        self.bn.running_mean.uniform_(-0.5, 0.5), self.bn.running_var.uniform_(0.5, 2)
        self.eval()

    def forward(self, x):
        h = self.bn(self.a(x))
        y = self.b(h).relu_()
        return self.fc((self.c(y) + h).mean(dim=(2, 3)))


@pytest.mark.parametrize("mkldnn", [False, True])  # the engine's kernels, Smooth Grad-CAM++'s
@pytest.mark.parametrize("layers", [["b"], ["c", "b"], ["a", "c"]])
def test_every_layer_gets_the_eager_output_and_gradient(layers, mkldnn, cat_image):
    small_x = Preprocessing(input_size=(32, 32), interpolation="bilinear").to_tensor(cat_image)
    model, x = Skip(), small_x.repeat(3, 1, 1, 1) + 0.1 * torch.randn(3, 3, 32, 32)
    split = split_at(model, layers, small_x, mkldnn=mkldnn)
    assert split is not None and sorted(split.layers) == sorted(layers) and split.fuse is not mkldnn
    got = split.capture(x, with_grads=True)
    capture = forward_capture(model, x, layers, with_grads=True)
    target = ClassifierOutputTarget(2)
    ours = layer_gradients(got, target, layers)
    for n, theirs in layer_gradients(capture, target, layers).items():
        assert torch.allclose(got.outputs[n], capture.outputs[n], atol=1e-5)
        assert torch.allclose(ours[n], theirs, atol=1e-6) and float(theirs.abs().max()) > 0

    class Branchy(nn.Module):  # data-dependent control flow: fx cannot trace it, the eager path stays
        def forward(self, x):
            return x.mean(dim=(2, 3)) if float(x.sum()) > 0 else -x.mean(dim=(2, 3))
    assert split_at(Branchy(), ["a"], small_x) is None


def test_a_few_cuts_are_kept_per_model_the_least_recently_used_dropped():
    model, x = _model(SkipPastTheLayer), torch.randn(1, 3, 8, 8)
    sizes = [(8 + i, 8) for i in range(KEPT_PER_MODEL + 1)]
    first = split_at(model, ["layer"], x)
    kept = [split_at(model, ["layer"], torch.randn(1, 3, *size)) for size in sizes[1:KEPT_PER_MODEL]]
    assert split_at(model, ["layer"], x) is first  # used again: now the most recent
    split_at(model, ["layer"], torch.randn(1, 3, *sizes[-1]))  # one more than KEPT_PER_MODEL: the oldest goes
    assert split_at(model, ["layer"], torch.randn(1, 3, *sizes[1])) is not kept[0]
    assert split_at(model, ["layer"], x) is first and len(layer_split._SPLITS[model]) == KEPT_PER_MODEL


def test_the_onednn_fuser_is_switched_on_only_while_the_frozen_part_runs():
    model, x = _model(SkipPastTheLayer), torch.randn(2, 3, 8, 8)
    before = torch.jit.onednn_fusion_enabled()
    split_at(model, ["layer"], x).capture(x, with_grads=False)
    assert torch.jit.onednn_fusion_enabled() == before


def test_lite0_runs_through_the_cut_model(lite0, cat_image):
    from explainers.batch import batch_tensor

    for layers in (["bn2"], ["bn2", "blocks.5"]):  # frozen below the first layer the model runs, not eager
        split = split_at(lite0.module, layers, batch_tensor(lite0, [cat_image]))
        assert split is not None and isinstance(split.lower, torch.jit.ScriptModule) and split.layers[0] == layers[-1]
