"""The method registry (``METHODS``) and the code that computes each method."""
from .catalog import METHODS, MethodSpec, list_methods, resolve_method

__all__ = ["METHODS", "MethodSpec", "list_methods", "resolve_method"]
