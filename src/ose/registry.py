"""Name → implementation tables for the pluggable parts: families, tasks, strategies, executors.

An entry is an object, or a ``"module:attribute"`` string imported on first use, so that
listing the names (for a flag's choices, for validating a config) imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, entries: dict[str, T | str] | None = None):
        self.kind = kind
        self._entries: dict[str, T | str] = dict(entries or {})

    def register(self, name: str, entry: T | str) -> T | str:
        """Add ``entry`` under ``name`` (a new family, say, from a plugin or a test)."""
        self._entries[name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> T:
        """The entry; KeyError with a one-line message naming the known ones."""
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r} (known: {', '.join(self._entries)})")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attribute)
        return entry
