"""The engine feeder of the accelerator.

:class:`Feeder` produces the engine's input beats of one layer run: the descriptor, the M-Filter
columns and, per group tile, the parameter beats (from the table buffer) followed by the operand
steps of the fetch unit. The accelerator's build parameters (:class:`~binaccel.sw.hwif.AccelParams`),
its layer descriptor, command words and constants are the host/hardware interface,
:mod:`binaccel.sw.hwif`; ``docs/accelerator.md`` specifies the command stream and the buffer layouts.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from binaccel.sw.hwif import AccelParams

from ._util import checking
from .params import BeatKind, layout

__all__ = ["Feeder"]


class Feeder(wiring.Component):
    """Engine input beats of one layer run.

    After ``start`` (one cycle, with ``cfg`` valid and stable for the whole run) ``o_stream``
    carries: the DESC beat ``cfg.eng``; ``cfg.eng.n_seg`` MFILT beats (table entries
    ``m_base ..``); then per group tile ``rows`` PARAM beats (table entries ``p_base ..``,
    consecutive over the group tiles) followed by ``cfg.gt_opers`` OPER beats taken from
    ``oper_stream``. ``busy`` is high from ``start`` to the last beat's transfer. Table reads go
    through ``t_addr``/``t_en``/``t_data`` (a synchronous read port, one cycle latency).
    """

    def __init__(self, *, params: AccelParams):
        with checking(self):
            if not isinstance(params, AccelParams):
                raise TypeError(f"params must be an AccelParams, got {type(params).__name__}")
        self.params = p = params
        e = p.engine
        super().__init__({
            "cfg": In(layout(p.desc_layout)),
            "start": In(1),
            "busy": Out(1),
            "t_addr": Out(p.t_aw),
            "t_en": Out(1),
            "t_data": In(p.table_width),
            "oper_stream": In(stream.Signature(layout(e.oper_layout))),
            "o_stream": Out(stream.Signature(layout(e.in_layout))),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        e = p.engine
        cfg = self.cfg
        out = self.o_stream
        xfer = Signal()
        m.d.comb += xfer.eq(out.valid & out.ready)

        idx = Signal(range(max(e.max_taps, e.rows) + 1))
        ptr = Signal(p.t_aw)
        tvalid = Signal()                  # t_data holds the entry at ptr
        gt = Signal(e.count_bits)
        opers = Signal(32)

        last_m = idx == cfg.eng.n_seg - 1
        last_r = idx == e.rows - 1
        m.d.comb += self.t_addr.eq(ptr)

        def table_beat(kind, field, last, next_ptr_on_last, on_last):
            m.d.comb += [out.payload.kind.eq(kind), out.valid.eq(tvalid)]
            m.d.comb += field.eq(self.t_data[:len(field.as_value())])
            with m.If(~tvalid):
                m.d.comb += self.t_en.eq(1)
                m.d.sync += tvalid.eq(1)
            with m.Elif(xfer):
                with m.If(last):
                    m.d.sync += [idx.eq(0), tvalid.eq(0)]
                    if next_ptr_on_last is not None:
                        m.d.sync += ptr.eq(next_ptr_on_last)
                    on_last()
                with m.Else():
                    # read the next entry at once: one beat per cycle
                    m.d.comb += [self.t_en.eq(1), self.t_addr.eq(ptr + 1)]
                    m.d.sync += [idx.eq(idx + 1), ptr.eq(ptr + 1)]

        with m.FSM(name="feed") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [idx.eq(0), ptr.eq(cfg.m_base), tvalid.eq(0), gt.eq(0)]
                    m.next = "DESC"
            with m.State("DESC"):
                m.d.comb += [out.valid.eq(1), out.payload.kind.eq(BeatKind.DESC),
                             out.payload.data.desc.eq(cfg.eng)]
                with m.If(xfer):
                    m.next = "MFILT"
            with m.State("MFILT"):
                def to_param():
                    m.next = "PARAM"
                table_beat(BeatKind.MFILT, out.payload.data.mfilt, last_m, cfg.p_base, to_param)
            with m.State("PARAM"):
                def to_oper():
                    m.d.sync += opers.eq(0)
                    m.next = "OPER"
                table_beat(BeatKind.PARAM, out.payload.data.param, last_r, ptr + 1, to_oper)
            with m.State("OPER"):
                m.d.comb += [out.valid.eq(self.oper_stream.valid), out.payload.kind.eq(BeatKind.OPER),
                             out.payload.data.oper.eq(self.oper_stream.payload),
                             self.oper_stream.ready.eq(out.ready)]
                with m.If(xfer):
                    with m.If(opers == cfg.gt_opers - 1):
                        with m.If(gt == cfg.eng.n_gt - 1):
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += gt.eq(gt + 1)
                            m.next = "PARAM"
                    with m.Else():
                        m.d.sync += opers.eq(opers + 1)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
