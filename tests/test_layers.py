"""Which layers make a map of their own, the default layer set of Compare layers, and depth ranges."""
from __future__ import annotations

import torch
import torchvision

from explainers.comparisons import layers_in_range, stage_layers
from explainers.pipeline import explain
from explainers.layers import list_layers
from explainers.models.spec import wrap_module


def _outputs(model, names: set[str]) -> dict[str, torch.Tensor]:
    """Every named module's first output (cloned at hook time) for one random image."""
    seen: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda _m, _i, out, n=n: seen.setdefault(n, out.clone()))
               for n, m in model.module.named_modules() if n in names]
    try:
        with torch.no_grad():
            model.module(torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def test_embedded_model_hides_modules_without_a_map_of_their_own(lite0):
    layers = {i.name: i for i in list_layers(lite0)}
    for name in ("bn1.act", "bn1.drop", "blocks.1.1.drop_path", "blocks.2.1.se"):  # ReLU6, Identity
        assert not layers[name].makes_own_map, name
    assert layers["blocks.1"].same_map_as == "blocks.1.1"  # a stage repeats its last block
    assert layers["blocks.1.0"].same_map_as == "blocks.1.0.bn3"  # a block without skip repeats its last BN
    assert layers["blocks"].same_map_as == "blocks.6.0.bn3" and not layers["blocks"].makes_own_map
    for name in ("conv_stem", "bn1", "blocks.1.1", "blocks.1.0.bn3", "conv_head", "bn2"):
        assert layers[name].makes_own_map, name
    assert layers["bn2"].recommended
    shown = [i for i in layers.values() if i.makes_own_map and i.spatial]
    assert len(shown) == 108 and len([i for i in layers.values() if i.spatial]) == 262


def test_a_repeat_has_exactly_the_output_of_the_layer_it_names():
    model = wrap_module(torchvision.models.resnet18(), [str(i) for i in range(1000)], "layer4")
    layers = {i.name: i for i in list_layers(model)}
    # in-place `out += identity; relu(out)` changes the values of bn2's tensor: the block makes its own map
    assert layers["layer1.0"].makes_own_map and layers["layer1.0.bn2"].makes_own_map
    assert layers["layer1"].same_map_as == "layer1.1" and not layers["relu"].makes_own_map
    # the recommended layer is always listed; the block it repeats points to it instead
    assert layers["layer4"].makes_own_map and layers["layer4.1"].same_map_as == "layer4"
    repeats = {n: i.same_map_as for n, i in layers.items() if i.same_map_as}
    outputs = _outputs(model, set(repeats) | set(repeats.values()))
    for name, original in repeats.items():
        assert torch.equal(outputs[name], outputs[original]), (name, original)
    assert len(repeats) == 7  # layer1-3, layer4.1 and the three downsample Sequentials


def test_default_layers_of_compare_layers_all_give_a_map(lite0, cat_image):
    names = stage_layers(list_layers(lite0))
    assert names == ["blocks.1.1", "blocks.2.1", "blocks.4.2", "bn2"]
    results = explain(lite0, cat_image, ["gradcam"], layers=names).results
    peaks = {r.layer: float(r.raw.max()) for r in results}
    assert all(peak > 0 for peak in peaks.values()), peaks  # bn1, the old first panel, is all zero here
    assert float(explain(lite0, cat_image, ["gradcam"], layers=["bn1"]).results[0].raw.max()) == 0.0


def test_layers_in_range_keeps_both_ends_then_preferred_then_evenly_spaced():
    names = [f"l{i}" for i in range(10)]
    assert layers_in_range(names, "l2", "l8", 3) == ["l2", "l5", "l8"]
    assert layers_in_range(names, "l8", "l2", 3) == ["l2", "l5", "l8"]  # ends in any order
    assert layers_in_range(names, "l0", "l9", 3, prefer=["l3", "l4"]) == ["l0", "l4", "l9"]
    assert layers_in_range(names, "l0", "l9", 4, prefer=["l3", "l12"]) == ["l0", "l3", "l6", "l9"]
    assert layers_in_range(names, "l4", "l6", 10) == ["l4", "l5", "l6"]
    assert layers_in_range(names, "l4", "l4", 2) == ["l4"]
    assert layers_in_range(names, "l0", "l9", 1) == ["l9"]


def test_cli_layers_says_which_make_their_own_map(capsys, lite0):
    from explainers.cli import main

    assert main(["layers"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]
             if not line.startswith("*")}
    assert lines["blocks.1"][-3:] == ["=", "blocks.1.1", "-"] and lines["bn1.act"][-2:] == ["no", "-"]
    assert lines["conv_stem"][-2:] == ["yes", "-"]  # last column: the map grid, for token models only


def test_stage_layers_for_token_blocks_and_a_recommended_container():
    from explainers.layers import LayerInfo

    vit = [LayerInfo(f"encoder.layer_{i}.{part}", "LayerNorm", (1, 197, 768), recommended=(i == 11 and part == "ln_1"))
           for i in range(12) for part in ("ln_1", "ln_2")]
    assert stage_layers(vit) == [f"encoder.layer_{i}.ln_1" for i in (2, 5, 8, 11)]  # ln_2 of block 11 is later
    dense = [LayerInfo("features", "Sequential", (1, 1024, 7, 7), recommended=True),
             LayerInfo("features.conv0", "Conv2d", (1, 64, 112, 112)),
             LayerInfo("features.denseblock1", "Block", (1, 256, 56, 56)),
             LayerInfo("features.denseblock2", "Block", (1, 512, 28, 28)),
             LayerInfo("features.denseblock3", "Block", (1, 1024, 14, 14))]
    # layers inside the recommended container are not "after" it; the stem (112 x 112) is left out
    assert stage_layers(dense) == ["features.denseblock1", "features.denseblock2", "features.denseblock3", "features"]
