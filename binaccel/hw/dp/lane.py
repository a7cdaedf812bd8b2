"""Output lane: the results of one array row turned into layer outputs as they leave the row."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from binaccel.sw.hwif import dp as dpif

from .._util import REPLICA, check_int, checking
from ..params import LaneKind, layout
from .carry import Term, fused_add
from .dsp import RegisteredMul
from .pe import result_layout

__all__ = ["Lane", "LaneKind", "lane_cfg_layout", "lane_param_layout"]


def _sext(value, width):
    """The signed ``value`` sign-extended to ``width`` bits (as an unsigned value)."""
    v = value.as_signed() if hasattr(value, "as_signed") else value
    if len(v) >= width:
        return v.as_unsigned()[:width]
    return Cat(v, v[-1].replicate(width - len(v)))


def lane_cfg_layout(*, shift_width: int, z_width: int) -> data.StructLayout:
    """Per-layer lane configuration (:func:`binaccel.sw.hwif.dp.lane_cfg_layout`)."""
    return layout(dpif.lane_cfg_layout(shift_width=shift_width, z_width=z_width))


def lane_param_layout(*, off_width, mul_bits, add_bits) -> data.StructLayout:
    """Per-output-channel lane parameters (:func:`binaccel.sw.hwif.dp.lane_param_layout`)."""
    return layout(dpif.lane_param_layout(off_width=off_width, mul_bits=mul_bits, add_bits=add_bits))


class Lane(wiring.Component):
    """Turns the results of one array row into layer outputs, one result per cycle, never stalling.

    Parameters (keyword-only): ``acc_width``, ``n_width``, ``tag_width`` (the array's result
    layout), ``cols`` (group size of ``sum_cols`` and ``pool``), ``off_width``, ``mul_bits``,
    ``add_bits`` (parameter widths), ``shift_width``, ``y_width`` (output width).

    For each valid ``i`` (an array result ``acc``, ``n``, ``tag``), with the parameters of bank
    ``tag[0]``:

    * ``v = (acc << cfg.alpha) - n``;
    * with ``cfg.sum_cols``, the ``v`` of each group of ``cols`` consecutive results are summed
      and only the sum goes on; then ``noff`` is added (once per value that goes on): ``s``;
    * ``z = s * mul + add``; SIGN: ``y = (z >= 0)`` (a threshold ``t`` is ``mul = 1, add = -t``,
      and ``s <= t`` is ``mul = -1, add = t``); REQUANT: ``y = clip(z >> shift, 0,
      2**out_bits - 1)``; LOGITS: ``y = z``;
    * with ``cfg.pool`` (SIGN, REQUANT), the largest ``y`` of each group of ``cols`` consecutive
      outputs goes on.

    ``o`` carries ``y`` (two's complement in ``y_width`` bits) with ``valid`` for one cycle,
    :attr:`latency` cycles after the result that completes it. The parameter banks are written
    through ``p_we``/``p_bank``/``p_data`` at any time (the bank not in use); every write also
    takes ``cfg`` (the layer's configuration must be on ``cfg`` at the layer's first parameter
    write and stay until its last result).
    :func:`binaccel.sw.dpref.lane` is the reference.
    """

    #: Widest map output (bits).
    MAP_BITS = 8

    def __init__(self, *, acc_width, n_width, tag_width, cols, off_width, mul_bits, add_bits, shift_width, y_width):
        with checking(self):
            for name, v, lo in (("acc_width", acc_width, 2), ("n_width", n_width, 1), ("tag_width", tag_width, 1),
                                ("cols", cols, 1), ("off_width", off_width, 2), ("mul_bits", mul_bits, 2),
                                ("add_bits", add_bits, 2), ("shift_width", shift_width, 1), ("y_width", y_width, 9)):
                check_int(name, v, lo)
        self.acc_width, self.n_width, self.cols = acc_width, n_width, cols
        self.v_width = max(acc_width + 1, n_width) + 2
        self.s_width = max(self.v_width + max(cols - 1, 1).bit_length(), off_width) + 1
        self.z_width = dpif.lane_z_width(acc_width=acc_width, n_width=n_width, cols=cols, off_width=off_width,
                                         mul_bits=mul_bits, add_bits=add_bits)
        assert self.z_width == max(self.s_width + mul_bits, add_bits) + 1
        self.y_width = y_width
        self.mul_bits, self.add_bits = mul_bits, add_bits
        self.param_layout = lane_param_layout(off_width=off_width, mul_bits=mul_bits, add_bits=add_bits)
        super().__init__({
            "cfg": In(lane_cfg_layout(shift_width=shift_width, z_width=self.z_width)),
            "i": In(result_layout(acc_width=acc_width, n_width=n_width, tag_width=tag_width)),
            "p_we": In(1), "p_bank": In(1), "p_data": In(self.param_layout),
            "o": Out(data.StructLayout({"valid": 1, "y": signed(y_width)})),
        })

    #: Cycles from a result on ``i`` to its output's ``valid`` on ``o``: the input register, five
    #: stages, the multiplier's registers and the output register.
    latency = 8 + RegisteredMul.latency

    def elaborate(self, platform):
        m = Module()
        # the parameter write, registered where it enters the lane (each lane its own copy)
        p_we = Signal()
        p_bank = Signal(reset_less=True, attrs=REPLICA)
        p_data = Signal(self.param_layout, reset_less=True, attrs=REPLICA)
        m.d.sync += [p_we.eq(self.p_we), p_bank.eq(self.p_bank), p_data.eq(self.p_data)]
        banks = [Signal(self.param_layout, name=f"bank{b}", reset_less=True) for b in range(2)]
        for b in range(2):
            with m.If(p_we & (p_bank == b)):
                m.d.sync += banks[b].eq(p_data)

        # the lane's own copy of the layer configuration, taken with every parameter write (a
        # layer's first parameters come before its first result): no configuration net fans out
        # to all lanes on a timing path
        Z = self.z_width
        cfg = Signal(self.cfg.shape(), reset_less=True)
        with m.If(p_we):
            m.d.sync += cfg.eq(self.cfg)
        top, high = cfg.top, cfg.high

        # 0: the result, registered where it enters the lane
        i_valid = Signal()
        i_q = Signal(self.i.shape(), reset_less=True)
        m.d.sync += [i_valid.eq(self.i.valid), i_q.eq(self.i)]

        # 1: v = (acc << alpha) - n, with the parameters of the result's bank
        v1 = Signal(signed(self.v_width), reset_less=True)
        ok1 = Signal()
        prm1 = Signal(self.param_layout, reset_less=True)
        acc = i_q.acc.as_unsigned()
        # (the alpha select and the complement of n in the carry cells)
        VW = self.v_width
        acc_w = Cat(acc, Const(0, VW - len(acc)))
        dbl = Cat(Const(0, 1), acc, Const(0, VW - len(acc) - 1))
        m.d.sync += [
            ok1.eq(i_valid),
            v1.eq(fused_add(m, platform, Term(i_q.n, gate="not"), Term(acc_w, cfg.alpha, "mux", alt=dbl),
                            name="v1", carry_in=1)[:VW]),
            prm1.eq(Mux(i_q.tag[0], banks[1].as_value(), banks[0].as_value())),
        ]

        # 2: the sum over a group of `cols` results (or the value itself), plus the offset once
        s2 = Signal(signed(self.s_width), reset_less=True)
        ok2 = Signal()
        prm2 = Signal(self.param_layout, reset_less=True)
        gi = Signal(range(max(self.cols, 2)))
        gsum = Signal(signed(self.s_width), reset_less=True)
        m.d.sync += ok2.eq(0)
        g_first = Signal(init=1)       # gi == 0, a register (it selects the addend)
        g_last = Signal(init=self.cols == 1)   # gi == cols - 1
        with m.If(ok1):
            m.d.sync += prm2.eq(prm1)
            # (the addend's select in the carry cells; both addends sign-extended to s_width)
            SW = self.s_width
            add_sel = ~cfg.sum_cols | g_first
            total = fused_add(m, platform, Term(_sext(v1, SW)),
                              Term(_sext(gsum, SW), add_sel, "mux", alt=_sext(prm1.noff, SW)),
                              name="total")[:SW].as_signed()
            with m.If(cfg.sum_cols):
                with m.If(g_last):
                    m.d.sync += [gi.eq(0), g_first.eq(1), g_last.eq(self.cols == 1), s2.eq(total), ok2.eq(1)]
                with m.Else():
                    m.d.sync += [gi.eq(gi + 1), g_first.eq(0), g_last.eq(gi == self.cols - 2), gsum.eq(total)]
            with m.Else():
                m.d.sync += [s2.eq(total), ok2.eq(1)]

        # 3: multiply, as two products that each fit one DSP multiplier with its own registers (the
        # low 17 bits of s, unsigned, and the rest, signed); 4: their sum; 5: plus `add`
        LO = 17
        prod_w = self.s_width + self.mul_bits
        hi_w = max(self.s_width - LO, 2)
        m.submodules.mul_lo = mul_lo = RegisteredMul(a_width=LO + 1, b_width=self.mul_bits)
        m.submodules.mul_hi = mul_hi = RegisteredMul(a_width=hi_w, b_width=self.mul_bits)
        m.d.comb += [mul_lo.a.eq(Cat(s2[:LO], Const(0, 1)).as_signed()), mul_lo.b.eq(prm2.mul),
                     mul_hi.a.eq(s2[LO:].as_signed() if self.s_width > LO else 0), mul_hi.b.eq(prm2.mul)]
        ok3, add3 = ok2, prm2.add
        for d in range(RegisteredMul.latency):
            ok_d, add_d = Signal(name=f"ok3_{d}"), Signal(signed(self.add_bits), name=f"add3_{d}", reset_less=True)
            m.d.sync += [ok_d.eq(ok3), add_d.eq(add3)]
            ok3, add3 = ok_d, add_d
        prod4 = Signal(signed(prod_w + 1), reset_less=True)
        add4 = Signal(signed(self.add_bits), reset_less=True)
        ok4a = Signal()
        m.d.sync += [ok4a.eq(ok3), prod4.eq((mul_hi.p << LO) + mul_lo.p), add4.eq(add3)]
        z4 = Signal(signed(max(prod_w, self.add_bits) + 1), reset_less=True)
        ok4 = Signal()
        m.d.sync += [ok4.eq(ok4a), z4.eq(prod4 + add4)]

        # 5: the output function (a map value of up to 8 bits, or the logit)
        u5 = Signal(self.MAP_BITS, reset_less=True)
        z5 = Signal(signed(self.y_width), reset_less=True)
        ok5 = Signal()
        # requantization needs only the out_bits bits of z >> shift and whether any bit above them
        # is set (z >= 0): bit selects and an AND-OR with the pre-decoded mask, not a barrel shifter
        assert len(z4) == Z
        # (5a: the bytes of z from 8 * (shift // 8) on, the overflow and the sign, registered; 5b:
        # the bits from shift % 8 on, clipped: two small multiplexers, not one barrel shifter)
        W2 = 2 * self.MAP_BITS
        zpad = Cat(z4.as_unsigned(), Const(0, max((1 << len(cfg.shift)) + W2 - Z, 1)))   # (z >> shift for any shift)
        coarse5 = Signal(W2, reset_less=True)
        over5 = Signal(reset_less=True)
        neg5 = Signal(reset_less=True)
        z5a = Signal(signed(self.y_width), reset_less=True)
        ok5a = Signal()
        m.d.sync += [ok5a.eq(ok4), z5a.eq(z4), neg5.eq(z4[-1]),
                     coarse5.eq(zpad.bit_select(Cat(Const(0, 3), cfg.shift[3:]), W2)),
                     over5.eq((z4.as_unsigned() & high).any())]
        m.d.sync += [ok5.eq(ok5a), z5.eq(z5a)]
        sel5 = coarse5.bit_select(cfg.shift[:3], self.MAP_BITS)
        with m.If(cfg.kind == LaneKind.SIGN):
            m.d.sync += u5.eq(~neg5)
        with m.Else():
            m.d.sync += u5.eq(Mux(neg5, 0, Mux(over5, top, sel5 & top)))

        # 6: the largest of a pooling group (or the output itself)
        pi = Signal(range(max(self.cols, 2)))
        pmax = Signal(self.MAP_BITS, reset_less=True)
        o_v = Signal()
        o_y = Signal(signed(self.y_width), reset_less=True)
        m.d.comb += [self.o.valid.eq(o_v), self.o.y.eq(o_y)]
        logits = cfg.kind == LaneKind.LOGITS
        m.d.sync += o_v.eq(0)
        with m.If(ok5):
            with m.If(cfg.pool & ~logits):
                best = Mux((pi == 0) | (u5 > pmax), u5, pmax)
                with m.If(pi == self.cols - 1):
                    m.d.sync += [pi.eq(0), o_y.eq(best), o_v.eq(1)]
                with m.Else():
                    m.d.sync += [pi.eq(pi + 1), pmax.eq(best)]
            with m.Else():
                m.d.sync += [o_y.eq(Mux(logits, z5, u5)), o_v.eq(1)]
        return m
