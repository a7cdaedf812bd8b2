"""Small helpers shared by the hardware components (parameter checks)."""

from __future__ import annotations

import contextlib

__all__ = ["check_int", "check_bool", "checking"]


def check_int(name, value, lo, hi=None):
    """Raise TypeError unless ``value`` is an int, ValueError unless ``lo <= value <= hi``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in {lo}..{hi if hi is not None else 'inf'}, got {value}")


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")


@contextlib.contextmanager
def checking(component):
    """Run parameter checks of ``component.__init__``; a component refused by them is not reported
    by Amaranth as an unused elaboratable."""
    try:
        yield
    except Exception:
        component._MustUse__silence = True
        raise


#: Attributes of a register that is a deliberate copy of another, made so that each copy drives
#: few loads: the synthesis script keeps such registers apart
#: (:data:`binaccel.hw.synth.tools.SCRIPT_AFTER_READ`).
REPLICA = {"replica": 1}
