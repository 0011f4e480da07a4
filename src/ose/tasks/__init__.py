"""Tasks the error surrogate ê is measured on, by name; each is one module of ``ose.tasks``.

Entries are imported on first use: listing the names (a flag's choices, a config check) does
not import torch.
"""

from __future__ import annotations

from ..registry import Registry

TASKS = Registry("task", {"mlm": "ose.tasks.mlm:MLM", "cls": "ose.tasks.cls:Classification",
                          "clm": "ose.tasks.clm:CausalLM"})


def get_task(name: str):
    """An instance of the named task (tasks hold no state)."""
    return TASKS.get(name)()
