"""Scale unit: accumulator -> layer output value, exactly :func:`binaccel.sw.intref.postprocess`.

Per lane, with the lane's parameters ``p``/``q``::

    sign     bit = (acc <= p) if q[0] else (acc >= p)     p = thresh, q = flip
    requant  clamp((acc * p + q) >> shift, 0, 2**out_bits - 1)   p = mul, q = add (arithmetic shift)
    logits   acc * p + q                                          (signed fixed point)
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ._util import check_int, checking
from .params import OutKind, param_lane_layout

__all__ = ["ScaleUnit", "scale_cfg_layout"]


def scale_cfg_layout():
    return data.StructLayout({"out_kind": OutKind, "shift": unsigned(6), "out_bits": unsigned(4)})


class ScaleUnit(wiring.Component):
    """``lanes`` parallel scale/threshold lanes, a two-stage pipeline.

    Parameters (keyword-only): ``lanes``, ``acc_width`` (signed accumulator width),
    ``thresh_width``, ``mul_bits``, ``add_bits`` (signed widths of thresh, mul, add),
    ``y_width`` (signed width of ``acc*mul + add``; the caller guarantees it holds every result).

    ``i`` (valid + ``acc`` per lane) and ``params`` (per lane ``p``, ``q``, read in the same cycle as
    ``i``) give ``o`` two cycles later; ``cfg`` must be stable while values are in the pipeline.
    """

    def __init__(self, *, lanes, acc_width, thresh_width, mul_bits, add_bits, y_width):
        with checking(self):
            for name, v, lo in (("lanes", lanes, 1), ("acc_width", acc_width, 2), ("thresh_width", thresh_width, 2),
                                ("mul_bits", mul_bits, 2), ("add_bits", add_bits, 2), ("y_width", y_width, 2)):
                check_int(name, v, lo)
        self.lanes, self.acc_width, self.thresh_width = lanes, acc_width, thresh_width
        self.mul_bits, self.add_bits, self.y_width = mul_bits, add_bits, y_width
        lane = param_lane_layout(p_width=max(thresh_width, mul_bits), q_width=add_bits)
        super().__init__({
            "i": In(data.StructLayout({"valid": 1, "acc": data.ArrayLayout(signed(acc_width), lanes)})),
            "params": In(data.ArrayLayout(lane, lanes)),
            "cfg": In(scale_cfg_layout()),
            "o": Out(data.StructLayout({"valid": 1, "y": data.ArrayLayout(signed(y_width), lanes)})),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.lanes
        s1_valid = Signal()
        s1_bit = Signal(n)
        s1_y = Signal(data.ArrayLayout(signed(self.y_width), n))
        m.d.sync += s1_valid.eq(self.i.valid)
        for k in range(n):
            acc = self.i.acc[k]
            prm = self.params[k]
            mul = prm.p[:self.mul_bits].as_signed()
            m.d.sync += [
                s1_bit[k].eq(Mux(prm.q[0], acc <= prm.p, acc >= prm.p)),
                s1_y[k].eq(acc * mul + prm.q),
            ]

        hi = Signal(16)
        m.d.comb += hi.eq((Const(1, 17) << self.cfg.out_bits) - 1)
        m.d.sync += self.o.valid.eq(s1_valid)
        for k in range(n):
            y = s1_y[k]
            shifted = Signal(signed(self.y_width), name=f"shifted{k}")
            m.d.comb += shifted.eq(y >> self.cfg.shift)
            # the clamp to [0, hi] (hi < 2**16): negative -> 0; any of bits 16.. set, or the low 16
            # bits above hi -> hi (a 16-bit compare instead of one as wide as y)
            low = shifted.as_unsigned()[:min(16, self.y_width - 1)]
            above = shifted.as_unsigned()[16:-1].any() if self.y_width > 17 else Const(0, 1)
            clamped = Mux(shifted[-1], 0, Mux(above | (low > hi), hi, low))
            with m.Switch(self.cfg.out_kind):
                with m.Case(OutKind.SIGN):
                    m.d.sync += self.o.y[k].eq(s1_bit[k])
                with m.Case(OutKind.REQUANT):
                    m.d.sync += self.o.y[k].eq(clamped)
                with m.Default():
                    m.d.sync += self.o.y[k].eq(y)
        return m
