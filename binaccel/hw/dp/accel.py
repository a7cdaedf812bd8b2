"""The pipelined accelerator: a runtime-programmable network processor with 32-bit word streams.

Command stream (``i_stream``, 32-bit words; :mod:`binaccel.sw.dpprog` builds it)::

    WRITE  header (op=1, target, count), start address, count entries of the target buffer
           (DESC: descriptor words, WEIGHT: array weight words / first-layer weights, TABLE:
           offset-table entries, PARAM: lane parameters, FMAP0/FMAP1: feature-map words of two
           16-bit slots), each entry as ceil(width/32) words, LSW first
    RUN    header (op=2, stats flag, count), number of layers, count image words (tile words of
           the padded image into bank 0 from address 0, taken while the first layer runs: it
           waits for the rows it reads); then every layer runs on chip
    INFO   header (op=3): the build parameters come back
    NOP    header 0

``o_stream`` carries, per RUN, the output maps of layers flagged ``dump``, the logits of the
last layer (each ``ceil(y_width/32)`` words, two's complement, LSW first) and, with the stats
flag, the cycles of each layer and of the whole image.

A layer runs on the first-layer unit (8-bit pixels) or on the window generator and XNOR array;
the 16 output lanes turn the results into sign bits, requantized values or logits as they leave
the rows, and the write-back stores them in the other feature-map bank. Lane parameters are
loaded for the next group tile while the current one runs. Nothing inside stalls: the units
start a segment only when the parameters and the logits FIFO allow it.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Elaboratable, Module, Mux, \
    ResetSignal, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from binaccel.sw.hwif import IO_WIDTH, MAGIC, Op
from binaccel.sw.hwif.dp import DpParams, DpTarget

from .._util import REPLICA, checking
from ..params import layout
from .array import XnorArray
from .first import FirstLayerUnit
from .lane import Lane
from .window import WindowGen
from .writeback import WriteBack

__all__ = ["DpAccelerator", "DP_VERSION", "dp_info_words"]

#: Version word of the INFO reply of the pipelined accelerator.
DP_VERSION = 0x100


def dp_info_words(p: DpParams) -> list:
    """The INFO reply: magic, version, then every parameter in :meth:`DpParams.names` order."""
    return [MAGIC, DP_VERSION] + [getattr(p, k) for k in p.names()]


class DpAccelerator(wiring.Component):
    """Whole-network pipelined accelerator (module docstring).

    Keyword parameters: those of :class:`~binaccel.sw.hwif.dp.DpParams`, each checked.

    Ports: ``i_stream``, ``o_stream`` (``stream.Signature(32)``, valid/ready); ``busy``;
    ``error`` (sticky until reset: an unknown opcode or target, or a bad layer count).
    """

    def __init__(self, **kwargs):
        with checking(self):
            self.params = DpParams(**kwargs)
        super().__init__({
            "i_stream": In(stream.Signature(IO_WIDTH)),
            "o_stream": Out(stream.Signature(IO_WIDTH)),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        # The units run in a domain whose reset is the `sync` reset registered once: the reset
        # reaches the (few) flip-flops that have one from a register, not through the link's logic.
        m = Module()
        m.domains.core = cd = ClockDomain("core", local=True)
        rst_q = Signal(init=1)
        m.d.sync += rst_q.eq(0)
        m.d.comb += [cd.clk.eq(ClockSignal("sync")), cd.rst.eq(rst_q)]
        m.submodules.core = DomainRenamer("core")(_Core(self))
        return m

    def _elaborate_core(self, platform):
        m = Module()
        p = self.params
        R, C, L = p.rows, p.cols, p.mem_latency
        n_rd = max(2 * C, 4)

        # ---- units ----------------------------------------------------------------------------------
        m.submodules.win = win = WindowGen(rows=R, cols=C, n_width=p.n_width, tag_width=p.tag_width, aw=p.aw,
                                           cw=p.cw, count_w=p.count_w, steps_w=p.steps_w, tbl_aw=p.tbl_aw,
                                           w_aw=p.w_aw, mem_latency=L)
        m.submodules.arr = arr = XnorArray(rows=R, cols=C, word=p.word, slot=16, acc_width=p.acc_width,
                                           n_width=p.n_width, tag_width=p.tag_width)
        m.submodules.flu = flu = FirstLayerUnit(rows=R, acc_width=p.flu_acc_width, tag_width=p.tag_width,
                                                count_w=p.count_w, aw=p.aw, w_aw=p.w_aw, mem_latency=L,
                                                positions=p.flu_positions, levels_per_stage=1)
        lanes = []
        for r in range(R):
            lane = Lane(acc_width=p.acc_width, n_width=p.n_width, tag_width=p.tag_width, cols=C,
                        off_width=p.off_width, mul_bits=p.mul_bits, add_bits=p.add_bits,
                        shift_width=p.shift_width, y_width=p.y_width)
            m.submodules[f"lane{r}"] = lane
            lanes.append(lane)
        m.submodules.wb = wb = WriteBack(rows=R, cols=C, y_width=p.y_width, aw=p.aw, count_w=p.count_w,
                                         logit_depth=p.logit_depth)
        m.d.comb += arr.i.eq(win.o)

        # ---- configuration --------------------------------------------------------------------------
        DW = p.desc_words
        # the next descriptor, read ahead (the first layer's in LDESC, the next layer's while one runs)
        pf_words = Signal(DW * IO_WIDTH, reset_less=True)
        cfg_words = Signal(DW * IO_WIDTH, reset_less=True)
        cfg = Signal(layout(p.desc_layout))
        m.d.comb += cfg.eq(cfg_words[:p.desc_layout.size])
        # the descriptor register loads from the prefetch buffer in the LOAD state, enabled by
        # flip-flops set on the way into it, one per 64 bits (no decoded state drives its enables)
        cfg_ce = [Signal(name=f"cfg_ce{k}", attrs=REPLICA) for k in range(-(-DW * IO_WIDTH // 64))]
        m.d.sync += [c.eq(0) for c in cfg_ce]
        for k, c in enumerate(cfg_ce):
            with m.If(c):
                m.d.sync += cfg_words[64 * k:64 * (k + 1)].eq(pf_words[64 * k:64 * (k + 1)])
        m.d.comb += [win.cfg.eq(cfg.win), flu.cfg.eq(cfg.flu), wb.cfg.eq(cfg.wb)]
        for lane in lanes:
            m.d.comb += lane.cfg.eq(cfg.lane)

        # ---- buffers ----------------------------------------------------------------------------------
        def read(mem, name, width, copies=1):
            """A read port with ``mem_latency`` cycles: the memory's registered read, a further
            output register for 2 (one per consumer with ``copies``: a list is returned), and an
            address register of its own (each copy of a bank has one) for 3."""
            rp = mem.read_port()
            if L == 1:
                return rp.addr, (rp.data if copies == 1 else [rp.data] * copies)
            qs = [Signal(width, name=f"{name}_q{k}", reset_less=True, attrs=REPLICA if copies > 1 else {})
                  for k in range(copies)]
            m.d.sync += [q.eq(rp.data) for q in qs]
            q = qs[0] if copies == 1 else qs
            if L == 2:
                return rp.addr, q
            a = Signal.like(rp.addr, name=f"{name}_ra")
            a_q = Signal.like(rp.addr, name=f"{name}_ra_q", reset_less=True, attrs=REPLICA)
            m.d.sync += a_q.eq(a)
            m.d.comb += rp.addr.eq(a_q)
            return a, q

        fm_words = p.fm_depth // 2
        fm_wr = [dict(addr=Signal(p.aw - 1, name=f"fm{b}_waddr", reset_less=True),
                      data=Signal(32, name=f"fm{b}_wdata", reset_less=True),
                      en=Signal(2, name=f"fm{b}_wen")) for b in range(2)]
        fm_rd = [[None] * n_rd for _ in range(2)]
        fm_flu = [[None] * 4 for _ in range(2)]
        for b in range(2):
            for k in range(n_rd):
                mem = Memory(shape=32, depth=fm_words, init=[])
                m.submodules[f"fm{b}_{k}"] = mem
                wp = mem.write_port(granularity=16)
                m.d.comb += [wp.addr.eq(fm_wr[b]["addr"]), wp.data.eq(fm_wr[b]["data"]), wp.en.eq(fm_wr[b]["en"])]
                # (copies 0..3 also feed the first-layer unit: a second output register for it)
                if k < 4:
                    addr_k, (win_q, flu_q) = read(mem, f"fm{b}_{k}", 32, copies=2)
                    fm_rd[b][k] = (addr_k, win_q)
                    fm_flu[b][k] = flu_q
                else:
                    fm_rd[b][k] = read(mem, f"fm{b}_{k}", 32)
        m.submodules.wmem = wmem = Memory(shape=R * p.word, depth=p.w_depth, init=[])
        w_wp = wmem.write_port()
        # (the first-layer unit and the window generator sit apart: each has its own output register)
        w_ra, (w_rd, w_rd_flu) = read(wmem, "wmem", R * p.word, copies=2)
        tl = layout(p.table_entry_layout)
        m.submodules.tmem = tmem = Memory(shape=tl.size, depth=p.t_depth, init=[])
        t_wp = tmem.write_port()
        t_ra, t_rd = read(tmem, "tmem", tl.size)
        pl = layout(p.param_entry_layout)
        m.submodules.pmem = pmem = Memory(shape=pl.size, depth=p.p_depth, init=[])
        p_wp = pmem.write_port()
        p_ra, p_rd = read(pmem, "pmem", pl.size)
        p_rd = data.View(pl, p_rd)
        d_depth = max(p.max_layers * DW, 2)
        m.submodules.dmem = dmem = Memory(shape=IO_WIDTH, depth=d_depth, init=[])
        d_wp, d_rp = dmem.write_port(), dmem.read_port()

        # reads: the window generator's slots (word address, then the half), the first-layer unit's
        # tile words, the dump
        dumping = Signal()
        dump_addr = Signal(p.aw - 1)
        for k in range(n_rd):
            for b in range(2):
                addr, _ = fm_rd[b][k]
                if k < 2 * C:
                    slot_addr = win.rd_addr[k][1:]
                else:
                    slot_addr = 0
                src = Mux(cfg.first, flu.img_addr[k] if k < 4 else 0, slot_addr)
                if k == 0:
                    src = Mux(dumping, dump_addr, src)
                m.d.comb += addr.eq(src)
        for k in range(2 * C):
            half = win.rd_addr[k][0]
            for _ in range(L):
                h2 = Signal(name=f"half{k}_{_}")
                m.d.sync += h2.eq(half)
                half = h2
            word = Mux(cfg.in_bank, fm_rd[1][k][1], fm_rd[0][k][1])
            m.d.comb += win.rd_data[k].eq(Mux(half, word[16:], word[:16]))
        for k in range(4):
            m.d.comb += flu.img_data[k].eq(Mux(cfg.in_bank, fm_flu[1][k], fm_flu[0][k]))
        m.d.comb += [w_ra.eq(Mux(cfg.first, flu.w_addr, win.w_addr)), win.w_data.eq(w_rd),
                     flu.w_data.eq(w_rd_flu[:flu.w_width]), t_ra.eq(win.tbl_addr), win.tbl_data.eq(t_rd)]
        for r in range(R):
            # only one unit runs at a time and the array's results are 0 when not valid: an OR with
            # the first-layer unit's gated results (no configuration bit fans out to every lane)
            fo = flu.o[r]
            for f in ("valid", "acc", "n", "tag"):
                m.d.comb += getattr(lanes[r].i, f).eq(getattr(arr.o[r], f) | Mux(fo.valid, getattr(fo, f), 0))
            m.d.comb += wb.i[r].eq(lanes[r].o)

        # ---- lane parameters: the next group tile's loaded while the current one runs ------------------
        groups_last = Signal.like(cfg.win.last_gt, name="groups_last", reset_less=True)
        m.d.sync += groups_last.eq(Mux(cfg.first, cfg.flu.last_gt, cfg.win.last_gt))
        loaded = Signal(p.count_w + 1)         # group tiles whose parameters are in the lanes
        H = R // 2                              # parameter entries (row pairs) per group tile
        ld_row = Signal(range(H + 1))          # next row pair to request of group `loaded`
        ld_addr = Signal(p.p_aw)
        cur_par = Signal()                     # tag of the latest result at row 0's lane
        # all rows see a group's results in the same cycle; the loader writes two rows per cycle
        last_in = lanes[0].i
        with m.If(last_in.valid):
            m.d.sync += cur_par.eq(last_in.tag[0])
        may_load = (loaded <= groups_last) & ((loaded < 2) | (cur_par == ~loaded[0]))
        req = Signal()
        m.d.comb += req.eq(may_load & (ld_row != H))
        m.d.comb += p_ra.eq(ld_addr)
        # the request's row and bank, `mem_latency` cycles later with the data
        rv, rrow, rbank = req, ld_row, loaded[0]
        for d in range(L):
            v2, r2, b2 = Signal(name=f"ld_v{d}"), Signal(range(H + 1), name=f"ld_r{d}"), Signal(name=f"ld_b{d}")
            m.d.sync += [v2.eq(rv), r2.eq(rrow), b2.eq(rbank)]
            rv, rrow, rbank = v2, r2, b2
        for r in range(R):
            m.d.comb += [lanes[r].p_we.eq(rv & (rrow == r // 2)), lanes[r].p_bank.eq(rbank),
                         lanes[r].p_data.eq(p_rd[r % 2])]
        with m.If(req):
            m.d.sync += [ld_row.eq(ld_row + 1), ld_addr.eq(ld_addr + 1)]
        with m.If(rv & (rrow == H - 1)):
            m.d.sync += [loaded.eq(loaded + 1), ld_row.eq(0)]
        # a group tile starts once its parameters are in; a logits segment once the FIFO can take it
        # (registered: a unit looks at it for a segment that starts three or more cycles after the
        # group changed or a segment started)
        # Group 0 does not wait: its parameters load from the layer's start (both banks are free
        # then) and are in before its first result reaches the lanes (checked here, from the
        # latencies).
        group_next = Mux(cfg.first, flu.group, win.group)
        hold = Signal(init=1)
        m.d.sync += hold.eq(((group_next != 0) & (group_next >= loaded)) | (cfg.wb.logits & (wb.credits < R)))
        load_cycles = 1 + H + L + 1                   # from `start` to the last row pair's write (in the lane)
        first_result = 2 + 2 + min(flu.min_latency, win.latency + arr.latency)   # start, init, age wait
        assert load_cycles < first_result, (load_cycles, first_result)
        seg_go = Mux(cfg.first, flu.seg_go, win.seg_go)
        m.d.comb += [win.hold.eq(hold), flu.hold.eq(hold), win.hold_every.eq(cfg.wb.logits),
                     wb.take.eq(seg_go & cfg.wb.logits)]

        # ---- stream buffers ----------------------------------------------------------------------------
        m.submodules.in_fifo = in_fifo = SyncFIFO(width=IO_WIDTH, depth=2)
        m.submodules.out_fifo = out_fifo = SyncFIFO(width=IO_WIDTH, depth=2)
        ins = stream.Signature(IO_WIDTH).flip().create()
        outs = stream.Signature(IO_WIDTH).create()
        m.d.comb += [
            # (no word is taken while the units are in reset)
            in_fifo.w_data.eq(self.i_stream.payload), in_fifo.w_en.eq(self.i_stream.valid & ~ResetSignal()),
            self.i_stream.ready.eq(in_fifo.w_rdy & ~ResetSignal()),
            ins.payload.eq(in_fifo.r_data), ins.valid.eq(in_fifo.r_rdy), in_fifo.r_en.eq(ins.ready),
            out_fifo.w_data.eq(outs.payload), out_fifo.w_en.eq(outs.valid), outs.ready.eq(out_fifo.w_rdy),
            self.o_stream.payload.eq(out_fifo.r_data), self.o_stream.valid.eq(out_fifo.r_rdy),
            out_fifo.r_en.eq(self.o_stream.ready),
        ]

        # ---- command parser and layer sequencer ---------------------------------------------------------
        word = ins.payload
        take = Signal()
        m.d.comb += take.eq(ins.valid & ins.ready)
        io_words = {t: p.entry_words(t) for t in (DpTarget.DESC, DpTarget.WEIGHT, DpTarget.TABLE, DpTarget.FMAP0,
                                                  DpTarget.FMAP1, DpTarget.PARAM)}
        max_io = max(io_words.values())
        op_tgt = Signal(4)
        count = Signal(24)
        addr = Signal(max(p.aw, p.w_aw, p.tbl_aw, p.p_aw, (d_depth - 1).bit_length(), 1))
        sub = Signal(range(max_io + 1))
        # the words of an entry shift in, a cycle after the parser took them, under flip-flop enables
        # (one per two slots); two cycles after its last word an entry of k words is the last k
        # (each buffer takes its own slice: no multiplexer)
        slots = [Signal(IO_WIDTH, name=f"slot{j}", reset_less=True) for j in range(max_io)]
        sh_word = Signal(IO_WIDTH, name="sh_word", reset_less=True)
        sh_en = [Signal(name=f"sh_en{k}", attrs=REPLICA) for k in range(-(-max_io // 2))]
        shift = Signal()
        m.d.sync += [sh_word.eq(word)] + [e.eq(shift) for e in sh_en]
        nxt_slots = slots[1:] + [sh_word]
        for j in range(max_io):
            with m.If(sh_en[j // 2]):
                m.d.sync += slots[j].eq(nxt_slots[j])

        def entry(target):
            return Cat(*slots[len(slots) - io_words[target]:])
        n_sub = Signal(range(max_io + 1))
        with m.Switch(op_tgt):
            for t, k in io_words.items():
                with m.Case(t):
                    m.d.comb += n_sub.eq(k)
        last_sub = sub == n_sub - 1
        host_we = Signal()
        stats = Signal()
        n_layers = Signal(range(p.max_layers + 1))
        layer = Signal(range(p.max_layers + 1))
        dptr = Signal(range(d_depth + 1))
        error = Signal()
        m.d.comb += self.error.eq(error)
        img_left = Signal(24)
        img_have = Signal(p.aw + 1)
        img_we = Signal()
        # host writes reach the buffers from flip-flops, two cycles after the parser took the word
        # (with the entry's slots; no decoded parser state drives a buffer's write port)
        def delayed(value, name, *, reset_less):
            q1 = Signal.like(value, name=f"{name}_d1", reset_less=reset_less)
            q2 = Signal.like(value, name=f"{name}_d2", reset_less=reset_less)
            m.d.sync += [q1.eq(value), q2.eq(q1)]
            return q2
        hq_en = {t: delayed(host_we & (op_tgt == t), f"hq_en{t}", reset_less=False) for t in io_words}
        hq_addr = delayed(addr, "hq_addr", reset_less=True)
        hq_word = delayed(word, "hq_word", reset_less=True)
        hq_img = delayed(img_we, "hq_img", reset_less=False)
        hq_img_addr = delayed(img_have, "hq_img_addr", reset_less=True)
        m.d.comb += [
            d_wp.addr.eq(hq_addr), d_wp.data.eq(entry(DpTarget.DESC)), d_wp.en.eq(hq_en[DpTarget.DESC]),
            w_wp.addr.eq(hq_addr), w_wp.data.eq(entry(DpTarget.WEIGHT)), w_wp.en.eq(hq_en[DpTarget.WEIGHT]),
            t_wp.addr.eq(hq_addr), t_wp.data.eq(entry(DpTarget.TABLE)), t_wp.en.eq(hq_en[DpTarget.TABLE]),
            p_wp.addr.eq(hq_addr), p_wp.data.eq(entry(DpTarget.PARAM)), p_wp.en.eq(hq_en[DpTarget.PARAM]),
        ]
        for b in range(2):
            host_b = hq_en[DpTarget.FMAP0 if b == 0 else DpTarget.FMAP1]
            host_addr = hq_addr
            if b == 0:  # the image goes to bank 0 while the first layer writes bank 1
                host_b = host_b | hq_img
                host_addr = Mux(hq_img, hq_img_addr, hq_addr)
            wb_b = (cfg.out_bank == b) & wb.wr_en
            # (registered once: the write reaches every copy of the bank from flip-flops)
            m.d.sync += [
                fm_wr[b]["addr"].eq(Mux(host_b, host_addr, wb.wr_addr[1:])),
                fm_wr[b]["data"].eq(Mux(host_b, hq_word, Cat(wb.wr_data, wb.wr_data))),
                fm_wr[b]["en"].eq(Mux(host_b, 0b11, Mux(wb_b, Mux(wb.wr_addr[0], 0b10, 0b01), 0))),
            ]

        # logits: each value as `lw` words, LSW first
        lw = -(-p.y_width // IO_WIDTH)
        lk = Signal(range(max(lw, 2)))
        lval = wb.l_stream.payload.as_signed()
        lext = Cat(lval, lval[-1].replicate(lw * IO_WIDTH - len(lval)))
        lwords = Array([lext[j * IO_WIDTH:(j + 1) * IO_WIDTH] for j in range(lw)])
        logit_out = Signal()
        with m.If(logit_out):
            m.d.comb += [outs.valid.eq(wb.l_stream.valid), outs.payload.eq(lwords[lk]),
                         wb.l_stream.ready.eq(outs.ready & (lk == lw - 1))]
            with m.If(outs.valid & outs.ready):
                m.d.sync += lk.eq(Mux(lk == lw - 1, 0, lk + 1))

        info = Array([Const(v, IO_WIDTH) for v in dp_info_words(p)])
        out_i = Signal(range(max(p.max_layers, len(dp_info_words(p))) + 2))
        cyc_layer = Signal(32)
        cyc_total = Signal(32)
        layer_cycles = Array([Signal(32, name=f"cycles{i}") for i in range(p.max_layers)])
        drain = Signal(range(64))
        # after the unit's last step: the array's latency and column skew, and the lane (the
        # write-back's own busy covers the rest)
        # (+ 2: the registered busy flags and the registered feature-map write)
        DRAIN = Mux(cfg.first, Lane.latency + 2, arr.latency + C - 1 + Lane.latency + 2)
        pf_k = Signal(range(DW + 1))
        pf_ready = Signal()
        dump_left = Signal(p.aw + 1)
        dump_wait = Signal(range(L + 2))
        start = Signal()
        m.d.comb += [win.start.eq(start & ~cfg.first), flu.start.eq(start & cfg.first), wb.start.eq(start)]
        with m.If(start):
            m.d.sync += [loaded.eq(0), ld_row.eq(0), ld_addr.eq(cfg.prm_base), cur_par.eq(0)]
        unit_busy = Signal()
        wb_busy = Signal()
        m.d.sync += [unit_busy.eq(Mux(cfg.first, flu.busy, win.busy)), wb_busy.eq(wb.busy)]
        img_done = Signal(init=1)  # the RUN's image words are all in
        img_last = Signal()        # img_left == 1
        last_layer = Signal()
        m.d.sync += last_layer.eq(layer == n_layers - 1)

        # (before the FSM: its own assignments to the counter take precedence)
        m.d.sync += cyc_layer.eq(cyc_layer + 1)

        with m.FSM(name="ctl") as fsm:
            with m.State("CMD"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    op = word[0:4]
                    m.d.sync += [op_tgt.eq(word[4:8]), count.eq(word[8:32]), sub.eq(0)]
                    with m.Switch(op):
                        with m.Case(Op.NOP):
                            pass
                        with m.Case(Op.WRITE):
                            with m.If(word[4:8] <= DpTarget.PARAM):
                                m.next = "WADDR"
                            with m.Else():
                                m.d.sync += error.eq(1)
                        with m.Case(Op.RUN):
                            m.d.sync += [stats.eq(word[4]), op_tgt.eq(DpTarget.FMAP0), cyc_total.eq(1)]
                            m.next = "RUN_N"
                        with m.Case(Op.INFO):
                            m.d.sync += out_i.eq(0)
                            m.next = "INFO"
                        with m.Default():
                            m.d.sync += error.eq(1)
            with m.State("WADDR"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    # (every target's address and count are in entries; a descriptor entry is a word)
                    m.d.sync += addr.eq(word)
                    m.next = "WDATA"
                    with m.If(count == 0):
                        m.next = "CMD"
            with m.State("WDATA"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    m.d.comb += shift.eq(1)
                    with m.If(last_sub | (op_tgt == DpTarget.DESC)):
                        m.d.comb += host_we.eq(1)
                        m.d.sync += [sub.eq(0), addr.eq(addr + 1), count.eq(count - 1)]
                        with m.If(count == 1):
                            m.next = "CMD"
                    with m.Else():
                        m.d.sync += sub.eq(sub + 1)
            with m.State("RUN_N"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    m.d.sync += [n_layers.eq(word), addr.eq(0), layer.eq(0), dptr.eq(0), pf_k.eq(0), pf_ready.eq(0),
                                 cyc_layer.eq(1),
                                 img_left.eq(count), img_have.eq(0), img_last.eq(count == 1),
                                 img_done.eq(count == 0)]
                    with m.If((word == 0) | (word > p.max_layers)):
                        m.d.sync += [error.eq(1), img_left.eq(0), img_done.eq(1)]
                        m.next = "CMD"
                    with m.Else():
                        m.next = "LDESC"
            with m.State("LDESC"):
                # the first layer's descriptor through the prefetch
                with m.If(pf_ready):
                    m.d.sync += [c.eq(1) for c in cfg_ce]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.next = "START"
            with m.State("START"):
                m.d.comb += [start.eq(1), logit_out.eq(1)]
                m.d.sync += [drain.eq(DRAIN), pf_k.eq(0), pf_ready.eq(0)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += logit_out.eq(1)
                with m.If(unit_busy):
                    m.d.sync += drain.eq(DRAIN)
                with m.Elif(drain != 0):
                    m.d.sync += drain.eq(drain - 1)
                with m.Elif(~wb_busy & img_done):
                    m.d.sync += [dump_left.eq(cfg.dump_words), dump_addr.eq(cfg.dump_base[1:])]
                    with m.If(cfg.dump & (cfg.dump_words != 0)):
                        m.d.sync += dump_wait.eq(0)
                        m.next = "DUMP"
                    with m.Else():
                        m.next = "NEXT"
            with m.State("DUMP"):
                # one word at a time: address, `mem_latency` cycles, then the word out
                m.d.comb += dumping.eq(1)
                data_w = Mux(cfg.out_bank, fm_rd[1][0][1], fm_rd[0][0][1])
                with m.If(dump_wait != L + 1):
                    m.d.sync += dump_wait.eq(dump_wait + 1)
                with m.Else():
                    m.d.comb += [outs.valid.eq(1), outs.payload.eq(data_w)]
                    with m.If(outs.ready):
                        m.d.sync += [dump_addr.eq(dump_addr + 1), dump_left.eq(dump_left - 1), dump_wait.eq(0)]
                        with m.If(dump_left == 1):
                            m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += logit_out.eq(1)
                with m.If(last_layer):
                    # the RUN ends when the last logits are out
                    with m.If(~wb.l_stream.valid & (lk == 0)):
                        m.d.sync += [layer_cycles[layer].eq(cyc_layer), layer.eq(layer + 1), out_i.eq(0)]
                        with m.If(stats):
                            m.next = "STATS"
                        with m.Else():
                            m.next = "CMD"
                with m.Elif(pf_ready):
                    # the next descriptor is in: load it, then start
                    m.d.sync += [layer_cycles[layer].eq(cyc_layer), layer.eq(layer + 1),
                                 cyc_layer.eq(1)] + [c.eq(1) for c in cfg_ce]
                    m.next = "LOAD"
            with m.State("STATS"):
                m.d.comb += [outs.valid.eq(1),
                             outs.payload.eq(Mux(out_i == n_layers, cyc_total, layer_cycles[out_i]))]
                with m.If(outs.ready):
                    m.d.sync += out_i.eq(out_i + 1)
                    with m.If(out_i == n_layers):
                        m.next = "CMD"
            with m.State("INFO"):
                m.d.comb += [outs.valid.eq(1), outs.payload.eq(info[out_i])]
                with m.If(outs.ready):
                    m.d.sync += out_i.eq(out_i + 1)
                    with m.If(out_i == len(dp_info_words(p)) - 1):
                        m.next = "CMD"

        # the image words, taken while the first layer already runs (it waits for the rows it reads)
        # (`img_done` is low only from a RUN's layer count to its last image word, while the parser
        # is in the layer states: it alone decides whether a word is an image word)
        with m.If(~img_done):
            m.d.comb += [ins.ready.eq(1), img_we.eq(take)]
            with m.If(take):
                m.d.sync += [img_left.eq(img_left - 1), img_have.eq(img_have + 1), img_last.eq(img_left == 2)]
                with m.If(img_last):
                    m.d.sync += img_done.eq(1)
        # (three registers: an image word reaches its bank three cycles after it was taken)
        avail_q = [Signal(len(flu.avail), name=f"avail_q{k}") for k in range(2)]
        avail = Signal(len(flu.avail))
        m.d.sync += [avail_q[0].eq(Mux(img_done, (1 << len(flu.avail)) - 1, img_have)), avail_q[1].eq(avail_q[0]),
                     avail.eq(avail_q[1])]
        m.d.comb += flu.avail.eq(avail)

        with m.If(~fsm.ongoing("CMD") & ~fsm.ongoing("STATS") & ~fsm.ongoing("INFO") & ~fsm.ongoing("WADDR")
                  & ~fsm.ongoing("WDATA")):
            m.d.sync += cyc_total.eq(cyc_total + 1)
        # the prefetch of a descriptor (dmem words dptr ..): the first layer's in LDESC, the next
        # layer's during WAIT, DUMP and NEXT; a word shifts in the cycle after its address, by a
        # flip-flop enable (copies, one per 64 bits)
        pf_on = (fsm.ongoing("LDESC") | ((fsm.ongoing("WAIT") | fsm.ongoing("DUMP") | fsm.ongoing("NEXT"))
                                          & ~last_layer)) & ~pf_ready
        pf_issue = Signal()
        m.d.comb += pf_issue.eq(pf_on & (pf_k != DW))
        pf_shift = [Signal(name=f"pf_shift{k}", attrs=REPLICA) for k in range(len(cfg_ce))]
        m.d.sync += [c.eq(pf_issue) for c in pf_shift]
        for k, c in enumerate(pf_shift):
            nxt = Cat(pf_words[IO_WIDTH:], d_rp.data)
            with m.If(c):
                m.d.sync += pf_words[64 * k:64 * (k + 1)].eq(nxt[64 * k:64 * (k + 1)])
        with m.If(pf_on):
            m.d.comb += d_rp.addr.eq(dptr)
            with m.If(pf_k == DW):
                m.d.sync += pf_ready.eq(1)
            with m.Else():
                m.d.sync += [dptr.eq(dptr + 1), pf_k.eq(pf_k + 1)]
        m.d.comb += self.busy.eq(~fsm.ongoing("CMD") | in_fifo.r_rdy | out_fifo.r_rdy)
        return m


class _Core(Elaboratable):
    def __init__(self, top):
        self.top = top

    def elaborate(self, platform):
        return self.top._elaborate_core(platform)
