"""The binaccel engine: one runtime-configured layer processor, streams in, streams out.

The input stream carries, for one layer run (see ``docs/hardware.md`` for the bit layouts and
:mod:`binaccel.sw.pack` for the host side)::

    DESC                                   layer descriptor (shape, in_bits, planes, out kind, ...)
    MFILT x n_seg                          M-Filter column of each segment (max_planes factors)
    repeat n_gt times (group tiles):
        PARAM x rows                       per row: the output parameters of its max_planes channels
        repeat n_pt times (position tiles):
            OPER x (n_seg * seg_words * in_bits)   operand steps, word-major, bit plane minor

The output stream carries, per tile (group tile major, position tile minor), ``cols`` beats
(column ``c`` = position ``pt*cols + c``) of ``rows * max_planes`` lanes (lane ``r*max_planes + j``
= output channel ``(gt*rows + r)*planes + j``), already scaled / thresholded.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ._util import checking
from .array import SystolicArray
from .modulation import ModulationUnit, mod_out_layout
from .params import BeatKind, EngineParams, layout
from .scale import ScaleUnit

__all__ = ["Engine"]


class Engine(wiring.Component):
    """Systolic XNOR/AND-popcount engine with modulation and scale units.

    Keyword parameters: those of :class:`~binaccel.hw.params.EngineParams` (``rows``, ``cols``,
    ``word``, ``max_fan_in``, ``max_in_bits``, ``max_planes``, ``max_taps``, ``m_bits``,
    ``mul_bits``, ``add_bits``, ``count_bits``), each checked.

    Ports:

    * ``i_stream`` (``stream.Signature(params.in_layout)``): descriptor, M-Filter, parameter and
      operand beats (module docstring). A descriptor is accepted only when the previous layer's
      outputs have all left ``o_stream``.
    * ``o_stream`` (``stream.Signature(params.out_layout)``): output beats.
    * ``busy``: a layer is running or outputs are pending.
    * ``error`` (sticky until reset): a beat of the wrong kind for the engine's state (it was
      dropped), or a descriptor with a field out of range (dropped).

    Both streams follow the valid/ready rules; ``i_stream.ready`` depends only on the engine's
    state. Internally nothing stalls: an operand step that ends a segment is accepted only
    ``cols`` cycles after the previous segment end (drain chain spacing), and a step that ends
    a tile only when the output FIFO has room reserved for the tile's ``cols`` beats.
    """

    def __init__(self, **kwargs):
        with checking(self):
            self.params = EngineParams(**kwargs)
        p = self.params
        super().__init__({
            "i_stream": In(stream.Signature(layout(p.in_layout))),
            "o_stream": Out(stream.Signature(layout(p.out_layout))),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        R, C, K = p.rows, p.cols, p.max_planes

        # ---- datapath blocks ------------------------------------------------------------------
        m.submodules.array = arr = SystolicArray(rows=R, cols=C, word=p.word, max_in_bits=p.max_in_bits,
                                                 p_width=p.pe_width, tap_width=p.tap_width, pe_stages=p.pe_stages)
        mods = []
        for r in range(R):
            mod = ModulationUnit(cols=C, max_planes=K, max_taps=p.max_taps, p_width=p.pe_width,
                                 acc_width=p.acc_width, m_bits=p.m_bits)
            m.submodules[f"mod{r}"] = mod
            mods.append(mod)
        m.submodules.scale = scale = ScaleUnit(lanes=p.lanes, acc_width=p.acc_width,
                                               thresh_width=p.thresh_width, mul_bits=p.mul_bits,
                                               add_bits=p.add_bits, y_width=p.y_width)
        pfifos = []
        for r in range(R):
            f = SyncFIFOBuffered(width=p.param_layout.size, depth=p.param_fifo_depth)
            m.submodules[f"param_fifo{r}"] = f
            pfifos.append(f)
        m.submodules.out_fifo = ofifo = SyncFIFOBuffered(width=p.out_layout.size, depth=p.out_fifo_depth)

        # ---- configuration ----------------------------------------------------------------------
        cfg = Signal(layout(p.desc_layout))
        mfilter = Signal(data.ArrayLayout(layout(p.mfilt_layout), p.max_taps))
        for mod in mods:
            m.d.comb += mod.mfilter.eq(mfilter)
        m.d.comb += [
            scale.cfg.out_kind.eq(cfg.out_kind),
            scale.cfg.shift.eq(cfg.shift),
            scale.cfg.out_bits.eq(cfg.out_bits),
        ]

        # ---- input sequencer ------------------------------------------------------------------
        beat = self.i_stream.payload
        b = Signal(p.b_width)
        wi = Signal.like(cfg.seg_words)
        t = Signal(p.tap_width)
        pt = Signal(p.count_bits)
        gt = Signal(p.count_bits)
        mi = Signal(p.tap_width)
        ri = Signal(range(max(R, 2)))
        reserved = Signal(range(p.out_fifo_depth + 1))
        since = Signal(range(p.seg_spacing + 1), init=p.seg_spacing)
        error = Signal()
        m.d.comb += self.error.eq(error)

        b_last = b == cfg.in_bits - 1
        w_last = wi == cfg.seg_words - 1
        seg_last = b_last & w_last
        t_last = t == cfg.n_seg - 1
        tile_last = seg_last & t_last
        pt_last = pt == cfg.n_pt - 1
        gt_tile_last = tile_last & pt_last
        g_last = gt == cfg.n_gt - 1

        ready = Signal()
        accept = Signal()
        m.d.comb += [self.i_stream.ready.eq(ready), accept.eq(self.i_stream.valid & ready)]

        oper_ok = Signal()        # an accepted operand step
        tile_done = Signal()      # ... that ends a tile
        pops = Signal()           # an output beat left the engine
        m.d.comb += pops.eq(self.o_stream.valid & self.o_stream.ready)

        pf_w_rdy = Array([f.w_rdy for f in pfifos])
        desc = beat.data.desc
        desc_ok = (desc.in_bits != 0) & (desc.seg_words != 0) & (desc.n_seg != 0) & (desc.n_pt != 0) \
            & (desc.n_gt != 0) & (desc.out_kind != 3)
        for field, limit in ((desc.in_bits, p.max_in_bits), (desc.seg_words, p.max_seg_words),
                             (desc.n_seg, p.max_taps)):
            if (1 << len(field)) - 1 > limit:  # (a comparison that cannot fail is left out)
                desc_ok &= field <= limit

        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                m.d.comb += ready.eq(reserved == 0)
                with m.If(accept):
                    with m.If((beat.kind == BeatKind.DESC) & desc_ok):
                        m.d.sync += [cfg.eq(desc), mi.eq(0)]
                        m.next = "MFILT"
                    with m.Else():
                        m.d.sync += error.eq(1)
            with m.State("MFILT"):
                m.d.comb += ready.eq(1)
                with m.If(accept):
                    with m.If(beat.kind == BeatKind.MFILT):
                        m.d.sync += mfilter[mi].eq(beat.data.mfilt)
                        with m.If(mi == cfg.n_seg - 1):
                            m.d.sync += [ri.eq(0), b.eq(0), wi.eq(0), t.eq(0), pt.eq(0), gt.eq(0)]
                            m.next = "PARAM"
                        with m.Else():
                            m.d.sync += mi.eq(mi + 1)
                    with m.Else():
                        m.d.sync += error.eq(1)
            with m.State("PARAM"):
                m.d.comb += ready.eq(pf_w_rdy[ri])
                with m.If(accept):
                    with m.If(beat.kind == BeatKind.PARAM):
                        for r, f in enumerate(pfifos):
                            m.d.comb += [f.w_data.eq(beat.data.param), f.w_en.eq(ri == r)]
                        with m.If(ri == R - 1):
                            m.d.sync += ri.eq(0)
                            m.next = "OPER"
                        with m.Else():
                            m.d.sync += ri.eq(ri + 1)
                    with m.Else():
                        m.d.sync += error.eq(1)
            with m.State("OPER"):
                m.d.comb += ready.eq(~(seg_last & (since < p.seg_spacing))
                                     & ~(tile_last & (reserved + C > p.out_fifo_depth)))
                with m.If(accept):
                    with m.If(beat.kind == BeatKind.OPER):
                        m.d.comb += [oper_ok.eq(1), tile_done.eq(tile_last)]
                        with m.If(b_last):
                            m.d.sync += b.eq(0)
                            with m.If(w_last):
                                m.d.sync += wi.eq(0)
                                with m.If(t_last):
                                    m.d.sync += t.eq(0)
                                    with m.If(pt_last):
                                        m.d.sync += pt.eq(0)
                                        with m.If(g_last):
                                            m.d.sync += gt.eq(0)
                                            m.next = "IDLE"
                                        with m.Else():
                                            m.d.sync += gt.eq(gt + 1)
                                            m.next = "PARAM"
                                    with m.Else():
                                        m.d.sync += pt.eq(pt + 1)
                                with m.Else():
                                    m.d.sync += t.eq(t + 1)
                            with m.Else():
                                m.d.sync += wi.eq(wi + 1)
                        with m.Else():
                            m.d.sync += b.eq(b + 1)
                    with m.Else():
                        m.d.sync += error.eq(1)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | (reserved != 0))

        # segment-end spacing and output credits
        with m.If(oper_ok & seg_last):
            m.d.sync += since.eq(1)
        with m.Elif(since < p.seg_spacing):
            m.d.sync += since.eq(since + 1)
        m.d.sync += reserved.eq(reserved + (tile_done * C) - pops)

        # ---- operand step into the array --------------------------------------------------------
        op = beat.data.oper
        m.d.comb += [
            arr.i.ctl.valid.eq(oper_ok),
            arr.i.ctl.b.eq(b),
            arr.i.ctl.seg_last.eq(seg_last),
            arr.i.ctl.tile_last.eq(tile_last),
            arr.i.ctl.gt_last.eq(gt_tile_last),
            arr.i.ctl.t.eq(t),
            arr.i.w.eq(op.w),
            arr.i.a.eq(op.a),
            arr.i.m.eq(op.m),
        ]

        # ---- drain -> modulation -> row alignment -> scale -> output FIFO -------------------------
        aligned = []
        for r in range(R):
            m.d.comb += mods[r].i.eq(arr.drain[r])
            v = mods[r].o
            for d in range(R - 1 - r):
                v2 = Signal(mod_out_layout(max_planes=K, acc_width=p.acc_width), name=f"align{r}_{d}")
                m.d.sync += v2.eq(v)
                v = v2
            aligned.append(v)
        m.d.comb += scale.i.valid.eq(aligned[0].valid)
        for r in range(R):
            for j in range(K):
                m.d.comb += scale.i.acc[r * K + j].eq(aligned[r].acc[j])
            prm = data.View(layout(p.param_layout), pfifos[r].r_data)
            for j in range(K):
                m.d.comb += scale.params[r * K + j].eq(prm[j])
            m.d.comb += pfifos[r].r_en.eq(aligned[0].valid & aligned[0].gt_last & aligned[0].last_col)

        m.d.comb += [
            ofifo.w_data.eq(scale.o.y),
            ofifo.w_en.eq(scale.o.valid),
            self.o_stream.payload.eq(ofifo.r_data),
            self.o_stream.valid.eq(ofifo.r_rdy),
            ofifo.r_en.eq(self.o_stream.ready),
        ]
        return m
