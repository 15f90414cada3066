"""User-facing error types and the optional-dependency helper (this module imports nothing of ours).

Library code raises these; the command-line entry points (`nbm_lightning.cli.run_main`) print them as one
line and exit with status 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class UserError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class PairRefused(UserError):
    """Bad input that concerns one (code, seed) pair only (its record, its lock): a job array goes on past it."""


class LockLost(RuntimeError):
    """The lock was taken over (its owner was frozen past the stale time): the owner must write nothing more."""


class MissingDependency(UserError, ImportError):
    """An optional dependency is not installed; the message names the pip extra to install."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or raise MissingDependency naming the pip extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependency(f'{purpose} needs {module} ({err}): pip install "nbm_lightning[{extra}]"') from err
