"""A registered signed multiplier that maps onto one DSP block."""

from __future__ import annotations

from amaranth.hdl import Const, Instance, Module, Signal, ClockSignal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .._util import check_int, checking

__all__ = ["RegisteredMul"]


class RegisteredMul(wiring.Component):
    """``p = a * b`` (signed), :attr:`latency` cycles after ``a`` and ``b``.

    Parameters (keyword-only): ``a_width``, ``b_width`` (signed operand widths, each 2..18).

    On an ECP5 platform (``platform.family == "ecp5"``) this is one ``MULT18X18D`` with its input
    and output registers in use, so no fabric path runs through the multiplier; elsewhere (the
    simulators, other families) the same two registers around a ``*``.
    """

    #: Cycles from the operands to the product.
    latency = 2

    def __init__(self, *, a_width, b_width):
        with checking(self):
            check_int("a_width", a_width, 2, 18)
            check_int("b_width", b_width, 2, 18)
        self.a_width, self.b_width = a_width, b_width
        super().__init__({"a": In(signed(a_width)), "b": In(signed(b_width)),
                          "p": Out(signed(a_width + b_width))})

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) == "ecp5":
            a18 = Signal(signed(18))
            b18 = Signal(signed(18))
            p36 = Signal(signed(36))
            m.d.comb += [a18.eq(self.a), b18.eq(self.b), self.p.eq(p36)]
            ports = {f"i_A{i}": a18[i] for i in range(18)}
            ports.update({f"i_B{i}": b18[i] for i in range(18)})
            ports.update({f"o_P{i}": p36[i] for i in range(36)})
            one, zero = Const(1, 1), Const(0, 1)
            m.submodules.mult = Instance(
                "MULT18X18D",
                p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
                p_REG_PIPELINE_CLK="NONE", p_REG_INPUTC_CLK="NONE",
                i_SIGNEDA=one, i_SIGNEDB=one, i_SOURCEA=zero, i_SOURCEB=zero,
                i_CLK0=ClockSignal(), i_CE0=one, i_RST0=zero, **ports)
        else:
            a_q = Signal(signed(self.a_width), reset_less=True)
            b_q = Signal(signed(self.b_width), reset_less=True)
            p_q = Signal(signed(self.a_width + self.b_width), reset_less=True)
            m.d.sync += [a_q.eq(self.a), b_q.eq(self.b), p_q.eq(a_q * b_q)]
            m.d.comb += self.p.eq(p_q)
        return m
