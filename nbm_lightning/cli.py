"""Shared command-line plumbing: one-line errors with exit status 2, never a traceback for bad input.

Only command-line modules import this one; library code raises `nbm_lightning.errors.UserError` instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from . import search_space
from .checks import InvalidValue, check_int
from .config import parse_bool
from .errors import UserError


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


def bool_arg(text: str) -> bool:
    """argparse type for true/false (also 1/0, yes/no, on/off)."""
    try:
        return parse_bool(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def int_arg(name: str, low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """argparse type for an int in low..high (the message of nbm_lightning.checks)."""

    def parse(text: str) -> int:
        try:
            return check_int(name, int(text), low, high)
        except ValueError as err:
            message = str(err) if isinstance(err, InvalidValue) else f"invalid {name} {text!r}: expected an int"
            raise argparse.ArgumentTypeError(message) from None

    return parse


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, prog: str = "") -> int:
    """Run a CLI entry point, turning UserError into one line on stderr and exit status 2."""
    try:
        return main(argv)
    except UserError as err:
        print(f"{prog or 'nbm_lightning'}: error: {err}", file=sys.stderr)
        return 2
