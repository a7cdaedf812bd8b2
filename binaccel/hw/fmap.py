"""Write-back unit: the engine's output beats into the next feature map (with 2x2 max-pool), or
the logits out.

Output beats arrive group tile major, position tile minor, ``cols`` beats per tile (column ``c`` =
position ``pt*cols + c`` of the layer's ``conv_h x conv_w`` output, raster order; positions past
the end are dropped), each with ``rows * max_planes`` lanes (lane ``r*max_planes + j`` = output
channel ``gt*rows*planes + r*planes + j``).

Feature-map layout (as the fetch unit reads it): pixel ``(y, x)`` of the output map occupies
``nch_out`` words at ``out_base + (y*out_w + x)*nch_out``; channel ``ch`` is bit ``ch*v`` of that
run of words (``v = 1`` bit for a binary map, ``v = 8`` bits, one byte, for a multi-bit map). A beat
covers ``gt_ch = rows*planes`` consecutive channels, i.e. a bit field that may span several words;
the unit read-modify-writes those words (other channels of the words are kept).

Pooling (``pool``): 2x2 max, stride 2, floor. The two beats of a horizontal pair are combined in a
register; the first row of a vertical pair is written, the second row read-modify-writes
(``max`` per byte, ``OR`` per bit, the same as max on {0,1}). Every word written is first read
through ``rd_*``, a read port of the output bank that must be transparent for ``wr_*``. Outputs of the odd last row/column are dropped.

Logits (``cfg.logits``): values go to ``l_stream`` instead, one per cycle, in arrival order (per
position, channels ascending), ``min(gt_ch, out_ch - gt*gt_ch)`` per beat.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from binaccel.sw.hwif import AccelParams

from ._util import checking
from .params import layout

__all__ = ["WriteBack"]


class WriteBack(wiring.Component):
    """Engine outputs -> feature-map bank words or logits (see module docstring).

    Ports: ``cfg`` (layer descriptor, stable during the run), ``start`` (one cycle), ``busy`` (from
    ``start`` until every output beat of the run, ``n_gt * n_pt * cols``, has been taken and
    written); ``i_stream`` (engine output beats); ``rd_addr``/``rd_en``/``rd_data`` and
    ``wr_addr``/``wr_en``/``wr_data`` of the output bank (whole words: the
    unit reads every word it writes and keeps the bits of other channels); ``l_stream``
    (logit values, ``signed(y_width)``).
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
            "i_stream": In(stream.Signature(layout(e.out_layout))),
            "rd_addr": Out(p.fm_aw),
            "rd_en": Out(1),
            "rd_data": In(e.word),
            "wr_addr": Out(p.fm_aw),
            "wr_en": Out(1),
            "wr_data": Out(e.word),
            "l_stream": Out(stream.Signature(signed(e.y_width))),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        e = p.engine
        C, W, R, K = e.cols, e.word, e.rows, e.max_planes
        NL = R * K
        NWB = p.wb_words
        WBW = NWB * W
        aw = p.fm_aw
        cfg = self.cfg
        inp = self.i_stream

        # ---- beat counters (describe the beat being accepted) ------------------------------------
        running = Signal()
        c = Signal(range(C))
        pt = Signal(e.count_bits)
        gt = Signal(e.count_bits)
        oy = Signal(p.oy_w)
        ox = Signal(p.dim_w)
        pa = Signal(aw)          # first word of the output pixel of this beat
        row_start = Signal(aw)
        fw = Signal(aw)          # word offset of this group tile's channels inside a pixel
        fb = Signal(range(W))    # ... and bit offset
        rem = Signal(p.ch_w)     # channels from this group tile on

        # ---- stage A: one accepted beat --------------------------------------------------------------
        a_valid = Signal()
        a_lanes = Signal(layout(e.out_layout))
        a_write = Signal()
        a_rmw = Signal()
        a_hold = Signal()        # first beat of a horizontal pool pair
        a_comb = Signal()        # second beat: max with the held one
        a_logit = Signal()       # a logits beat with a real position
        a_addr = Signal(aw)
        a_fb = Signal(range(W))
        a_n = Signal(range(NL + 1))
        a_done = Signal()

        take = Signal()
        m.d.comb += [inp.ready.eq(running & (~a_valid | a_done)), take.eq(inp.valid & inp.ready)]

        valid_pos = oy < cfg.conv_h
        n_val = Mux(rem < cfg.gt_ch, rem, cfg.gt_ch)
        inside = ((oy >> 1) < cfg.out_h) & ((ox >> 1) < cfg.out_w)
        even_x = ~ox[0]
        odd_y = oy[0]
        row_end = ox == cfg.conv_w - 1
        tile_end = c == C - 1
        gt_end = tile_end & (pt == cfg.eng.n_pt - 1)

        with m.If(self.start):
            m.d.sync += [running.eq(1), c.eq(0), pt.eq(0), gt.eq(0), oy.eq(0), ox.eq(0), pa.eq(cfg.out_base),
                         row_start.eq(cfg.out_base), fw.eq(0), fb.eq(0), rem.eq(cfg.out_ch)]
        with m.Elif(take):
            m.d.sync += [a_valid.eq(1), a_lanes.eq(inp.payload), a_addr.eq(pa + fw), a_fb.eq(fb), a_n.eq(n_val),
                         a_logit.eq(cfg.logits & valid_pos)]
            with m.If(cfg.pool):
                m.d.sync += [a_write.eq(~cfg.logits & valid_pos & inside & ~even_x), a_rmw.eq(odd_y),
                             a_hold.eq(~cfg.logits & valid_pos & inside & even_x),
                             a_comb.eq(~even_x)]
            with m.Else():
                m.d.sync += [a_write.eq(~cfg.logits & valid_pos), a_rmw.eq(0), a_hold.eq(0), a_comb.eq(0)]
            # next position and output pixel
            pa_inc = Mux(cfg.pool, pa + Mux(inside & ~even_x, cfg.nch_out, 0), pa + cfg.nch_out)
            with m.If(row_end):
                m.d.sync += [ox.eq(0), oy.eq(oy + 1)]
                with m.If(cfg.pool & ~odd_y):
                    m.d.sync += pa.eq(row_start)
                with m.Else():
                    m.d.sync += [pa.eq(pa_inc), row_start.eq(pa_inc)]
            with m.Else():
                m.d.sync += [ox.eq(ox + 1), pa.eq(pa_inc)]
            with m.If(tile_end):
                m.d.sync += c.eq(0)
                with m.If(pt == cfg.eng.n_pt - 1):
                    m.d.sync += pt.eq(0)
                with m.Else():
                    m.d.sync += pt.eq(pt + 1)
            with m.Else():
                m.d.sync += c.eq(c + 1)
            with m.If(gt_end):
                nfb = fb + cfg.d_bit
                m.d.sync += [oy.eq(0), ox.eq(0), pa.eq(cfg.out_base), row_start.eq(cfg.out_base),
                             rem.eq(rem - n_val), gt.eq(gt + 1),
                             fb.eq(Mux(nfb >= W, nfb - W, nfb)), fw.eq(fw + cfg.d_word + (nfb >= W))]
                with m.If(gt == cfg.eng.n_gt - 1):
                    m.d.sync += running.eq(0)
        with m.Elif(a_done):
            m.d.sync += a_valid.eq(0)

        # ---- compaction of the beat's channels (lane r*K + j -> channel r*planes + j), 8 bits each --
        lanes8 = [a_lanes[i][:8] for i in range(NL)]
        field = [Signal(8, name=f"field{i}") for i in range(NL)]
        with m.Switch(cfg.planes):
            for kk in range(1, K + 1):
                with m.Case(kk):
                    for i in range(NL):
                        src = (i // kk) * K + (i % kk)
                        m.d.comb += field[i].eq(lanes8[src] if i < R * kk else 0)
        held = [Signal(8, name=f"held{i}") for i in range(NL)]
        vals = [Signal(8, name=f"val{i}") for i in range(NL)]
        for i in range(NL):
            m.d.comb += vals[i].eq(Mux(a_comb & (held[i] > field[i]), held[i], field[i]))

        # ---- logits: one value per cycle -------------------------------------------------------------
        lr = Signal(range(R))
        lj = Signal(range(K))
        li = Signal(p.ch_w)
        lanes_arr = Array([a_lanes[i] for i in range(NL)])
        ls = self.l_stream
        m.d.comb += ls.payload.eq(lanes_arr[lr * K + lj])

        # ---- stage S1: words of one field ------------------------------------------------------------
        s1_valid = Signal()
        s1_data = Signal(WBW)
        s1_en = Signal(WBW)
        s1_addr = Signal(aw)
        s1_i = Signal(range(NWB))
        s1_nw = Signal(range(NWB + 1))
        s1_rmw = Signal()
        s1_last = s1_i == s1_nw - 1
        s1_free = ~s1_valid | s1_last

        packed_bin = Cat(*[vals[i][0] for i in range(NL)])
        packed_mb = Cat(*vals)
        packed = Mux(cfg.mb_out, packed_mb, packed_bin)
        nbits = Signal(range(NL * 8 + 1))
        m.d.comb += nbits.eq(Mux(cfg.mb_out, a_n << 3, a_n))
        val_en = Cat(*[a_n > i for i in range(NL)])
        enm = Mux(cfg.mb_out, Cat(*[val_en[i].replicate(8) for i in range(NL)]), val_en)
        nw = Signal(range(NWB + 1))
        m.d.comb += nw.eq((a_fb + nbits + (W - 1)) // W)
        fbs = a_fb[:max(1, ceil_log2(W))]

        with m.If(a_valid):
            with m.If(a_logit):
                m.d.comb += ls.valid.eq(a_n != 0)
                with m.If((a_n == 0) | (ls.valid & ls.ready & (li == a_n - 1))):
                    m.d.comb += a_done.eq(1)
                    m.d.sync += [lr.eq(0), lj.eq(0), li.eq(0)]
                with m.Elif(ls.valid & ls.ready):
                    m.d.sync += li.eq(li + 1)
                    with m.If(lj == cfg.planes - 1):
                        m.d.sync += [lj.eq(0), lr.eq(lr + 1)]
                    with m.Else():
                        m.d.sync += lj.eq(lj + 1)
            with m.Elif(a_write):
                with m.If(s1_free):
                    m.d.comb += a_done.eq(1)
            with m.Else():
                m.d.comb += a_done.eq(1)
        with m.If(a_valid & a_done & a_hold):
            for i in range(NL):
                m.d.sync += held[i].eq(field[i])

        load_s1 = a_valid & a_write & s1_free & ~a_logit
        with m.If(load_s1):
            m.d.sync += [s1_valid.eq(1), s1_data.eq(packed << fbs), s1_en.eq(enm << fbs),
                         s1_addr.eq(a_addr), s1_i.eq(0), s1_nw.eq(nw), s1_rmw.eq(a_rmw)]
        with m.Elif(s1_valid):
            with m.If(s1_last):
                m.d.sync += s1_valid.eq(0)
            with m.Else():
                m.d.sync += s1_i.eq(s1_i + 1)

        # ---- stage S2: read-modify-write ---------------------------------------------------------------
        s2_valid = Signal()
        s2_addr = Signal(aw)
        s2_data = Signal(W)
        s2_en = Signal(W)
        s2_rmw = Signal()
        data_words = Array([s1_data[j * W:(j + 1) * W] for j in range(NWB)])
        en_words = Array([s1_en[j * W:(j + 1) * W] for j in range(NWB)])
        m.d.comb += [self.rd_addr.eq(s1_addr + s1_i), self.rd_en.eq(s1_valid)]
        m.d.sync += [s2_valid.eq(s1_valid), s2_addr.eq(s1_addr + s1_i), s2_data.eq(data_words[s1_i]),
                     s2_en.eq(en_words[s1_i]), s2_rmw.eq(s1_rmw)]
        old = self.rd_data
        merged_bin = old | s2_data
        merged_mb = Cat(*[Mux(old[8 * j:8 * j + 8] > s2_data[8 * j:8 * j + 8], old[8 * j:8 * j + 8],
                              s2_data[8 * j:8 * j + 8]) for j in range(W // 8)], old[(W // 8) * 8:]) \
            if W >= 8 else merged_bin
        merged = Mux(cfg.mb_out, merged_mb, merged_bin)
        new = Mux(s2_rmw, merged, s2_data)
        m.d.comb += [
            self.wr_addr.eq(s2_addr),
            self.wr_data.eq((old & ~s2_en) | (new & s2_en)),
            self.wr_en.eq(s2_valid),
        ]

        m.d.comb += self.busy.eq(running | a_valid | s1_valid | s2_valid)
        return m
