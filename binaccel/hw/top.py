"""The accelerator: a runtime-programmable network processor with one input and one output word stream.

The host streams 32-bit command words into ``i_stream`` (``docs/accelerator.md`` has the full format;
:mod:`binaccel.sw.program` builds them)::

    WRITE  header (op=1, target, count), start address, count entries of the target buffer
           (DESC: layer descriptors, WEIGHT: weight words, TABLE: M-Filter columns and output
           parameters, FMAP0/FMAP1: feature-map words), each entry as ceil(width/32) words, LSW first
    RUN    header (op=2, stats flag, count), number of layers, count image words (written to bank 0
           from address 0); then every layer of the program runs on chip, feature maps ping-pong
           between the two banks
    INFO   header (op=3): the build parameters come back
    NOP    header 0

``o_stream`` carries, per RUN, the output maps of layers flagged ``dump`` (after each such layer),
the logits of the last layer (each value as ``ceil(y_width/32)`` words, two's complement, LSW
first) and, with the stats flag, the cycles of each layer and of the whole image.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Elaboratable, Module, Mux, \
    ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from binaccel.sw.hwif import IO_WIDTH, AccelParams, Op, Target, info_words

from ._util import checking
from .engine import Engine
from .fetch import FetchUnit
from .fmap import WriteBack
from .params import layout
from .seq import Feeder

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """Whole-network accelerator (see the module docstring and ``docs/accelerator.md``).

    Keyword parameters: those of :class:`~binaccel.sw.hwif.AccelParams` (engine parameters plus
    ``fm_depth``, ``w_depth``, ``t_depth``, ``max_layers``, ``max_dim``), each checked.

    Ports: ``i_stream`` and ``o_stream`` (``stream.Signature(32)``, valid/ready); ``busy`` (a
    command is being executed); ``error`` (sticky until reset: an unknown opcode or target, a
    bad layer count, or an engine stream error).
    """

    def __init__(self, **kwargs):
        with checking(self):
            self.params = AccelParams(**kwargs)
        super().__init__({
            "i_stream": In(stream.Signature(IO_WIDTH)),
            "o_stream": Out(stream.Signature(IO_WIDTH)),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        # The design runs in a domain whose reset is the `sync` reset registered once: no logic but
        # one flop depends on the reset input (a simulator then re-evaluates only the stream FIFOs when
        # the inputs change, and the reset is synchronous with one cycle of delay, as on an FPGA).
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
        e = p.engine
        C, W, R = e.cols, e.word, e.rows
        eng_kw = e.as_dict()

        m.submodules.engine = engine = Engine(**eng_kw)
        m.submodules.fetch = fetch = FetchUnit(params=p)
        m.submodules.feeder = feeder = Feeder(params=p)
        m.submodules.wb = wb = WriteBack(params=p)
        # operand steps pass a three-entry FIFO (full rate; two entries would halve it): the fetch
        # unit's gearboxes see a registered ready, not the feeder -> engine -> write-back ready chain
        # (part of the longest path of the ULX3S build)
        m.submodules.oper_fifo = oper_fifo = SyncFIFOBuffered(width=e.oper_layout.size, depth=3)
        m.d.comb += [
            oper_fifo.w_data.eq(fetch.o_stream.payload), oper_fifo.w_en.eq(fetch.o_stream.valid),
            fetch.o_stream.ready.eq(oper_fifo.w_rdy),
            feeder.oper_stream.payload.eq(oper_fifo.r_data), feeder.oper_stream.valid.eq(oper_fifo.r_rdy),
            oper_fifo.r_en.eq(feeder.oper_stream.ready),
        ]
        wiring.connect(m, feeder.o_stream, engine.i_stream)
        wiring.connect(m, engine.o_stream, wb.i_stream)

        # ---- buffers ----------------------------------------------------------------------------
        # Each bank is one copy per read port, all written alike: ports 0..C-1 fetch (first tap), C
        # write-back / dump (transparent for the write), C+1..2C fetch (second tap of a pair; only with
        # pair_reads). (An FPGA needs a block-RAM copy per read port anyway; one memory with many read
        # ports made yosys' memory_libmap exhaust the 4 GB of the WebAssembly yosys at 17 ports.)
        n_rd = 2 * C + 1 if p.pair_reads else C + 1
        bank_rd, bank_wr = [], []
        for b in range(2):
            wr = _WritePort(p.fm_aw, W, name=f"fm{b}_w")
            rps = []
            for k in range(n_rd):
                mem = Memory(shape=W, depth=p.fm_depth, init=[])
                m.submodules[f"fmap{b}_{k}"] = mem
                wp = mem.write_port()
                m.d.comb += [wp.addr.eq(wr.addr), wp.data.eq(wr.data), wp.en.eq(wr.en)]
                rps.append(mem.read_port(transparent_for=(wp,) if k == C else ()))
            bank_rd.append(rps)
            bank_wr.append(wr)
        m.submodules.wmem = wmem = Memory(shape=R * W, depth=p.w_depth, init=[])
        w_wp, w_rp = wmem.write_port(), wmem.read_port()
        m.submodules.tmem = tmem = Memory(shape=p.table_width, depth=p.t_depth, init=[])
        t_wp, t_rp = tmem.write_port(), tmem.read_port()
        # descriptors: 32-bit words in block RAM (io_words[DESC] words a layer, LSW first), shifted
        # into `cfg` one word per cycle when a layer starts
        DW = p.io_words[Target.DESC]
        d_depth = max(p.max_layers * DW, 2)
        m.submodules.dmem = dmem = Memory(shape=IO_WIDTH, depth=d_depth, init=[])
        d_wp, d_rp = dmem.write_port(), dmem.read_port()

        cfg_words = Signal(DW * IO_WIDTH)
        cfg = Signal(layout(p.desc_layout))
        m.d.comb += cfg.eq(cfg_words[:p.desc_layout.size])
        m.d.comb += [fetch.cfg.eq(cfg), feeder.cfg.eq(cfg), wb.cfg.eq(cfg)]

        # fetch: one read port per column of the input bank
        for c in range(C):
            for b in range(2):
                m.d.comb += [bank_rd[b][c].addr.eq(fetch.rd_addr[c]), bank_rd[b][c].en.eq(fetch.rd_en)]
            m.d.comb += fetch.rd_data[c].eq(Mux(cfg.in_bank, bank_rd[1][c].data, bank_rd[0][c].data))
            if p.pair_reads:
                for b in range(2):
                    m.d.comb += [bank_rd[b][C + 1 + c].addr.eq(fetch.rd2_addr[c]),
                                 bank_rd[b][C + 1 + c].en.eq(fetch.rd_en)]
                m.d.comb += fetch.rd2_data[c].eq(Mux(cfg.in_bank, bank_rd[1][C + 1 + c].data,
                                                     bank_rd[0][C + 1 + c].data))
        m.d.comb += [w_rp.addr.eq(fetch.w_addr), w_rp.en.eq(fetch.w_en), fetch.w_data.eq(w_rp.data)]
        ring_base = Signal(p.w_aw)
        ring_size = Signal(p.w_aw + 1)
        w_written = Signal(p.ring_count_w)   # streamed weight entries written during this RUN (modulo)
        w_left = Signal(24)        # ... still expected from the host
        lw_ptr = Signal(p.w_aw)    # ring address of the next one
        m.d.comb += [fetch.ring_base.eq(ring_base), fetch.ring_size.eq(ring_size), fetch.w_written.eq(w_written)]
        m.d.comb += [t_rp.addr.eq(feeder.t_addr), t_rp.en.eq(feeder.t_en), feeder.t_data.eq(t_rp.data)]
        wb_rd_data = Mux(cfg.out_bank, bank_rd[1][C].data, bank_rd[0][C].data)
        m.d.comb += wb.rd_data.eq(wb_rd_data)

        # ---- stream buffers: the ports see registers only ------------------------------------------------
        m.submodules.in_fifo = in_fifo = SyncFIFO(width=IO_WIDTH, depth=2)
        m.submodules.out_fifo = out_fifo = SyncFIFO(width=IO_WIDTH, depth=2)
        ins = stream.Signature(IO_WIDTH).flip().create()
        outs = stream.Signature(IO_WIDTH).create()
        m.d.comb += [
            in_fifo.w_data.eq(self.i_stream.payload),
            in_fifo.w_en.eq(self.i_stream.valid & ~ResetSignal()),
            self.i_stream.ready.eq(in_fifo.w_rdy & ~ResetSignal()),
            ins.payload.eq(in_fifo.r_data), ins.valid.eq(in_fifo.r_rdy), in_fifo.r_en.eq(ins.ready),
            out_fifo.w_data.eq(outs.payload), out_fifo.w_en.eq(outs.valid), outs.ready.eq(out_fifo.w_rdy),
            self.o_stream.payload.eq(out_fifo.r_data), self.o_stream.valid.eq(out_fifo.r_rdy),
            out_fifo.r_en.eq(self.o_stream.ready),
        ]

        # ---- command parser and layer sequencer --------------------------------------------------------
        word = ins.payload
        take = Signal()
        m.d.comb += take.eq(ins.valid & ins.ready)
        # words per entry as the parser collects them: a descriptor word goes straight to `dmem`
        io_words = {**p.io_words, Target.DESC: 1}
        max_io = max(io_words.values())

        op_tgt = Signal(4)
        count = Signal(24)
        addr = Signal(max(p.fm_aw, p.w_aw, p.t_aw, ceil_log2(d_depth), 1))
        sub = Signal(range(max_io + 1))
        slots = [Signal(IO_WIDTH, name=f"slot{j}") for j in range(max_io)]
        entry = Cat(*[Mux(sub == j, word, slots[j]) for j in range(max_io)])
        stats = Signal()
        dptr = Signal(range(d_depth + 1))    # dmem word of the descriptor being loaded
        dk = Signal(range(DW + 1))           # words of it requested so far
        n_layers = Signal(range(p.max_layers + 1))
        layer = Signal(range(p.max_layers + 1))
        error = Signal()
        m.d.comb += self.error.eq(error | engine.error)

        cyc_layer = Signal(32)
        cyc_total = Signal(32)
        layer_cycles = Array([Signal(32, name=f"cycles{i}") for i in range(p.max_layers)])
        out_i = Signal(range(p.max_layers + len(info_words(p)) + 2))
        dump_left = Signal(p.fm_aw + 1)
        dump_addr = Signal(p.fm_aw)
        dsub = Signal(range(max(p.io_words[Target.FMAP0], 2)))   # (the loader owns `sub` during layers)
        start = Signal()
        run_start = Signal()
        m.d.comb += [fetch.start.eq(start), feeder.start.eq(start), wb.start.eq(start),
                     fetch.run_start.eq(run_start)]

        def entry_words(tgt):
            n = Signal(range(max_io + 1))
            with m.Switch(tgt):
                for t, k in io_words.items():
                    with m.Case(t):
                        m.d.comb += n.eq(k)
            return n

        n_sub = entry_words(op_tgt)
        last_sub = sub == n_sub - 1

        # buffer writes from the host
        in_layers = Signal()       # the layer loop runs (owns o_stream for logits, takes streamed weights)
        host_we = Signal()
        m.d.comb += [
            d_wp.addr.eq(addr), d_wp.data.eq(word), d_wp.en.eq(host_we & (op_tgt == Target.DESC)),
            w_wp.addr.eq(Mux(in_layers, lw_ptr, addr)), w_wp.data.eq(entry),
            w_wp.en.eq(host_we & (op_tgt == Target.WEIGHT)),
            t_wp.addr.eq(addr), t_wp.data.eq(entry), t_wp.en.eq(host_we & (op_tgt == Target.TABLE)),
        ]
        for b in range(2):
            host_b = host_we & (op_tgt == (Target.FMAP0 if b == 0 else Target.FMAP1))
            wb_b = cfg.out_bank == b
            m.d.comb += [
                bank_wr[b].addr.eq(Mux(host_b, addr, wb.wr_addr)),
                bank_wr[b].data.eq(Mux(host_b, entry[:W], wb.wr_data)),
                bank_wr[b].en.eq(host_b | (wb_b & wb.wr_en)),
            ]

        # logits serializer (write-back -> o_stream)
        lw = p.logit_words
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

        info = Array([Const(v, IO_WIDTH) for v in info_words(p)])
        dump_io = p.io_words[Target.FMAP0]
        dump_word = Array([wb_rd_data[j * IO_WIDTH:(j + 1) * IO_WIDTH] for j in range(dump_io)])

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
                            with m.If(word[4:8] <= Target.FMAP1):
                                m.next = "WADDR"
                            with m.Else():
                                m.d.sync += error.eq(1)
                        with m.Case(Op.RUN):
                            m.d.sync += [stats.eq(word[4]), op_tgt.eq(Target.FMAP0), cyc_total.eq(1)]
                            m.next = "RUN_N"
                        with m.Case(Op.INFO):
                            m.d.sync += out_i.eq(0)
                            m.next = "INFO"
                        with m.Default():
                            m.d.sync += error.eq(1)
            with m.State("WADDR"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    m.d.sync += addr.eq(word)
                    with m.If(op_tgt == Target.DESC):
                        # descriptor entries are written word by word
                        m.d.sync += [addr.eq(word[:len(addr)] * DW), count.eq(count * DW)]
                    m.next = "WDATA"
                    with m.If(count == 0):
                        m.next = "CMD"
            with m.State("WDATA"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    for j in range(max_io):
                        with m.If(sub == j):
                            m.d.sync += slots[j].eq(word)
                    with m.If(last_sub):
                        m.d.comb += host_we.eq(1)
                        m.d.sync += [sub.eq(0), addr.eq(addr + 1), count.eq(count - 1)]
                        with m.If(count == 1):
                            m.next = "CMD"
                    with m.Else():
                        m.d.sync += sub.eq(sub + 1)
            with m.State("RUN_N"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    m.d.sync += [n_layers.eq(word), addr.eq(0), layer.eq(0), dptr.eq(0), dk.eq(0)]
                    with m.If((word == 0) | (word > p.max_layers)):
                        m.d.sync += error.eq(1)
                        m.next = "CMD"
                    with m.Else():
                        m.next = "RUN_W"
            with m.State("RUN_W"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    m.d.sync += [w_left.eq(word), w_written.eq(0)]
                    m.next = "RUN_RB"
            with m.State("RUN_RB"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    m.d.sync += [ring_base.eq(word), lw_ptr.eq(word)]
                    m.next = "RUN_RS"
            with m.State("RUN_RS"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    m.d.comb += run_start.eq(1)
                    m.d.sync += [ring_size.eq(word), op_tgt.eq(Mux(count == 0, Target.WEIGHT, Target.FMAP0))]
                    with m.If((w_left != 0) & ((word == 0) | (word > p.w_depth))):
                        m.d.sync += [error.eq(1), w_left.eq(0)]
                        m.next = "CMD"
                    with m.Elif(count == 0):
                        m.next = "LDESC"
                    with m.Else():
                        m.next = "IMAGE"
            with m.State("IMAGE"):
                m.d.comb += ins.ready.eq(1)
                with m.If(take):
                    for j in range(max_io):
                        with m.If(sub == j):
                            m.d.sync += slots[j].eq(word)
                    with m.If(last_sub):
                        m.d.comb += host_we.eq(1)
                        m.d.sync += [sub.eq(0), addr.eq(addr + 1), count.eq(count - 1)]
                        with m.If(count == 1):
                            m.d.sync += op_tgt.eq(Target.WEIGHT)   # streamed weights follow
                            m.next = "LDESC"
                    with m.Else():
                        m.d.sync += sub.eq(sub + 1)
            with m.State("LDESC"):
                # read the layer's DW words (dptr = layer * DW), each arriving one cycle later
                m.d.comb += [d_rp.addr.eq(dptr), d_rp.en.eq(1)]
                with m.If(dk == 0):
                    m.d.sync += cyc_layer.eq(1)
                with m.Else():
                    m.d.sync += cfg_words.eq(Cat(cfg_words[IO_WIDTH:], d_rp.data))
                with m.If(dk == DW):
                    m.d.sync += dk.eq(0)
                    m.next = "START"
                with m.Else():
                    m.d.sync += [dptr.eq(dptr + 1), dk.eq(dk + 1)]
            with m.State("START"):
                m.d.comb += [start.eq(1), logit_out.eq(1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += logit_out.eq(1)
                with m.If(~fetch.busy & ~feeder.busy & ~wb.busy):
                    m.d.sync += [dump_left.eq(cfg.dump_words), dump_addr.eq(cfg.out_base), dsub.eq(0)]
                    with m.If(cfg.dump & ~cfg.logits & (cfg.dump_words != 0)):
                        m.next = "DUMP_RD"
                    with m.Else():
                        m.next = "NEXT"
            with m.State("DUMP_RD"):
                for b in range(2):
                    m.d.comb += [bank_rd[b][C].addr.eq(dump_addr), bank_rd[b][C].en.eq(1)]
                m.next = "DUMP_TX"
            with m.State("DUMP_TX"):
                m.d.comb += [outs.valid.eq(1), outs.payload.eq(dump_word[dsub])]
                with m.If(outs.ready):
                    with m.If(dsub == dump_io - 1):
                        m.d.sync += [dsub.eq(0), dump_addr.eq(dump_addr + 1), dump_left.eq(dump_left - 1)]
                        with m.If(dump_left == 1):
                            m.next = "NEXT"
                        with m.Else():
                            m.next = "DUMP_RD"
                    with m.Else():
                        m.d.sync += dsub.eq(dsub + 1)
            with m.State("NEXT"):
                m.d.sync += [layer_cycles[layer].eq(cyc_layer), layer.eq(layer + 1)]
                with m.If(layer == n_layers - 1):
                    m.d.sync += out_i.eq(0)
                    with m.If(stats):
                        m.next = "STATS"
                    with m.Else():
                        m.next = "CMD"
                with m.Else():
                    m.next = "LDESC"
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
                    with m.If(out_i == len(info_words(p)) - 1):
                        m.next = "CMD"

        # streamed weights: taken from i_stream while the layers run, into the ring, as space allows
        m.d.comb += in_layers.eq(fsm.ongoing("LDESC") | fsm.ongoing("START")
                                 | fsm.ongoing("WAIT") | fsm.ongoing("DUMP_RD") | fsm.ongoing("DUMP_TX")
                                 | fsm.ongoing("NEXT"))
        # (never more than ring_size entries ahead of the released ones: the modulo difference is exact)
        ring_free = (w_written - fetch.w_released)[:p.ring_count_w] < ring_size
        with m.If(in_layers & (w_left != 0)):
            m.d.comb += ins.ready.eq(ring_free)
            with m.If(take):
                for j in range(max_io):
                    with m.If(sub == j):
                        m.d.sync += slots[j].eq(word)
                with m.If(last_sub):
                    m.d.comb += host_we.eq(1)
                    nxt = lw_ptr + 1
                    m.d.sync += [sub.eq(0), w_left.eq(w_left - 1), w_written.eq(w_written + 1),
                                 lw_ptr.eq(Mux(nxt >= ring_base + ring_size, ring_base, nxt))]
                with m.Else():
                    m.d.sync += sub.eq(sub + 1)

        # write-back's read port (pooling) when not dumping
        with m.If(~fsm.ongoing("DUMP_RD")):
            for b in range(2):
                m.d.comb += [bank_rd[b][C].addr.eq(wb.rd_addr), bank_rd[b][C].en.eq(wb.rd_en)]

        # cycle counters: the layer's from its descriptor read, the image's from the RUN header
        with m.If(~fsm.ongoing("CMD") & ~fsm.ongoing("STATS") & ~fsm.ongoing("INFO") & ~fsm.ongoing("WADDR")
                  & ~fsm.ongoing("WDATA")):
            m.d.sync += cyc_total.eq(cyc_total + 1)
        with m.If(~fsm.ongoing("LDESC") | (dk != 0)):
            m.d.sync += cyc_layer.eq(cyc_layer + 1)
        m.d.comb += self.busy.eq(~fsm.ongoing("CMD") | in_fifo.r_rdy | out_fifo.r_rdy)
        return m


class _WritePort:
    """The write port signals shared by the copies of a feature-map bank."""

    def __init__(self, addr_width, data_width, *, name):
        self.addr = Signal(addr_width, name=f"{name}_addr")
        self.data = Signal(data_width, name=f"{name}_data")
        self.en = Signal(name=f"{name}_en")


class _Core(Elaboratable):
    def __init__(self, top):
        self.top = top

    def elaborate(self, platform):
        return self.top._elaborate_core(platform)
