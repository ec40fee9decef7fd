"""A name -> entry registry filled by decorator; refuses duplicate names."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Holds entries under unique lower-case names, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "model", "method": used in messages
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        key = name.lower()
        if key in self._entries:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._entries[key] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form: ``@REGISTRY.register("name")``."""

        def decorate(entry: T) -> T:
            return self.add(name, entry)

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._entries[name.lower()]
        except (KeyError, AttributeError):
            known = ", ".join(self._entries)
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of: {known}") from None

    def remove(self, name: str) -> None:
        self._entries.pop(name.lower(), None)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())
