"""Shared command-line plumbing: one-line errors with exit status 2, never a traceback for bad input.

Only command-line modules import this one; library code raises `nbm_lightning.core.errors.UserError` instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .arch import codes
from .core.errors import UserError
from .core.validate import InvalidValue, check_int, fail, shown, span
from .records.recipe import parse_bool


class ArgParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


MAX_ERROR_CHARS = 2000  # the longest error line printed (values in it are cut to ~200 characters where formatted)


def one_line(message: object) -> str:
    """An error message as one line (whitespace collapsed, at most about MAX_ERROR_CHARS characters): what a
    command prints before exit status 2, whichever module formatted it."""
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_ERROR_CHARS else f"{text[:MAX_ERROR_CHARS]}... ({len(text):,} characters)"


def arch_code(text: str) -> str:
    """argparse type for an architecture code (kept as a str, leading zeros included)."""
    try:
        return codes.validate(text)
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def bool_arg(text: str) -> bool:
    """argparse type for true/false (also 1/0, yes/no, on/off)."""
    try:
        return parse_bool(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def int_arg(name: str, low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """argparse type for an int in low..high (the message of nbm_lightning.core.validate)."""

    def parse(text: str) -> int:
        try:
            if not text.isascii():  # int() reads other scripts' digits too ('１２')
                raise ValueError(text)
            return check_int(name, int(text), low, high)
        except ValueError as err:
            message = str(err) if isinstance(err, InvalidValue) else str(fail(name, text, f"an int{span(low, high)}"))
            raise argparse.ArgumentTypeError(message) from None

    return parse


def write_failed(option: str, path: object, err: OSError) -> UserError:
    """The one-line error of a write of `option`'s file `path` that failed (a full or read-only disk, a file where a
    folder should be): raise it from the OSError, after the write left nothing behind (nbm_lightning.core.atomic)."""
    why = err.strerror or type(err).__name__
    name = err.filename
    if name is not None and str(name) != str(path) and not Path(name).name.startswith(f".{Path(str(path)).name}."):
        why += f": {shown(str(name))}"  # the folder that failed, not the file itself or its temporary
    return UserError(f"cannot write {option} {shown(str(path))} ({why}): nothing written")


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, prog: str = "") -> int:
    """Run a CLI entry point, turning UserError into one line on stderr and exit status 2."""
    try:
        return main(argv)
    except UserError as err:
        print(f"{prog or 'nbm_lightning'}: error: {one_line(err)}", file=sys.stderr)
        return 2
