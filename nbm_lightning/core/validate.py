"""The one set of argument checks: each returns the value or raises a one-line error naming it and what is allowed.

Every message reads `invalid <name> <value!r>: expected <what is allowed>`, the value cut to about SHOWN_CHARS
characters (`shown`: an error line never carries a whole file). A value of the wrong type raises `InvalidType`,
which is both a ValueError and a TypeError; a value out of range raises `InvalidValue` (a ValueError). This
module imports nothing of ours.
"""

from __future__ import annotations

import math
import os
import reprlib
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

SHOWN_CHARS = 200  # the most characters of a value that an error line shows


class _BoundedRepr(reprlib.Repr):
    """reprlib's repr, whose ints too long to print in full (str() refuses 4300 digits) are shown by size."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 3 * SHOWN_CHARS:  # ~180 digits: beyond anything shown whole
            return f"<an int of {x.bit_length():,} bits>"
        return super().repr_int(x, level)


_REPR = _BoundedRepr()  # repr() with bounded work: long strings, ints and containers are cut before formatting
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = SHOWN_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = _REPR.maxdict = 20
_REPR.maxlevel = 4


def cut(text: str) -> str:
    """`text` cut to about SHOWN_CHARS characters, its length said where it is cut."""
    return text if len(text) <= SHOWN_CHARS + 5 else f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


def shown(value: Any) -> str:
    """repr(value) for an error line: cut to about SHOWN_CHARS characters, with the length of a cut str said."""
    text = _REPR.repr(value)
    if len(text) > SHOWN_CHARS + 5:
        text = text[:SHOWN_CHARS] + "..."
    if isinstance(value, (str, bytes)) and len(value) > SHOWN_CHARS:
        text += f" ({len(value):,} characters)"
    return text


class InvalidValue(ValueError):
    """An argument outside its allowed range or set."""


class InvalidType(InvalidValue, TypeError):
    """An argument of the wrong type (also a TypeError)."""


def fail(name: str, value: Any, expected: str, kind: type[InvalidValue] = InvalidValue) -> InvalidValue:
    """The error for `name` = `value` where `expected` was allowed (raise it)."""
    return kind(f"invalid {name} {shown(value)}: expected {expected}")


def span(low: float | None, high: float | None, low_open: bool = False) -> str:
    """A range in words: ' in 1..10', ' >= 0', ' > 0 and <= 5', ' <= 5' or '' (no bounds)."""
    if low is not None and not low_open and high is not None:
        return f" in {low}..{high}"
    parts = [f"{'>' if low_open else '>='} {low}"] if low is not None else []
    parts += [f"<= {high}"] if high is not None else []
    return (" " + " and ".join(parts)) if parts else ""


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int if it is an integer (not a bool) in low..high."""
    expected = f"an int{span(low, high)}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise fail(name, value, expected, InvalidType)
    if (low is not None and value < low) or (high is not None and value > high):
        raise fail(name, value, expected)
    return int(value)


def check_number(
    name: str, value: Any, low: float | None = None, high: float | None = None, low_open: bool = False
) -> float:
    """`value` as a float if it is a finite real number (not a bool) in low..high (low excluded with low_open)."""
    expected = f"a finite number{span(low, high, low_open)}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise fail(name, value, expected, InvalidType)
    below = low is not None and (value <= low if low_open else value < low)
    if not math.isfinite(value) or below or (high is not None and value > high):
        raise fail(name, value, expected)
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """`value` if it is a bool."""
    if not isinstance(value, bool):
        raise fail(name, value, "true or false", InvalidType)
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """`value` if it is one of `choices`."""
    if value not in choices:
        raise fail(name, value, f"one of {', '.join(map(str, choices))}")
    return value


def check_str(name: str, value: Any, allow_empty: bool = True) -> str:
    """`value` if it is a str (non-empty unless allow_empty)."""
    if not isinstance(value, str):
        raise fail(name, value, "a string", InvalidType)
    if not value and not allow_empty:
        raise fail(name, value, "a non-empty string")
    return value


def check_path(name: str, value: Any) -> str:
    """`value` as a str if it is a non-empty path (str or os.PathLike)."""
    if not isinstance(value, (str, os.PathLike)):
        raise fail(name, value, "a non-empty path", InvalidType)
    if not os.fspath(value):
        raise fail(name, value, "a non-empty path")
    return os.fspath(value)
