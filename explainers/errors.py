"""Errors the engine raises: each carries one sentence a user can act on."""


class ExplainerError(ValueError):
    """Base class: the message is meant to be shown to a person as it is."""


class ModelError(ExplainerError):
    """A model cannot be found, built or loaded."""


class UnsafeCheckpointError(ModelError):
    """A checkpoint would run code when loaded (pickled model, TorchScript)."""


class LayerError(ExplainerError):
    """A layer name does not exist in the model or cannot be explained."""


class MethodError(ExplainerError):
    """A method name is unknown or cannot run on this model or layer."""


class TargetError(ExplainerError):
    """A class index or target is out of range or malformed."""


class ImageError(ExplainerError):
    """An image cannot be read or decoded."""


class EvaluationError(ExplainerError):
    """A map, a ground truth or an evaluation setting is malformed."""


class OutOfMemory(ExplainerError):
    """The device (GPU or CPU) ran out of memory during a call; nothing is left half-done."""
