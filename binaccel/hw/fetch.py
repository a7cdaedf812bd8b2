"""Fetch unit: on-chip im2col of a feature map into the engine's operand steps.

The input map sits in a feature-map bank in pixel-major order: pixel ``(y, x)`` occupies ``nch``
consecutive words at ``in_base + (y*in_w + x)*nch``; a binary map packs ``word`` channels per word
(bit ``c % word`` of word ``c // word``), a multi-bit map one byte per channel (``word // 8``
channels per word, value of channel ``c`` in byte ``c % (word//8)``). See ``docs/accelerator.md``.

For every group tile, position tile and kernel tap the unit reads each column's pixel words (one
word per column per cycle, through ``cols`` read ports), masks taps outside the map (zero padding)
and columns past the last position, and packs the channel bits densely, tap-major ``(ky, kx, c)``,
into ``word``-bit words per bit plane (a gearbox per column). A segment ends after the last tap
(plain, mcn1, FC: one dense segment) or after every tap (``seg_tap``, mcn: each tap padded to whole
words); a segment's last word is padded with zeros. Every word goes out as ``in_bits`` operand
steps (bit plane minor) together with the weight word of that step, read from the weight buffer
(entry ``w_base + gt*nwords + word index in the tile``). This is exactly the operand stream
:func:`binaccel.sw.pack.pack_layer` builds on the host for the same layer (the FC layer is treated
as a convolution whose kernel is the whole input map, fan-in in ``(y, x, c)`` order).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from binaccel.sw.hwif import AccelParams

from ._util import checking
from .params import layout

__all__ = ["FetchUnit"]


class FetchUnit(wiring.Component):
    """Hardware im2col of one layer run (see module docstring).

    Ports: ``cfg`` (layer descriptor, :attr:`AccelParams.desc_layout`, stable during the run),
    ``start`` (one cycle), ``busy``; feature-map reads ``rd_addr[c]``/``rd_en``/``rd_data[c]`` (one
    synchronous read port per column, one cycle latency; data must hold while ``rd_en`` is low);
    with ``params.pair_reads``, a second read port per column ``rd2_addr[c]``/``rd2_data[c]`` (the
    tap after the first one of a pair, enabled by ``rd_en``);
    weight reads ``w_addr``/``w_en``/``w_data`` (same convention); ``o_stream``: operand steps
    (``EngineParams.oper_layout``), ``cfg.eng.n_gt * cfg.gt_opers`` of them per run.

    Streamed weights (``cfg.w_stream``): the entries come from a ring ``ring_base ..
    ring_base + ring_size - 1`` of the weight buffer that the host fills during the run; entry
    number ``k`` (counted from ``run_start`` over all streamed layers) sits at ring position
    ``k mod ring_size``. A word is emitted only when its entry has been written (``w_written``
    entries so far); ``w_released`` counts the entries the unit no longer needs (whole group tiles).
    Both count modulo ``2**params.ring_count_w``: the host never writes more than ``ring_size``
    entries ahead of the released ones, so their difference is exact.
    """

    def __init__(self, *, params: AccelParams):
        with checking(self):
            if not isinstance(params, AccelParams):
                raise TypeError(f"params must be an AccelParams, got {type(params).__name__}")
        self.params = p = params
        e = p.engine
        ports = {
            "cfg": In(layout(p.desc_layout)),
            "start": In(1),
            "busy": Out(1),
            "rd_addr": Out(data.ArrayLayout(p.fm_aw, e.cols)),
            "rd_en": Out(1),
            "rd_data": In(data.ArrayLayout(e.word, e.cols)),
            "w_addr": Out(p.w_aw),
            "w_en": Out(1),
            "w_data": In(e.rows * e.word),
            # streamed weights (layers with cfg.w_stream): a ring of weight entries
            "run_start": In(1),
            "ring_base": In(p.w_aw),
            "ring_size": In(p.w_aw + 1),
            "w_written": In(p.ring_count_w),
            "w_released": Out(p.ring_count_w),
            "o_stream": Out(stream.Signature(layout(e.oper_layout))),
        }
        if p.pair_reads:
            # second read port per column: the next tap of a pair (cfg.pair)
            ports["rd2_addr"] = Out(data.ArrayLayout(p.fm_aw, e.cols))
            ports["rd2_data"] = In(data.ArrayLayout(e.word, e.cols))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        e = p.engine
        C, W = e.cols, e.word
        NB = e.max_in_bits            # bit-plane lanes
        MASK = NB                     # index of the valid-mask lane
        L = NB + 1
        cfg = self.cfg
        aw, cw = p.fm_aw, p.coord_w

        # ---- column state: output position and input window origin of each column ---------------
        def col_regs(prefix):
            return [dict(oy=Signal(p.oy_w, name=f"{prefix}{c}_oy"), ox=Signal(p.dim_w, name=f"{prefix}{c}_ox"),
                         iy=Signal(signed(cw), name=f"{prefix}{c}_iy"), ix=Signal(signed(cw), name=f"{prefix}{c}_ix"),
                         a=Signal(aw, name=f"{prefix}{c}_a")) for c in range(C)]

        cols = col_regs("col")
        saved = col_regs("col0_")

        def step(col, r, q, dix, diy, da):
            """Statements moving a column by the positions (q rows, r columns) plus a row wrap."""
            ox = col["ox"] + r
            wrap = ox >= cfg.conv_w
            return [
                col["ox"].eq(Mux(wrap, ox - cfg.conv_w, ox)),
                col["oy"].eq(col["oy"] + q + wrap),
                col["ix"].eq(col["ix"] + dix - Mux(wrap, cfg.dixw, 0)),
                col["iy"].eq(col["iy"] + diy + Mux(wrap, cfg.diyw, 0)),
                col["a"].eq(col["a"] + da + Mux(wrap, cfg.daw, 0)),
            ]

        # ---- address generator ----------------------------------------------------------------------
        gt = Signal(e.count_bits)
        pt = Signal(e.count_bits)
        ky = Signal(p.dim_w)
        kx = Signal(p.dim_w)
        ch = Signal(aw)
        toff = Signal(aw)
        k = Signal(range(C + 1))

        # stage 1: read issued, data arriving (read port latency 1)
        s1_valid = Signal()
        s1_colv = Signal(C)
        s1_n = Signal(range(W + 1))
        s1_seg_end = Signal()
        s1_pair = Signal()
        s1_colv2 = Signal(C)

        push = Signal()          # stage 1 moves into the gearbox this cycle
        issue = Signal()         # the address generator issues a piece this cycle
        ch_last = ch == cfg.nch - 1
        kx_last = kx == cfg.kw - 1
        ky_last = ky == cfg.kh - 1
        tap_last = kx_last & ky_last
        # the tap after (ky, kx): second tap of a pair
        ky2 = Mux(kx_last, ky + 1, ky)
        kx2 = Mux(kx_last, 0, kx + 1)
        toff2 = Mux(kx_last, toff + cfg.da_ky, toff + cfg.nch)
        kx2_last = kx2 == cfg.kw - 1
        tap2_last = kx2_last & (ky2 == cfg.kh - 1)
        # this issue reads taps (ky, kx) and the next one
        paired = (cfg.pair & ~tap_last) if p.pair_reads else Const(0, 1)
        pt_last = pt == cfg.eng.n_pt - 1
        gt_last = gt == cfg.eng.n_gt - 1
        wp = Mux(cfg.mb_in, p.mb_chunk, W)

        with m.FSM(name="ag") as ag:
            with m.State("IDLE"):
                with m.If(self.start):
                    for col in cols:
                        m.d.sync += [col["oy"].eq(0), col["ox"].eq(0), col["iy"].eq(cfg.c_init),
                                     col["ix"].eq(cfg.c_init), col["a"].eq(cfg.a_init)]
                    m.d.sync += [k.eq(1), gt.eq(0), pt.eq(0), ky.eq(0), kx.eq(0), ch.eq(0), toff.eq(0)]
                    m.next = "INIT"
            with m.State("INIT"):
                # column c ends up `c` positions after column 0
                with m.If(k >= C):
                    for col, sv in zip(cols, saved):
                        m.d.sync += [sv[n].eq(col[n]) for n in col]
                    m.next = "RUN"
                with m.Else():
                    for c in range(1, C):
                        with m.If(k <= c):
                            m.d.sync += step(cols[c], cfg.r1, cfg.q1, cfg.dix1, cfg.diy1, cfg.da1)
                    m.d.sync += k.eq(k + 1)
            with m.State("RUN"):
                m.d.comb += issue.eq(~s1_valid | push)

                def tile_end():
                    m.d.sync += [ky.eq(0), kx.eq(0), toff.eq(0)]
                    with m.If(pt_last):
                        m.d.sync += pt.eq(0)
                        for col, sv in zip(cols, saved):
                            m.d.sync += [col[n].eq(sv[n]) for n in col]
                        with m.If(gt_last):
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += gt.eq(gt + 1)
                    with m.Else():
                        m.d.sync += pt.eq(pt + 1)
                        for col in cols:
                            m.d.sync += step(col, cfg.rc, cfg.qc, cfg.dixc, cfg.diyc, cfg.dac)

                with m.If(issue):
                    with m.If(paired):
                        # two taps (one word per pixel): continue after the second one
                        with m.If(tap2_last):
                            tile_end()
                        with m.Else():
                            m.d.sync += [ky.eq(Mux(kx2_last, ky2 + 1, ky2)), kx.eq(Mux(kx2_last, 0, kx2 + 1)),
                                         toff.eq(Mux(kx2_last, toff2 + cfg.da_ky, toff2 + cfg.nch))]
                    with m.Elif(ch_last):
                        m.d.sync += ch.eq(0)
                        with m.If(tap_last):
                            tile_end()
                        with m.Elif(kx_last):
                            m.d.sync += [kx.eq(0), ky.eq(ky + 1), toff.eq(toff + cfg.da_ky)]
                        with m.Else():
                            m.d.sync += [kx.eq(kx + 1), toff.eq(toff + cfg.nch)]
                    with m.Else():
                        m.d.sync += ch.eq(ch + 1)

        # read addresses and tap validity of the piece being issued
        colv = Signal(C)
        colv2 = Signal(C)
        for c, col in enumerate(cols):
            iy, ix = col["iy"] + ky, col["ix"] + kx
            iy2, ix2 = col["iy"] + ky2, col["ix"] + kx2
            live = col["oy"] < cfg.conv_h
            m.d.comb += [
                self.rd_addr[c].eq(col["a"] + toff + ch),
                colv[c].eq(live & (iy >= 0) & (iy < cfg.in_h) & (ix >= 0) & (ix < cfg.in_w)),
            ]
            if p.pair_reads:
                m.d.comb += [
                    self.rd2_addr[c].eq(col["a"] + toff2),
                    colv2[c].eq(live & (iy2 >= 0) & (iy2 < cfg.in_h) & (ix2 >= 0) & (ix2 < cfg.in_w)),
                ]
        m.d.comb += self.rd_en.eq(issue)
        with m.If(issue):
            m.d.sync += [s1_valid.eq(1), s1_colv.eq(colv), s1_colv2.eq(colv2), s1_pair.eq(paired),
                         s1_n.eq(Mux(ch_last, cfg.last_n, wp)),
                         s1_seg_end.eq(Mux(paired, tap2_last, ch_last & (cfg.seg_tap | tap_last)))]
        with m.Elif(push):
            m.d.sync += s1_valid.eq(0)

        # ---- pieces: channel bits of each column, one lane per bit plane plus the valid mask -----
        lenmask = Signal(W)
        m.d.comb += lenmask.eq(Cat(*[s1_n > i for i in range(W)]))
        sh_w = max(1, ceil_log2(W))
        n_sh = s1_n[:sh_w] if W > 1 else s1_n

        def lanes_of(d, valid, c, tag):
            v = Mux(valid, lenmask, 0)
            lanes = []
            for b in range(NB):
                mb = Cat(*[d[8 * i + b] for i in range(p.mb_chunk)]) if NB > 1 else Const(0, 1)
                bin_ = d if b == 0 else Const(0, W)
                lanes.append(Signal(W, name=f"piece{tag}{c}_{b}"))
                m.d.comb += lanes[-1].eq(Mux(cfg.mb_in, mb, bin_) & v)
            lanes.append(Signal(W, name=f"piece{tag}{c}_m"))
            m.d.comb += lanes[-1].eq(v)
            return lanes

        pieces = []
        for c in range(C):
            first = lanes_of(self.rd_data[c], s1_colv[c], c, "")
            if not p.pair_reads:
                pieces.append(first)
                continue
            second = lanes_of(self.rd2_data[c], s1_colv2[c] & s1_pair, c, "b")
            # a pair: the second tap's bits follow the first tap's n bits (2n <= word, checked by the host)
            pieces.append([Signal(W, name=f"pair{c}_{ln}") for ln in range(L)])
            for ln in range(L):
                m.d.comb += pieces[-1][ln].eq(first[ln] | (second[ln] << n_sh)[:W])
        s1_len = Mux(s1_pair, s1_n << 1, s1_n) if p.pair_reads else s1_n

        # ---- gearbox (fill shared by all columns) and the holding register ------------------------
        # a multi-bit lane (planes 1..NB-1) only ever gets a piece of at most mb_chunk values (two of
        # them for a pair) pushed while fill < W: W + that many bits hold everything it can have
        mb_width = W + p.mb_chunk * (2 if p.pair_reads else 1)

        def gb_width(ln):
            return 2 * W if ln in (0, MASK) else min(2 * W, mb_width)

        gb = [[Signal(gb_width(ln), name=f"gb{c}_{ln}") for ln in range(L)] for c in range(C)]
        fill = Signal(range(2 * W))
        flush = Signal()
        hold = [[Signal(W, name=f"hold{c}_{ln}") for ln in range(L)] for c in range(C)]
        hold_valid = Signal()
        hb = Signal(range(max(NB, 2)))
        out = self.o_stream
        accept = Signal()
        m.d.comb += accept.eq(out.valid & out.ready)
        hb_last = hb == cfg.eng.in_bits - 1
        hold_free = Signal()
        m.d.comb += hold_free.eq(~hold_valid | (accept & hb_last))

        # emit-side counters: weight entry of the word being loaded into the holding register
        e_wi = Signal(p.nwords_w)
        e_pt = Signal(e.count_bits)
        wrow = Signal(p.w_aw)
        blk_ptr = Signal(p.w_aw)     # streamed weights: ring address of the current group tile's block
        blk_abs = Signal(p.ring_count_w)   # ... and its entry number since the RUN started (modulo)
        e_wi_last = e_wi == cfg.nwords - 1
        release = Signal()           # the last word of a streamed group tile's block is emitted

        # streamed weights: `w_ready` (the entry of word e_wi has been written) is a register, computed
        # a cycle ahead from the written count and the block start of this cycle against the e_wi of
        # the next one; it is held low for the cycle after the block moves or a RUN starts (when that
        # count is stale). The compare stays off the paths from `emit` into the gearboxes.
        emit = Signal()
        lead = Signal(p.ring_count_w)
        m.d.comb += lead.eq(self.w_written - blk_abs)
        w_ready = Signal()
        e_wi_next = Mux(self.start | (emit & e_wi_last), 0, Mux(emit, e_wi + 1, e_wi))
        m.d.sync += w_ready.eq(~self.run_start & ~release & (lead > e_wi_next))

        # the gearboxes' control: fill level and flush flag (small registers, shared by the columns)
        fill_ge = fill >= W
        m.d.comb += emit.eq(hold_free & (fill_ge | (flush & (fill != 0))) & (~cfg.w_stream | w_ready))
        fill_a = Signal.like(fill)
        flush_a = Signal()
        m.d.comb += [
            fill_a.eq(Mux(emit, Mux(fill_ge, fill - W, 0), fill)),
            flush_a.eq(flush & Mux(emit, fill_ge & (fill != W), fill != 0)),
            push.eq(s1_valid & (emit | ~fill_ge) & ~flush_a),
        ]
        # data path: each gearbox takes its next value by late selects (emit, push) between words
        # shifted by amounts that come from registers only: the piece goes in at fill_a, which is
        # `fill` (no emit), `fill - W` (emit of a full word; the same low bits when W is a power of
        # two) or 0 (a flush emits the last, partial word). At a push fill_a < W: a shift amount of
        # ceil_log2(W) bits (sh_w) keeps the shifts 2W bits wide.
        sh_keep = fill[:sh_w]
        sh_full = (fill - W)[:sh_w]
        same = W == 1 << sh_w
        for c in range(C):
            for ln in range(L):
                g, pc, n = gb[c][ln], pieces[c][ln], len(gb[c][ln])
                after = Mux(emit, g >> W, g)
                at_keep = (pc << sh_keep)[:n]
                at_full = at_keep if same else (pc << sh_full)[:n]
                ins = Mux(emit, Mux(fill_ge, at_full, pc), at_keep)
                m.d.sync += g.eq(Mux(push, after | ins, after))
        m.d.sync += [fill.eq(Mux(push, fill_a + s1_len, fill_a)), flush.eq(Mux(push, s1_seg_end, flush_a))]

        ring_end = self.ring_base + self.ring_size
        s_addr = blk_ptr + e_wi
        m.d.comb += [
            self.w_addr.eq(Mux(cfg.w_stream, Mux(s_addr >= ring_end, s_addr - self.ring_size, s_addr), wrow + e_wi)),
            self.w_en.eq(emit),
            self.w_released.eq(blk_abs),
            release.eq(~self.start & emit & e_wi_last & (e_pt == cfg.eng.n_pt - 1) & cfg.w_stream),
        ]
        with m.If(self.run_start):
            m.d.sync += [blk_ptr.eq(self.ring_base), blk_abs.eq(0)]
        with m.If(self.start):
            m.d.sync += [e_wi.eq(0), e_pt.eq(0), wrow.eq(cfg.w_base)]
        with m.Elif(emit):
            with m.If(e_wi_last):
                m.d.sync += e_wi.eq(0)
                with m.If(e_pt == cfg.eng.n_pt - 1):
                    m.d.sync += [e_pt.eq(0), wrow.eq(wrow + cfg.nwords)]
                    with m.If(cfg.w_stream):
                        # the group tile's block is no longer needed: release it
                        nxt = blk_ptr + cfg.nwords
                        m.d.sync += [blk_abs.eq(blk_abs + cfg.nwords),
                                     blk_ptr.eq(Mux(nxt >= ring_end, nxt - self.ring_size, nxt))]
                with m.Else():
                    m.d.sync += e_pt.eq(e_pt + 1)
            with m.Else():
                m.d.sync += e_wi.eq(e_wi + 1)

        with m.If(emit):
            m.d.sync += [hold_valid.eq(1), hb.eq(0)]
            for c in range(C):
                for ln in range(L):
                    m.d.sync += hold[c][ln].eq(gb[c][ln][:W])
        with m.Elif(accept):
            with m.If(hb_last):
                m.d.sync += [hold_valid.eq(0), hb.eq(0)]
            with m.Else():
                m.d.sync += hb.eq(hb + 1)

        # ---- operand step ---------------------------------------------------------------------------
        m.d.comb += [out.valid.eq(hold_valid), out.payload.w.eq(self.w_data)]
        for c in range(C):
            plane = Signal(W, name=f"plane{c}")
            with m.Switch(hb):
                for b in range(NB):
                    with m.Case(b):
                        m.d.comb += plane.eq(hold[c][b])
            m.d.comb += [out.payload.a[c].eq(plane),
                         out.payload.m[c].eq(Mux(cfg.mb_in, plane, hold[c][MASK]))]

        m.d.comb += self.busy.eq(~ag.ongoing("IDLE") | s1_valid | (fill != 0) | flush | hold_valid)
        return m
