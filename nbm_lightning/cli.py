"""Shared command-line plumbing: one-line errors with exit status 2, never a traceback for bad input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from . import search_space


class UserError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class ArgParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def arch_code(text: str) -> str:
    """argparse type for an architecture code (kept as a str, leading zeros included)."""
    try:
        return search_space.validate(text)
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, prog: str = "") -> int:
    """Run a CLI entry point, turning UserError into one line on stderr and exit status 2."""
    try:
        return main(argv)
    except UserError as err:
        print(f"{prog or 'nbm_lightning'}: error: {err}", file=sys.stderr)
        return 2
