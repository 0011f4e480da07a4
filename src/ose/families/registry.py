"""The families by name. Entries are ``module:attribute`` strings, imported on first use, so that
nothing here imports a family's module (a family's own module may look itself up by name)."""

from __future__ import annotations

from ..registry import Registry

FAMILIES = Registry("family", {"bert": "ose.families.bert:BERT", "llama": "ose.families.llama:LLAMA"})


def get_family(name: str):
    return FAMILIES.get(name)
