"""A user's own trained model: a state_dict for a known architecture, plus its class names.

Only plain tensors are ever read: ``.safetensors`` files, or ``.pt/.pth`` files through
``torch.load(weights_only=True)``. A pickled whole model or a TorchScript archive is
refused, because loading it would run code stored in the file.
"""
from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..errors import ModelError, UnsafeCheckpointError
from .checkpoint_guard import check_torch_file
from .spec import ModelSpec, Preprocessing
from .weights_check import note_casts, refuse_non_finite
from .zoo import zoo_entry

LabelsArg = Union[Sequence[str], str, Path]
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")  # common training-loop checkpoint layouts
_PREFIXES = ("module.", "_orig_mod.")  # added by DataParallel/DDP and torch.compile
_SAFE_ADVICE = "save a state_dict with model.state_dict() instead"


def resolve_architecture(architecture: str) -> tuple[str, str]:
    """("torchvision" | "timm", model name) for an architecture name, without building it.

    A bare name is looked up in torchvision's classification models, then in timm;
    "torchvision/<name>" and "timm/<name>" pick the library.

    Raises:
        ModelError: neither library knows the name.
    """
    source, _, name = str(architecture).rpartition("/")
    import torchvision.models

    if source in ("", "torchvision") and name in torchvision.models.list_models(module=torchvision.models):
        return "torchvision", name
    import timm

    if source in ("", "timm") and timm.is_model(name):
        return "timm", name
    raise ModelError(f"Unknown architecture {architecture!r}: use a torchvision classification model name "
                     "(e.g. resnet18) or a timm model name (e.g. timm/efficientnet_lite0).")


def build_architecture(architecture: str, num_classes: int) -> torch.nn.Module:
    """An untrained model of a torchvision or timm architecture with ``num_classes`` outputs.

    Args:
        architecture: "resnet18", "torchvision/resnet18", "timm/efficientnet_lite0", ...
        num_classes: size of the classifier's output.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ModelError(f"num_classes must be a positive whole number, not {num_classes!r}.")
    library, name = resolve_architecture(architecture)
    if library == "torchvision":
        import torchvision.models

        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    import timm

    return timm.create_model(name, pretrained=False, num_classes=num_classes)


def refuse_code_archives(path: Path) -> None:
    """Raise UnsafeCheckpointError for a TorchScript archive; reads the zip index only, unpickles nothing."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    for name in names:
        parts = name.split("/")
        if len(parts) > 1 and (parts[1] == "code" or parts[1] == "constants.pkl"):
            raise UnsafeCheckpointError(f"{path.name} is a TorchScript archive: loading it would run code stored "
                                        f"in the file; {_SAFE_ADVICE}.")


def _torch_load(path: Path) -> object:
    check_torch_file(path)  # sizes from the zip index: nothing is inflated or unpickled yet
    refuse_code_archives(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        what = f"a pickled Python object ({found.group(1)})" if found else "pickled data that is not plain tensors"
        raise UnsafeCheckpointError(f"{path.name} holds {what}: loading it would run code stored in the file; "
                                    f"{_SAFE_ADVICE}.") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelError(f"{path.name} is not a readable PyTorch checkpoint ({exc}).") from None


def read_state_dict(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, unwrapped and with DataParallel/compile prefixes removed.

    Args:
        path: a ``.safetensors`` file, or a ``.pt/.pth/.bin`` file holding a state_dict
            (possibly inside a dict under "state_dict", "model_state_dict" or "model").

    Raises:
        UnsafeCheckpointError: pickled objects or TorchScript.
        ModelError: a missing, unreadable or tensor-less file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"The weights file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            loaded: object = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError for a bad header
            raise ModelError(f"{path.name} is not a readable safetensors file ({exc}).") from None
    elif suffix in TORCH_SUFFIXES:
        loaded = _torch_load(path)
    else:
        raise ModelError(f"{path.name}: weights must be a .safetensors or a {'/'.join(TORCH_SUFFIXES)} file.")
    if isinstance(loaded, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        keys = list(loaded)[:8] if isinstance(loaded, dict) else type(loaded).__name__
        raise ModelError(f"{path.name} holds no state_dict of tensors (found {keys}); {_SAFE_ADVICE}.")
    return {_strip_prefixes(key): value for key, value in loaded.items()}


def _strip_prefixes(key: str) -> str:
    for prefix in _PREFIXES:
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def check_state_dict(state: dict[str, torch.Tensor], model: torch.nn.Module, what: str) -> dict[str, torch.Tensor]:
    """Raise ModelError naming the first shape mismatch, missing key or unexpected key.

    Returns the state_dict completed with the model's own ``num_batches_tracked``
    counters where the checkpoint lacks them (they do not affect inference).
    """
    expected = model.state_dict()
    for key, wanted in expected.items():  # the model's order: safetensors files come sorted by name
        if key in state and tuple(state[key].shape) != tuple(wanted.shape):
            raise ModelError(f"The checkpoint does not fit {what}: {key} has shape {tuple(state[key].shape)} in "
                             f"the file but {tuple(wanted.shape)} in the model.")
    state = dict(state)
    for key in expected:
        if key not in state:
            if not key.endswith("num_batches_tracked"):
                raise ModelError(f"The checkpoint does not fit {what}: missing key {key}.")
            state[key] = expected[key]
    for key in state:
        if key not in expected:
            raise ModelError(f"The checkpoint does not fit {what}: unexpected key {key}.")
    return state


def read_labels(labels: LabelsArg, num_classes: Optional[int] = None) -> list[str]:
    """Class names from a list, a text file (one per line) or a JSON file (a list, or {index: name}).

    Raises:
        ModelError: unreadable file, JSON indices with gaps, a name given twice, or a count
            different from ``num_classes`` (when given).
    """
    if isinstance(labels, (str, Path)):
        path = Path(labels)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"The labels file {path} cannot be read ({exc}).") from None
        source = f"The labels file {path.name}"
        if path.suffix.lower() == ".json":
            names = _json_labels(text, source)
        else:
            names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        names, source = [str(x) for x in labels], "The labels"
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in first:
            raise ModelError(f"{source} names class {first[name]} and class {index} both {name!r}: class names "
                             "must be unique (rename one, e.g. with a suffix).")
        first[name] = index
    if num_classes is not None and len(names) != num_classes:
        raise ModelError(f"{source} lists {len(names)} class names but the model has {num_classes} classes.")
    return names


def _json_labels(text: str, source: str) -> list[str]:
    """A JSON list of names, or {index: name} whose indices are exactly 0..n-1 (never renumbered)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{source} must hold a JSON list of names ({exc}).") from None
    if isinstance(data, list):
        return [str(x) for x in data]
    if not isinstance(data, dict):
        raise ModelError(f"{source} must hold a JSON list of names, or an object {{index: name}}.")
    by_index: dict[int, str] = {}
    for key, name in data.items():
        try:
            index = int(key)
        except ValueError:
            raise ModelError(f"{source}: the key {key!r} is not a class index (0, 1, 2, ...).") from None
        if index in by_index:
            raise ModelError(f"{source} gives class {index} twice (keys written differently).")
        by_index[index] = str(name)
    missing = sorted(set(range(len(by_index))) - set(by_index))
    if missing:
        raise ModelError(f"{source} has no name for class {missing[0]}: indices must run from 0 to "
                         f"{len(by_index) - 1} without gaps (found {min(by_index)} to {max(by_index)}).")
    return [by_index[i] for i in range(len(by_index))]


def load_checkpoint(path: Union[str, Path], architecture: str, num_classes: int,
                    labels: Optional[LabelsArg] = None) -> torch.nn.Module:
    """Build ``architecture`` with ``num_classes`` outputs and load a state_dict checkpoint into it.

    Args:
        path: ``.safetensors`` or ``.pt/.pth`` state_dict.
        architecture: torchvision or timm architecture name (see ``build_architecture``).
        num_classes: classifier size the checkpoint was trained with.
        labels: class names (list or file); when given, their count is checked.

    Returns:
        The model with the checkpoint's weights (train mode, CPU; ``load_model`` sets eval).

    Raises:
        UnsafeCheckpointError: pickled whole models and TorchScript (they would run code).
        ModelError: missing file, unknown architecture, a state_dict that does not fit, or NaN or
            infinite weights. Tensors stored in another dtype (fp16, int8) are cast, with a
            ``WeightsWarning`` (collected by ``load_model`` into ``LoadedModel.weights_notes``).
    """
    if labels is not None:
        read_labels(labels, num_classes)
    model = build_architecture(architecture, num_classes)
    load_checked(model, read_state_dict(path), f"{architecture} with {num_classes} classes", Path(path).name)
    return model


def load_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str, file_name: str) -> None:
    """Load ``state`` into ``model`` after every check a weights file gets: the keys and shapes fit
    (``what`` names the model in the error), no NaN or infinite values, a note for each cast dtype."""
    state = check_state_dict(state, model, what)
    refuse_non_finite(state, file_name)
    note_casts(state, model, file_name)
    model.load_state_dict(state)


def default_target_layer(architecture: str) -> Optional[str]:
    """The recommended layer for a known architecture, or None."""
    entry = zoo_entry(architecture)
    if entry is not None:
        return entry.target_layer
    return "bn2" if architecture.removeprefix("timm/") == "efficientnet_lite0" else None


def user_model_spec(name: str, weights: Union[str, Path], architecture: str, num_classes: int,
                    labels: LabelsArg, target_layer: Optional[str] = None,
                    preprocessing: Preprocessing = Preprocessing(), display_name: Optional[str] = None,
                    description: str = "") -> ModelSpec:
    """A registry entry for a user checkpoint; labels are read now, weights when the model is loaded.

    Raises:
        ModelError: missing weights file, bad labels, or no target layer for an unknown architecture.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"Model {name!r}: the weights file {weights} does not exist.")
    resolve_architecture(architecture)
    categories = read_labels(labels, num_classes)
    layer = target_layer or default_target_layer(architecture)  # None: found from the model when it loads
    entry = zoo_entry(architecture)

    def build(random_weights: bool = False) -> torch.nn.Module:
        if random_weights:
            module = build_architecture(architecture, num_classes)
        else:
            module = load_checkpoint(weights, architecture, num_classes)
        if layer and layer not in dict(module.named_modules()):
            raise ModelError(f"Model {name!r}: target_layer {layer!r} is not a module of {architecture}.")
        return module

    return ModelSpec(
        name=name,
        display_name=display_name or f"{name} ({architecture}, {num_classes} classes)",
        architecture=architecture,
        build=build,
        categories=lambda: list(categories),
        target_layer=layer or "",
        preprocessing=preprocessing,
        reshape_transform=entry.reshape_transform if entry else None,
        inspect=layer is None,
        source="user",
        weights_file=str(weights),
        weights_available=weights.is_file,
        description=description or f"User checkpoint {weights.name}.",
    )
