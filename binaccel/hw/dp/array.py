"""Output-stationary systolic array of :class:`~binaccel.hw.dp.pe.XnorPE`."""

from __future__ import annotations

from functools import reduce
from operator import or_

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .._util import REPLICA, check_int, checking
from .pe import XnorPE, result_layout, step_ctl_layout, valid_register

__all__ = ["XnorArray", "array_step_layout"]


def array_step_layout(*, rows, cols, word, slot, n_width, tag_width) -> data.StructLayout:
    """One operand step at the array's edge: control (``valid``, ``first``, ``dbl``, ``last``,
    ``tag``), a weight word per row, and per column an activation word, a slot mask and the
    count of valid bits in the step."""
    ctl = step_ctl_layout(n_width=n_width, tag_width=tag_width)
    return data.StructLayout({
        "ctl": data.StructLayout({name: ctl[name].shape for name in ("valid", "first", "dbl", "last", "tag")}),
        "w": data.ArrayLayout(word, rows),
        "a": data.ArrayLayout(word, cols),
        "m": data.ArrayLayout(word // slot, cols),
        "n": data.ArrayLayout(n_width, cols),
    })


class XnorArray(wiring.Component):
    """``rows x cols`` XNOR-popcount PEs, ``rows * cols * word`` binary MACs per cycle.

    Parameters (keyword-only): ``rows``, ``cols``, ``word``, ``slot``, ``acc_width``,
    ``n_width``, ``tag_width``, ``levels_per_stage`` (see :class:`~binaccel.hw.dp.pe.XnorPE`).

    ``i`` (input, sampled every cycle; ``i.ctl.valid == 0`` is a bubble): one operand step. Row
    ``r`` works on weight word ``i.w[r]``, column ``c`` on ``i.a[c]`` under slot mask ``i.m[c]``;
    column ``c`` counts ``N = i.n[c]`` summed over the segment. The arithmetic is that of
    :func:`binaccel.sw.dpref.xnor_array`. Column ``c`` sees a step ``c`` cycles after column 0
    (weight words move one column per cycle), all rows of a column at once.

    ``o[r]`` (output): the results of row ``r``. The results of a segment whose last step was on
    ``i`` in cycle ``T`` leave every row in cycles ``T + latency + c`` for ``c = 0 .. cols - 1``
    (column order, ``valid`` set, one per cycle). Segment ends must be at least ``cols`` cycles
    apart, so that no row has two results in one cycle. The array never stalls.
    """

    def __init__(self, *, rows, cols, word, slot, acc_width, n_width, tag_width, levels_per_stage=2):
        with checking(self):
            check_int("rows", rows, 1)
            check_int("cols", cols, 1)
            self._pe_kw = dict(word=word, slot=slot, acc_width=acc_width, n_width=n_width,
                               tag_width=tag_width, levels_per_stage=levels_per_stage)
            self._probe = XnorPE(**self._pe_kw)
            self._probe._MustUse__silence = True
        self.rows, self.cols, self.word, self.slot = rows, cols, word, slot
        self.acc_width, self.n_width, self.tag_width = acc_width, n_width, tag_width
        super().__init__({
            "i": In(array_step_layout(rows=rows, cols=cols, word=word, slot=slot, n_width=n_width,
                                      tag_width=tag_width)),
            "o": Out(data.ArrayLayout(result_layout(acc_width=acc_width, n_width=n_width, tag_width=tag_width),
                                      rows)),
        })

    #: Rows served by one copy of a column's operand register.
    ROWS_PER_COPY = 4

    @property
    def latency(self) -> int:
        """Cycles from a segment's last step on ``i`` to the result of PE ``(0, 0)`` on ``o[0]``."""
        return 1 + self._probe.latency + 1

    @property
    def macs_per_cycle(self) -> int:
        return self.rows * self.cols * self.word

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        ctl_layout = step_ctl_layout(n_width=self.n_width, tag_width=self.tag_width)

        # edge register: the step, with each column's count summed over the segment; column c is
        # then delayed c cycles (skew). The last register of a column's operand path is held once
        # per group of ROWS_PER_COPY rows, each copy driving that group's PEs only.
        copies = -(-R // self.ROWS_PER_COPY)

        def operand_regs(src_a, src_m, name, replicated):
            n = copies if replicated else 1
            attrs = REPLICA if replicated else {}
            ra = [Signal(self.word, name=f"{name}_a_{g}", reset_less=True, attrs=attrs) for g in range(n)]
            rm = [Signal(self.word // self.slot, name=f"{name}_m_{g}", reset_less=True, attrs=attrs) for g in range(n)]
            m.d.sync += [x.eq(src_a) for x in ra] + [x.eq(src_m) for x in rm]
            return ra, rm

        col_a, col_m, col_ctl = [], [], []
        for c in range(C):
            kv = Signal(name=f"edge_valid{c}")
            k = Signal(ctl_layout, name=f"edge_ctl{c}", reset_less=True)
            n_next = Mux(self.i.ctl.first, 0, k.n) + self.i.n[c]
            m.d.sync += [kv.eq(self.i.ctl.valid), k.first.eq(self.i.ctl.first), k.dbl.eq(self.i.ctl.dbl),
                         k.last.eq(self.i.ctl.last), k.tag.eq(self.i.ctl.tag)]
            with m.If(self.i.ctl.valid):
                m.d.sync += k.n.eq(n_next)
            k = data.View(ctl_layout, Cat(kv, k.as_value()[1:]))
            a, mk = operand_regs(self.i.a[c], self.i.m[c], f"edge{c}", replicated=c == 0)
            for d in range(c):
                a, mk = operand_regs(a[0], mk[0], f"skew{c}_{d}", replicated=d == c - 1)
                k = valid_register(m, k, f"skew_ctl{c}_{d}")
            col_a.append(a), col_m.append(mk), col_ctl.append(k)
        row_w = []
        for r in range(R):
            w = Signal(self.word, name=f"edge_w{r}", reset_less=True)
            m.d.sync += w.eq(self.i.w[r])
            row_w.append(w)

        pes = [[XnorPE(**self._pe_kw) for _ in range(C)] for _ in range(R)]
        for r in range(R):
            for c in range(C):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                # a column's step goes to all its rows at once; weights move one column per cycle
                g = r // self.ROWS_PER_COPY
                m.d.comb += [pe.a_in.eq(col_a[c][g]), pe.m_in.eq(col_m[c][g]), pe.ctl_in.eq(col_ctl[c])]
                m.d.comb += pe.w_in.eq(row_w[r] if c == 0 else pes[r][c - 1].w_out)
            # at most one PE of a row finishes in a cycle, and a PE's result is 0 while not valid:
            # the row's result is the OR of its PEs' results
            gated = [pes[r][c].res.as_value() for c in range(C)]
            o_v = Signal(name=f"o_valid{r}")
            o_d = Signal(len(self.o[r].as_value()) - 1, name=f"o_data{r}", reset_less=True)
            merged = reduce(or_, gated)
            m.d.sync += [o_v.eq(merged[0]), o_d.eq(merged[1:])]
            m.d.comb += self.o[r].eq(Cat(o_v, o_d))
        return m
