"""Loop counters whose "last" and "zero" tests are registers, for the units' counter nests.

A unit's counters step once per cycle through nested loops (steps, planes, tiles, group tiles).
Comparing a counter against its limit in the cycle that decides the next step puts a wide
comparison in front of every enable of the nest; here each test is a flip-flop, updated when
its counter is, from a compare of the counter against a pre-decoded copy of ``limit - 1``.
"""

from __future__ import annotations

from amaranth.hdl import Signal

__all__ = ["UpCounter", "DownCounter", "Predecoded"]


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


class UpCounter:
    """``value`` runs 0 .. ``last``; ``at_last`` is ``value == last`` and ``at_zero`` is
    ``value == 0``, both registers. ``init`` (priority) sets 0; ``go & cond`` advances, wrapping to
    0 after ``last``. ``last`` must hold still while the counter runs.

    ``cond`` is a function of flip-flops only (the inner counters' ``last_cond``): a nest's
    advance conditions are then ``go`` and one AND of flags each, not a chain through the levels.
    ``last_cond`` is ``cond & at_last`` and ``wraps`` is ``go & last_cond``."""

    def __init__(self, m, name, last, *, init, go, cond=1, pre: Predecoded):
        width = len(last)
        self.value = Signal(width, name=name)
        self.at_last = Signal(name=f"{name}_at_last")
        self.at_zero = Signal(name=f"{name}_at_zero", init=1)
        last_m1 = pre(last - 1, width, f"{name}_last_m1")
        last_0 = pre(last == 0, 1, f"{name}_last_0")
        self.last_cond = self.at_last & cond
        self.wraps = go & self.last_cond
        step = go & cond
        with m.If(init):
            m.d.sync += [self.value.eq(0), self.at_last.eq(last_0), self.at_zero.eq(1)]
        with m.Elif(step):
            with m.If(self.at_last):
                m.d.sync += [self.value.eq(0), self.at_last.eq(last_0), self.at_zero.eq(1)]
            with m.Else():
                m.d.sync += [self.value.eq(self.value + 1), self.at_last.eq(self.value == last_m1),
                             self.at_zero.eq(0)]


class DownCounter:
    """``value`` runs ``top`` .. 0; ``at_zero`` (``value == 0``) and ``at_top`` (``value == top``)
    are registers. ``init`` (priority) sets ``top``; ``go & cond`` counts down, reloading ``top``
    after 0. ``last_cond`` is ``cond & at_zero``, ``wraps`` is ``go & last_cond`` (as
    :class:`UpCounter`'s)."""

    def __init__(self, m, name, top, *, init, go, cond=1, pre: Predecoded):
        width = len(top)
        self.value = Signal(width, name=name)
        self.at_zero = Signal(name=f"{name}_at_zero")
        self.at_top = Signal(name=f"{name}_at_top", init=1)
        top_0 = pre(top == 0, 1, f"{name}_top_0")
        self.last_cond = self.at_zero & cond
        self.wraps = go & self.last_cond
        step = go & cond
        with m.If(init):
            m.d.sync += [self.value.eq(top), self.at_zero.eq(top_0), self.at_top.eq(1)]
        with m.Elif(step):
            with m.If(self.at_zero):
                m.d.sync += [self.value.eq(top), self.at_zero.eq(top_0), self.at_top.eq(1)]
            with m.Else():
                m.d.sync += [self.value.eq(self.value - 1), self.at_zero.eq(self.value == 1), self.at_top.eq(0)]
