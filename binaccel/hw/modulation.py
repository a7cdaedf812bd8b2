"""Modulation unit: turns a row's stream of per-segment partials into the K plane accumulators.

For the partials ``P_t`` of one output position (segments ``t = 0 .. n_seg-1`` of a tile)::

    acc_j = sum_t M[t][j] * P_t        for every plane j < max_planes

* ``mcn`` layers: one segment per tap (fan-in ordered tap-major), ``M[t][j]`` = the M-Filter
  ``mfilter[j, ky, kx]`` with ``t = ky*k + kx``;
* ``mcn1`` (MCNs-1): a single segment covering every tap, ``M[0][j] = m[j]``: one product per plane,
  no per-tap work;
* ``plain``: a single segment, ``M[0][0] = 1``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ._util import check_int, checking
from .params import drain_layout

__all__ = ["ModulationUnit", "mod_out_layout"]


def mod_out_layout(*, max_planes, acc_width):
    return data.StructLayout({
        "valid": 1,
        "acc": data.ArrayLayout(signed(acc_width), max_planes),
        "gt_last": 1,
        "last_col": 1,
    })


class ModulationUnit(wiring.Component):
    """Per array row: multiply partials by the M-Filter and accumulate per position and plane.

    Parameters (keyword-only): ``cols`` (positions per tile), ``max_planes``, ``max_taps``,
    ``p_width`` (partial width), ``acc_width`` (accumulator width), ``m_bits``.

    ``i``: partials as they leave the row's drain chain: per segment, one partial per column in
    column order (``i.t`` = segment index, ``i.tile_last`` on the tile's last segment).
    ``mfilter[t][j]``: unsigned factors, held stable while a layer runs.
    ``o``: two cycles after the partial of the last segment of column ``c`` enters, ``o.valid``
    with ``o.acc[j]`` for every plane (and the ``gt_last``/``last_col`` tags of that partial).
    The unit keeps one accumulator set per column (a rotating bank), so partials must come exactly
    ``cols`` per segment, in column order, at most one per cycle; nothing else is assumed about
    their timing.
    """

    def __init__(self, *, cols, max_planes, max_taps, p_width, acc_width, m_bits):
        with checking(self):
            for name, v, lo in (("cols", cols, 1), ("max_planes", max_planes, 1), ("max_taps", max_taps, 1),
                                ("p_width", p_width, 2), ("acc_width", acc_width, 2), ("m_bits", m_bits, 1)):
                check_int(name, v, lo)
            if acc_width < p_width:
                raise ValueError(f"acc_width ({acc_width}) must be at least p_width ({p_width})")
        self.cols, self.max_planes, self.max_taps = cols, max_planes, max_taps
        self.p_width, self.acc_width, self.m_bits = p_width, acc_width, m_bits
        tap_width = max(max_taps - 1, 1).bit_length()
        super().__init__({
            "i": In(drain_layout(p_width=p_width, tap_width=tap_width)),
            "mfilter": In(data.ArrayLayout(data.ArrayLayout(unsigned(m_bits), max_planes), max_taps)),
            "o": Out(mod_out_layout(max_planes=max_planes, acc_width=acc_width)),
        })

    def elaborate(self, platform):
        m = Module()
        K = self.max_planes
        acc_shape = data.ArrayLayout(signed(self.acc_width), K)

        # stage 1: products M[t][j] * P
        s1_valid, s1_first = Signal(), Signal()
        s1_tile_last, s1_gt_last, s1_last_col = Signal(), Signal(), Signal()
        s1_prod = Signal(data.ArrayLayout(signed(self.p_width + self.m_bits + 1), K))
        mrow = self.mfilter[self.i.t]
        m.d.sync += [
            s1_valid.eq(self.i.valid),
            s1_first.eq(self.i.t == 0),
            s1_tile_last.eq(self.i.tile_last),
            s1_gt_last.eq(self.i.gt_last),
            s1_last_col.eq(self.i.last_col),
        ]
        for j in range(K):
            if self.m_bits == 1:  # a factor of 0 or 1: a select (a multiplier would take a DSP on the iCE40)
                m.d.sync += s1_prod[j].eq(Mux(mrow[j], self.i.p, 0))
            else:
                m.d.sync += s1_prod[j].eq(self.i.p * mrow[j])

        # stage 2: accumulate into the bank slot of this column (a rotating bank: slot 0 is always
        # the column whose partial comes next)
        bank = [Signal(acc_shape, name=f"bank{c}") for c in range(self.cols)]
        new = Signal(acc_shape)
        for j in range(K):
            m.d.comb += new[j].eq(Mux(s1_first, 0, bank[0][j]) + s1_prod[j])
        m.d.sync += self.o.valid.eq(s1_valid & s1_tile_last)
        with m.If(s1_valid):
            for c in range(self.cols - 1):
                m.d.sync += bank[c].eq(bank[c + 1])
            m.d.sync += [
                bank[self.cols - 1].eq(new),
                self.o.acc.eq(new),
                self.o.gt_last.eq(s1_gt_last),
                self.o.last_col.eq(s1_last_col),
            ]
        return m
