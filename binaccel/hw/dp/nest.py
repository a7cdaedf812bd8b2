"""Loop counters for the units' counter nests: registered tests, and next values for a look-ahead.

A unit's counters step once per cycle through nested loops (steps, planes, tiles, group tiles).
Here each counter's "last" and "zero" tests are flip-flops, updated with the counter from a
compare against a pre-decoded copy of ``limit - 1``, and every register's next value is also a
combinational signal (``*_next``). A unit decides whether its counters step in the *next* cycle
from those next values and registers the decision (``go``), so that the decision and the wide
fan-out of ``go`` to the counters are in different cycles.
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, Signal

__all__ = ["UpCounter", "DownCounter", "Predecoded", "Flag", "mux_next"]


class Predecoded:
    """Registered copies of configuration values (and values derived from them) a unit's hot path
    uses: each is valid from the cycle after the configuration is (the unit acts on a ``start``
    registered once)."""

    def __init__(self, m, prefix):
        self.m, self.prefix, self._n = m, prefix, 0

    def __call__(self, value, shape=None, name=None):
        self._n += 1
        sig = Signal(shape if shape is not None else value.shape(),
                     name=f"{self.prefix}_{name or self._n}", reset_less=True)
        self.m.d.sync += sig.eq(value)
        return sig


class Flag:
    """A one-bit register with its next value as a signal: ``Flag(m, name, init)``; assign
    ``flag.next`` with ``m.d.comb`` (it defaults to the present value)."""

    def __init__(self, m, name, init=0):
        self.value = Signal(name=name, init=init)
        self.next = Signal(name=f"{name}_next")
        m.d.comb += self.next.eq(self.value)
        m.d.sync += self.value.eq(self.next)


class UpCounter:
    """``value`` runs 0 .. ``last``; ``at_last`` is ``value == last`` and ``at_zero`` is
    ``value == 0``, both registers. ``init`` (priority) sets 0; ``go & cond`` advances, wrapping to
    0 after ``last``. ``last`` must hold still while the counter runs.

    ``cond`` is a function of flip-flops only (the inner counters' ``last_cond``): a nest's
    advance conditions are then ``go`` and one AND of flags each, not a chain through the levels.
    ``last_cond`` is ``cond & at_last`` and ``wraps`` is ``go & last_cond``; ``at_last_next`` and
    ``at_zero_next`` are the tests' next values."""

    def __init__(self, m, name, last, *, init, go, cond=1, pre: Predecoded):
        width = len(last)
        self.value = Signal(width, name=name)
        self.at_last = Signal(name=f"{name}_at_last")
        self.at_zero = Signal(name=f"{name}_at_zero", init=1)
        self.at_last_next = Signal(name=f"{name}_at_last_next")
        self.at_zero_next = Signal(name=f"{name}_at_zero_next")
        value_next = Signal(width, name=f"{name}_next")
        last_m1 = pre(last - 1, width, f"{name}_last_m1")
        last_0 = pre(last == 0, 1, f"{name}_last_0")
        cond = Const(1, 1) if isinstance(cond, int) else cond
        self.last_cond = self.at_last & cond
        self.wraps = go & self.last_cond
        step = go & cond
        m.d.comb += [value_next.eq(self.value), self.at_last_next.eq(self.at_last), self.at_zero_next.eq(self.at_zero)]
        with m.If(init):
            m.d.comb += [value_next.eq(0), self.at_last_next.eq(last_0), self.at_zero_next.eq(1)]
        with m.Elif(step):
            with m.If(self.at_last):
                m.d.comb += [value_next.eq(0), self.at_last_next.eq(last_0), self.at_zero_next.eq(1)]
            with m.Else():
                m.d.comb += [value_next.eq(self.value + 1), self.at_last_next.eq(self.value == last_m1),
                             self.at_zero_next.eq(0)]
        m.d.sync += [self.value.eq(value_next), self.at_last.eq(self.at_last_next),
                     self.at_zero.eq(self.at_zero_next)]


class DownCounter:
    """``value`` runs ``top`` .. 0; ``at_zero`` (``value == 0``) and ``at_top`` (``value == top``)
    are registers. ``init`` (priority) sets ``top``; ``go & cond`` counts down, reloading ``top``
    after 0. ``last_cond`` is ``cond & at_zero``, ``wraps`` is ``go & last_cond``, and
    ``at_zero_next``, ``at_top_next`` the tests' next values (as :class:`UpCounter`'s)."""

    def __init__(self, m, name, top, *, init, go, cond=1, pre: Predecoded):
        width = len(top)
        self.value = Signal(width, name=name)
        self.at_zero = Signal(name=f"{name}_at_zero")
        self.at_top = Signal(name=f"{name}_at_top", init=1)
        self.at_zero_next = Signal(name=f"{name}_at_zero_next")
        self.at_top_next = Signal(name=f"{name}_at_top_next")
        value_next = Signal(width, name=f"{name}_next")
        top_0 = pre(top == 0, 1, f"{name}_top_0")
        cond = Const(1, 1) if isinstance(cond, int) else cond
        self.last_cond = self.at_zero & cond
        self.wraps = go & self.last_cond
        step = go & cond
        m.d.comb += [value_next.eq(self.value), self.at_zero_next.eq(self.at_zero), self.at_top_next.eq(self.at_top)]
        with m.If(init):
            m.d.comb += [value_next.eq(top), self.at_zero_next.eq(top_0), self.at_top_next.eq(1)]
        with m.Elif(step):
            with m.If(self.at_zero):
                m.d.comb += [value_next.eq(top), self.at_zero_next.eq(top_0), self.at_top_next.eq(1)]
            with m.Else():
                m.d.comb += [value_next.eq(self.value - 1), self.at_zero_next.eq(self.value == 1),
                             self.at_top_next.eq(0)]
        m.d.sync += [self.value.eq(value_next), self.at_zero.eq(self.at_zero_next), self.at_top.eq(self.at_top_next)]


def mux_next(flag: Flag, cases):
    """``cases``: ``[(condition, value)]`` in priority order; the flag's next value."""
    nxt = flag.value
    for cond, val in reversed(cases):
        nxt = Mux(cond, val, nxt)
    return flag.next.eq(nxt)
