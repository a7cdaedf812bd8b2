"""A design whose combinational logic has inputs that keep their initial values: the case the
simulation Verilog must evaluate at time zero on every simulator (``binaccel.hw.verilog.convert``).

``TimeZeroHold`` is the pattern of ``DpAccelerator``'s descriptor register: a ``reset_less``
register ``held`` loaded under an enable flip-flop ``ce`` that only an input (``load``, held low)
can set, so that the process computing ``held``'s next value (``held`` unless ``ce``) sees no
input change until the enable does. ``value`` outputs ``held``; it must read :data:`HELD_INIT`
from the first edge on (before the fix, Icarus read ``x`` and kept it).
"""
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["HELD_INIT", "TimeZeroHold"]

#: The initial value of the held register (and of ``value`` while nothing is loaded).
HELD_INIT = 0x5A


class TimeZeroHold(wiring.Component):
    """``value`` is a ``reset_less`` register, initially :data:`HELD_INIT`, loaded with ``data``
    one cycle after ``load`` was high (through the enable flip-flop)."""

    load: In(1)
    data: In(8)
    value: Out(8)

    def elaborate(self, platform):
        m = Module()
        held = Signal(8, init=HELD_INIT, reset_less=True)
        data_q = Signal(8, reset_less=True)
        ce = Signal()
        m.d.sync += ce.eq(0)
        with m.If(self.load):
            m.d.sync += [ce.eq(1), data_q.eq(self.data)]
        with m.If(ce):
            m.d.sync += held.eq(data_q)
        m.d.comb += self.value.eq(held)
        return m
