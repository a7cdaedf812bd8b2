"""Argument types for the ``binaccel`` command line: numbers and folders checked when the command
line is parsed, so that a bad value is a usage error (one line, exit status 2) before any work
starts."""

from __future__ import annotations

import argparse
import math
import os

__all__ = ["positive_int", "nonneg_int", "int_range", "positive_float", "nonneg_float", "probability", "fraction",
           "threads", "positive_threads", "usable_cores", "existing_dir", "name_list"]


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


def int_range(low: int, high: int):
    """A parser of integers in ``low..high``."""
    def parse(text: str) -> int:
        value = _number(int, text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in {low}..{high}, got {text!r}")
        return value
    return parse


def name_list(choices):
    """A parser of a comma-separated, non-empty list of names out of ``choices``."""
    choices = tuple(choices)

    def parse(text: str) -> list:
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices)}, got {text!r}")
        return names
    return parse


def fraction(text: str) -> float:
    """A number in (0, 1]."""
    value = _number(float, text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _threads(low: int):
    def parse(text: str) -> int:
        value = _number(int, text)
        cores = usable_cores()
        if not low <= value <= cores:
            raise argparse.ArgumentTypeError(f"expected a thread count in {low}..{cores} (the cores this machine "
                                             f"lets binaccel use), got {text!r}")
        return value
    return parse


#: A thread count from 0 (the library's default) to the usable cores.
threads = _threads(0)
#: A thread count from 1 to the usable cores.
positive_threads = _threads(1)


def existing_dir(text: str) -> str:
    """A folder that exists."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: is a file, expected a folder")
    return text
