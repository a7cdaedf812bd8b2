"""Processing element of the systolic array: XNOR/AND-popcount of one word per cycle, accumulated.

Arithmetic (one step, ``a``, ``w``, ``m`` are ``word``-bit vectors, ``n = popcount(m)``)::

    contrib = (2 * popcount(~(a ^ w) & m) - n) << b

* binary activations: ``a`` = activation bits, ``m`` = valid-tap mask, ``b = 0``: the +-1 dot
  product of the valid taps, ``2*popcount(XNOR(a, w) & valid) - popcount(valid)``;
* bit plane ``b`` of unsigned activations: ``a = m = x_b``: ``~(x_b ^ w) & x_b = w & x_b`` so
  ``contrib = (2*popcount(w & x_b) - popcount(x_b)) << b = (sum_i w_i * x_b,i) << b``.

Padded taps and padding bits of the last word have ``m = 0`` and add nothing.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._util import check_bool, check_int, checking
from .params import ctl_layout, drain_layout

__all__ = ["popcount", "PE"]


def popcount(value):
    """Number of ones of ``value`` as a balanced adder tree (an unsigned Amaranth value)."""
    level = [value[i].as_unsigned() for i in range(len(value))]
    if not level:
        raise ValueError("popcount of a zero-width value")
    while len(level) > 1:
        nxt = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class PE(wiring.Component):
    """One processing element (output-stationary).

    Parameters (keyword-only): ``word`` (bits per step), ``max_in_bits`` (largest bit-plane index
    + 1), ``p_width`` (signed width of the partial), ``tap_width`` (width of the segment index),
    ``last_col`` (this PE is in the last column: it tags its drained partials), ``stages`` (1 or
    2, default 1; see below).

    Ports: operands and control come in from the PE above (``a_in``, ``m_in``, ``n_in`` =
    popcount of ``m_in``, ``ctl_in``) and from the left (``w_in``); each leaves one cycle later on
    the matching ``*_out`` port. ``ctl_acc`` (output) is the control of the step the PE
    accumulates in this cycle: ``ctl_in`` with one stage; with two, the step's ``contrib`` is
    registered with its control and ``ctl_acc`` is that registered control (the step of the
    previous cycle). When ``ctl_acc.valid``, the step's ``contrib`` is added to the partial; on
    ``ctl_acc.seg_last`` the finished partial (with ``t``, ``tile_last``, ``gt_last``) is kept in
    a hold register and the partial restarts at 0 (the next segment accumulates at once).

    Drain: ``commit`` (the row's last PE finishing its segment, i.e. its ``ctl_acc.valid &
    ctl_acc.seg_last``, the same cycle for the whole row) loads the held partial into ``d_out``
    (the last-column PE loads the partial it finishes in that cycle); otherwise ``d_out`` takes
    ``d_in`` (the PE to the right): the row's drain chain moves towards column 0 one position per
    cycle.
    """

    def __init__(self, *, word, max_in_bits, p_width, tap_width, last_col=False, stages=1):
        with checking(self):
            check_int("stages", stages, 1, 2)
            check_int("word", word, 1)
            check_int("max_in_bits", max_in_bits, 1, 8)
            check_int("p_width", p_width, 2)
            check_int("tap_width", tap_width, 1)
            check_bool("last_col", last_col)
        self.word, self.max_in_bits, self.p_width, self.last_col = word, max_in_bits, p_width, last_col
        self.stages = stages
        b_width = max(max_in_bits - 1, 1).bit_length()
        ctl = ctl_layout(b_width=b_width, tap_width=tap_width)
        drain = drain_layout(p_width=p_width, tap_width=tap_width)
        super().__init__({
            "a_in": In(word), "m_in": In(word), "n_in": In(range(word + 1)), "ctl_in": In(ctl),
            "w_in": In(word), "d_in": In(drain), "commit": In(1),
            "a_out": Out(word), "m_out": Out(word), "n_out": Out(range(word + 1)), "ctl_out": Out(ctl),
            "w_out": Out(word), "d_out": Out(drain),
            "ctl_acc": Out(ctl), "acc": Out(signed(p_width)),
        })

    def elaborate(self, platform):
        m = Module()
        match = popcount(~(self.a_in ^ self.w_in) & self.m_in)
        contrib = Signal(signed(self.word.bit_length() + 2 + self.max_in_bits))
        # with two stages the contribution and its control are registered, and accumulated a cycle later
        stage = m.d.comb if self.stages == 1 else m.d.sync
        stage += [contrib.eq((match * 2 - self.n_in) << self.ctl_in.b), self.ctl_acc.eq(self.ctl_in)]
        ctl = self.ctl_acc
        acc_next = Signal(signed(self.p_width))
        m.d.comb += acc_next.eq(self.acc + contrib)

        m.d.sync += [
            self.a_out.eq(self.a_in), self.m_out.eq(self.m_in), self.n_out.eq(self.n_in),
            self.ctl_out.eq(self.ctl_in), self.w_out.eq(self.w_in),
        ]
        finished = Signal(self.d_out.shape())
        m.d.comb += [
            finished.valid.eq(1),
            finished.p.eq(acc_next),
            finished.t.eq(ctl.t),
            finished.tile_last.eq(ctl.tile_last),
            finished.gt_last.eq(ctl.gt_last),
            finished.last_col.eq(int(self.last_col)),
        ]
        with m.If(ctl.valid & ctl.seg_last):
            m.d.sync += self.acc.eq(0)
        with m.Elif(ctl.valid):
            m.d.sync += self.acc.eq(acc_next)
        if self.last_col:
            held = finished
        else:
            held = Signal(self.d_out.shape(), name="held")
            with m.If(ctl.valid & ctl.seg_last):
                m.d.sync += held.eq(finished)
        with m.If(self.commit):
            m.d.sync += self.d_out.eq(held)
        with m.Else():
            m.d.sync += self.d_out.eq(self.d_in)
        return m
