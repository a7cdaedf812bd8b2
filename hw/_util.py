"""Small helpers shared by the hardware components (parameter checks, last-index registers)."""

from __future__ import annotations

import contextlib

from amaranth.hdl import Signal

__all__ = ["check_int", "check_bool", "checking", "last_indices"]


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


def last_indices(m, load, counts):
    """Registers holding ``n - 1`` for each ``name: n`` of ``counts`` (unsigned counts of at least 1:
    the last index of a counter running from 0), named ``last_<name>``, loaded in the ``sync``
    cycles where ``load`` is high and valid from the cycle after. A counter's "last step" test is
    then an equality with a register instead of with a subtractor's output: the subtractor leaves
    the paths into the counters' enables, and its cells pack with the register's."""
    regs = {}
    for name, n in counts.items():
        reg = Signal(len(n), name=f"last_{name}")
        with m.If(load):
            m.d.sync += reg.eq(n - 1)
        regs[name] = reg
    return regs
