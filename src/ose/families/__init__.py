"""Architecture families with the ABⁿC shape.

A family is one module answering the same questions: its architectural parameters, the
fixed settings the counts depend on, closed-form p(ξ) and i(ξ) by part, and how to build the
network. Adding a family (a decoder, say) means one new module registered here.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from . import bert


@dataclass(frozen=True)
class Family:
    name: str
    module: ModuleType

    @property
    def parameters(self) -> tuple[str, ...]:
        return self.module.PARAMETERS

    @property
    def settings_type(self) -> type:
        return self.module.Settings

    def __getattr__(self, attr):  # cost, operations, params, check, config, build
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.module, attr)

    def __reduce__(self):  # by name: a module cannot be pickled, and workers receive the space
        return get_family, (self.name,)


FAMILIES = {"bert": Family("bert", bert)}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise KeyError(f"unknown family {name!r} (known: {', '.join(FAMILIES)})")
    return FAMILIES[name]
