"""Argument types for the ``binaccel`` command line: numbers checked when the command line is
parsed, so that a bad value is a usage error (one line, exit status 2) before any work starts."""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "nonneg_int", "positive_float", "nonneg_float", "probability"]


def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _at_least(kind, low, *, strict: bool, expected: str):
    """A parser of ``kind`` values ``>= low`` (``> low`` if ``strict``); ``expected`` for the message."""
    def parse(text: str):
        value = _number(kind, text)
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


#: An integer of at least 1.
positive_int = _at_least(int, 1, strict=False, expected="an integer of at least 1")
#: An integer of at least 0.
nonneg_int = _at_least(int, 0, strict=False, expected="an integer of at least 0")
#: A finite number above 0.
positive_float = _at_least(float, 0.0, strict=True, expected="a number above 0")
#: A finite number of at least 0.
nonneg_float = _at_least(float, 0.0, strict=False, expected="a number of at least 0")


def probability(text: str) -> float:
    """A probability in [0, 1)."""
    value = _number(float, text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
    return value
