"""The errors a user's input can cause. Each message is one line; ``ose`` prints it and exits with 2.

They live apart from the stages that raise them so that the command line can catch them all
without importing torch.
"""

from __future__ import annotations


class OseError(Exception):
    """Bad input: a one-line message, exit code 2, nothing stored is lost or changed."""


class ConfigError(OseError, ValueError):
    """An invalid option."""


class SpaceError(OseError, ValueError):
    """An invalid search-space file; the message names file, key and problem."""


class DataError(OseError, ValueError):
    """Unusable data or tokenizer."""


class StoreError(OseError, RuntimeError):
    """An unusable study file or directory."""


class ExecutorError(RuntimeError):
    """The workers cannot run (they keep dying, or cannot be placed): one line, exit code 1.

    Not the user's input; nothing stored is lost, and the study resumes once the cause is fixed.
    """
