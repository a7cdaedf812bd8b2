"""Systolic array of ``rows x cols`` :class:`~binaccel.hw.pe.PE` with input skew and row drain chains."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .params import ctl_layout, drain_layout
from ._util import check_int, checking
from .pe import PE, popcount

__all__ = ["SystolicArray", "array_in_layout"]


def array_in_layout(*, rows, cols, word, b_width, tap_width):
    """One operand step at the array edge: control, a weight word per row, activation and mask
    words per column."""
    return data.StructLayout({
        "ctl": ctl_layout(b_width=b_width, tap_width=tap_width),
        "w": data.ArrayLayout(word, rows),
        "a": data.ArrayLayout(word, cols),
        "m": data.ArrayLayout(word, cols),
    })


class SystolicArray(wiring.Component):
    """Output-stationary systolic array.

    Parameters (keyword-only): ``rows``, ``cols``, ``word``, ``max_in_bits``, ``p_width``,
    ``tap_width``, ``pe_stages`` (default 1; see :class:`~binaccel.hw.pe.PE`).

    ``i`` (input, sampled every cycle; ``i.ctl.valid == 0`` is a bubble): one operand step. Row
    ``r`` of the array works on weight word ``i.w[r]``, column ``c`` on ``i.a[c]``/``i.m[c]``. The
    step is registered, weights are delayed ``r`` cycles (row skew) and shift right, activations,
    masks and control are delayed ``c`` cycles (column skew) and shift down, so PE ``(r, c)`` sees
    a step given at cycle ``T`` during cycle ``T + 1 + r + c`` (and, with two PE stages, adds it to
    its partial in the cycle after).

    ``drain[r]`` (output): the partials of row ``r``; a step with ``seg_last`` given at cycle ``T``
    yields the partial of column ``c`` during cycle ``T + pe_stages + r + cols + c`` (``valid`` set, in
    column order, one per cycle): each PE holds its finished partial until the row's last PE
    finishes (the row's ``commit``), then the row's chain shifts them out towards column 0. Segment
    ends must be at least ``cols`` cycles apart so that a row's chain has emptied (and the holds
    have been committed) before the next segment's partials are committed.
    """

    def __init__(self, *, rows, cols, word, max_in_bits, p_width, tap_width, pe_stages=1):
        with checking(self):
            for name, v, lo, hi in (("rows", rows, 1, None), ("cols", cols, 1, None), ("word", word, 1, None),
                                    ("max_in_bits", max_in_bits, 1, 8), ("p_width", p_width, 2, None),
                                    ("tap_width", tap_width, 1, None), ("pe_stages", pe_stages, 1, 2)):
                check_int(name, v, lo, hi)
        self.rows, self.cols, self.word = rows, cols, word
        self.max_in_bits, self.p_width, self.tap_width = max_in_bits, p_width, tap_width
        self.pe_stages = pe_stages
        self.b_width = max(max_in_bits - 1, 1).bit_length()
        super().__init__({
            "i": In(array_in_layout(rows=rows, cols=cols, word=word, b_width=self.b_width,
                                    tap_width=tap_width)),
            "drain": Out(data.ArrayLayout(drain_layout(p_width=p_width, tap_width=tap_width), rows)),
        })

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        ctl = ctl_layout(b_width=self.b_width, tap_width=self.tap_width)

        # input register; popcount of each mask word computed once per column
        step = Signal.like(self.i)
        m.d.sync += step.eq(self.i)
        n_in = [Signal(range(self.word + 1), name=f"n_in{c}") for c in range(C)]
        for c in range(C):
            m.d.sync += n_in[c].eq(popcount(self.i.m[c]))

        # column skew: column c delayed c cycles (activation, mask, popcount, control)
        col_a, col_m, col_n, col_ctl = [], [], [], []
        for c in range(C):
            a, mk, n, k = step.a[c], step.m[c], n_in[c], step.ctl
            for d in range(c):
                a2 = Signal(self.word, name=f"skew_a{c}_{d}")
                m2 = Signal(self.word, name=f"skew_m{c}_{d}")
                n2 = Signal(range(self.word + 1), name=f"skew_n{c}_{d}")
                k2 = Signal(ctl, name=f"skew_ctl{c}_{d}")
                m.d.sync += [a2.eq(a), m2.eq(mk), n2.eq(n), k2.eq(k)]
                a, mk, n, k = a2, m2, n2, k2
            col_a.append(a), col_m.append(mk), col_n.append(n), col_ctl.append(k)
        # row skew: row r delayed r cycles
        row_w = []
        for r in range(R):
            w = step.w[r]
            for d in range(r):
                w2 = Signal(self.word, name=f"skew_w{r}_{d}")
                m.d.sync += w2.eq(w)
                w = w2
            row_w.append(w)

        pes = [[None] * C for _ in range(R)]
        for r in range(R):
            for c in range(C):
                pe = PE(word=self.word, max_in_bits=self.max_in_bits, p_width=self.p_width,
                        tap_width=self.tap_width, last_col=(c == C - 1), stages=self.pe_stages)
                m.submodules[f"pe_{r}_{c}"] = pe
                pes[r][c] = pe
        for r in range(R):
            for c in range(C):
                pe = pes[r][c]
                if r == 0:
                    m.d.comb += [pe.a_in.eq(col_a[c]), pe.m_in.eq(col_m[c]), pe.n_in.eq(col_n[c]),
                                 pe.ctl_in.eq(col_ctl[c])]
                else:
                    up = pes[r - 1][c]
                    m.d.comb += [pe.a_in.eq(up.a_out), pe.m_in.eq(up.m_out), pe.n_in.eq(up.n_out),
                                 pe.ctl_in.eq(up.ctl_out)]
                m.d.comb += pe.w_in.eq(row_w[r] if c == 0 else pes[r][c - 1].w_out)
                if c < C - 1:
                    m.d.comb += pe.d_in.eq(pes[r][c + 1].d_out)
                # else: d_in stays 0 (nothing enters the chain from the right)
            last = pes[r][C - 1]
            commit = Signal(name=f"commit{r}")
            m.d.comb += commit.eq(last.ctl_acc.valid & last.ctl_acc.seg_last)
            for c in range(C):
                m.d.comb += pes[r][c].commit.eq(commit)
            m.d.comb += self.drain[r].eq(pes[r][0].d_out)
        return m
