"""Tasks the error surrogate ê is measured on, by name; each is one module of ``ose.tasks``.

Entries are imported on first use: listing the names (a flag's choices, a config check) does
not import torch. A family trains every task whose head kind it builds (``tasks_of``).
"""

from __future__ import annotations

from ..registry import Registry

TASKS = Registry("task", {"mlm": "ose.tasks.mlm:MLM", "cls": "ose.tasks.cls:Classification",
                          "clm": "ose.tasks.clm:CausalLM"})


def get_task(name: str):
    """An instance of the named task (tasks hold no state)."""
    return TASKS.get(name)()


def tasks_of(family) -> tuple[str, ...]:
    """The registered tasks whose head kind ``family`` builds, in the order of its head kinds (its
    first is what its models are for, and the default task), then as registered."""
    kinds = list(family.heads)
    heads = {name: TASKS.get(name).head for name in TASKS.names()}
    return tuple(sorted((n for n in heads if heads[n] in kinds), key=lambda n: kinds.index(heads[n])))
