"""Architecture families with the ABⁿC shape, by name.

A family is one module implementing ``families.base.Family``; adding one (a decoder, say)
means that module, registered here or with ``FAMILIES.register`` from outside.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Family
from .bert import Bert
from .llama import Llama

FAMILIES: Registry[Family] = Registry("family", {"bert": Bert(), "llama": Llama()})


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


__all__ = ["FAMILIES", "Family", "get_family"]
