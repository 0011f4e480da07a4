"""Architecture families with the ABⁿC shape, by name.

A family is one module implementing ``families.base.Family``; adding one (a decoder, say)
means that module, registered in ``families/registry.py`` or with ``FAMILIES.register`` from outside.
"""

from __future__ import annotations

from .base import Family
from .registry import FAMILIES, get_family

__all__ = ["FAMILIES", "Family", "get_family"]
