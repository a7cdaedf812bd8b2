"""Write-back: the lanes' outputs into the output feature map, or the logits into a stream."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from binaccel.sw.hwif import dp as dpif

from .._util import REPLICA, check_int, checking
from ..params import layout

__all__ = ["WriteBack", "wb_cfg_layout"]


def wb_cfg_layout(*, cols: int, aw: int, count_w: int) -> data.StructLayout:
    """Per-layer configuration (:func:`binaccel.sw.hwif.dp.wb_cfg_layout`)."""
    return layout(dpif.wb_cfg_layout(cols=cols, aw=aw, count_w=count_w))


class WriteBack(wiring.Component):
    """Collects the lane outputs of ``rows`` rows (all rows' outputs of a position in the same
    cycle) and writes them.

    Parameters (keyword-only): ``rows`` (16: a group tile is one 16-bit feature-map slot),
    ``cols``, ``y_width``, ``aw``, ``count_w``, ``max_planes`` (largest output width, 1..8),
    ``logit_depth``.

    Map outputs: output ``c`` of a tile, in tile order (group tile, tile row, tile), is written at
    ``base + g + ty*dy + tx*dx + out_off[c]`` (plus ``b * plane_size`` for bit plane ``b``), bit
    ``r`` of the slot word being row ``r``'s output (bit ``b`` of it). Logits: each row in use
    (``rows_last``, in the last group) pushes its value to ``l_stream`` in row order.

    ``credits``: logit entries the FIFO can still promise; ``take`` (one cycle, at a logits
    segment's start) reserves ``rows`` of them. The unit never stalls its inputs: the compiler's
    spacing leaves a tile's writes (outputs x planes, or a logits tile's rows) the cycles they
    need.
    """

    def __init__(self, *, rows, cols, y_width, aw, count_w, max_planes=8, logit_depth=32):
        with checking(self):
            for name, v, lo, hi in (("rows", rows, 16, 16), ("cols", cols, 1, 16), ("y_width", y_width, 2, 64),
                                    ("aw", aw, 1, 32), ("count_w", count_w, 1, 24), ("max_planes", max_planes, 1, 8),
                                    ("logit_depth", logit_depth, rows, None)):
                check_int(name, v, lo, hi)
        self.rows, self.cols, self.y_width, self.max_planes = rows, cols, y_width, max_planes
        self.logit_depth = logit_depth
        self.cfg_layout = wb_cfg_layout(cols=cols, aw=aw, count_w=count_w)
        out = data.StructLayout({"valid": 1, "y": signed(y_width)})
        super().__init__({
            "cfg": In(self.cfg_layout), "start": In(1), "busy": Out(1),
            "i": In(data.ArrayLayout(out, rows)),
            "wr_addr": Out(aw), "wr_data": Out(rows), "wr_en": Out(1),
            "l_stream": Out(stream.Signature(signed(y_width))),
            "take": In(1), "credits": Out(range(logit_depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, R, C, P = self.cfg, self.rows, self.cols, self.max_planes

        # ---- logits: rows in turn into the FIFO -----------------------------------------------------
        m.submodules.lfifo = lf = SyncFIFOBuffered(width=self.y_width, depth=self.logit_depth)
        lrow = Signal(range(R))
        lg = Signal(len(cfg.last_gt))
        credits = Signal(range(self.logit_depth + 1), init=self.logit_depth)
        pop = self.l_stream.valid & self.l_stream.ready
        m.d.comb += [self.l_stream.payload.eq(lf.r_data), self.l_stream.valid.eq(lf.r_rdy), lf.r_en.eq(self.l_stream.ready),
                     self.credits.eq(credits)]
        drop = Signal()    # a row past the layer's channels: its reserved entry comes back
        m.d.sync += credits.eq(credits - Mux(self.take, R, 0) + pop + drop)
        # a logits layer has one output per tile, all rows in the same cycle: they are held and go
        # into the FIFO one row per cycle (a logits segment is at least `rows` cycles long)
        # (the rows' values are registered with one load flag per row, then shift every cycle: no
        # decoded select drives all rows' bits)
        held = Signal(data.ArrayLayout(signed(self.y_width), R), reset_less=True)
        l_left = Signal(range(R + 1))
        ly = [Signal(signed(self.y_width), name=f"wb_ly{r}", reset_less=True) for r in range(R)]
        lload = [Signal(name=f"wb_lload{r}", attrs=REPLICA) for r in range(R)]
        for r in range(R):
            m.d.sync += [ly[r].eq(self.i[r].y), lload[r].eq(cfg.logits & self.i[0].valid),
                         held[r].eq(Mux(lload[r], ly[r], held[min(r + 1, R - 1)]))]
        with m.If(lload[0]):
            m.d.sync += l_left.eq(R)
        with m.Elif(l_left != 0):
            m.d.sync += l_left.eq(l_left - 1)
        l_v = l_left != 0
        in_use = (lg != cfg.last_gt) | (lrow <= cfg.rows_last)
        with m.If(l_v):
            m.d.comb += [lf.w_data.eq(held[0]), lf.w_en.eq(in_use), drop.eq(~in_use)]
            with m.If(lrow == R - 1):
                m.d.sync += [lrow.eq(0), lg.eq(lg + 1)]
            with m.Else():
                m.d.sync += lrow.eq(lrow + 1)

        # ---- maps: the rows' outputs of a position arrive together: one slot word per bit plane -------
        aligned = [self.i[r].y[:P] for r in range(R)]
        av = self.i[0].valid
        # output counters and the address of each output
        c_i = Signal(range(C))
        tx, ty, gt = (Signal(len(cfg.last_gt), name=n) for n in ("wb_tx", "wb_ty", "wb_gt"))
        tile, row, gbase = (Signal(len(self.wr_addr), name=n) for n in ("wb_tile", "wb_row", "wb_gbase"))
        q_addr = Signal(len(self.wr_addr))
        q_bits = Signal(data.ArrayLayout(R, P))
        q_keep = Signal()
        q_v = Signal()
        last_tile_of_row = tx == cfg.last_tx
        m.d.sync += q_v.eq(0)
        with m.If(av & ~cfg.logits):
            m.d.sync += [q_v.eq(1), q_addr.eq(tile + cfg.out_off[c_i]),
                         q_keep.eq(~cfg.linear | ~last_tile_of_row | (c_i < cfg.last_cols))]
            for b in range(P):
                m.d.sync += q_bits[b].eq(Cat(*[aligned[r][b] for r in range(R)]))
            with m.If(c_i != cfg.last_out):
                m.d.sync += c_i.eq(c_i + 1)
            with m.Else():
                m.d.sync += c_i.eq(0)
                with m.If(~last_tile_of_row):
                    m.d.sync += [tx.eq(tx + 1), tile.eq(tile + cfg.dx)]
                with m.Else():
                    m.d.sync += tx.eq(0)
                    with m.If(ty != cfg.last_ty):
                        m.d.sync += [ty.eq(ty + 1), row.eq(row + cfg.dy), tile.eq(row + cfg.dy)]
                    with m.Else():
                        m.d.sync += [ty.eq(0), gt.eq(gt + 1), gbase.eq(gbase + 1), row.eq(gbase + 1),
                                     tile.eq(gbase + 1)]
        with m.If(self.start):
            m.d.sync += [c_i.eq(0), tx.eq(0), ty.eq(0), gt.eq(0), tile.eq(cfg.base), row.eq(cfg.base),
                         gbase.eq(cfg.base), lrow.eq(0), lg.eq(0)]

        # a small queue of outputs, written one bit plane per cycle
        m.submodules.wq = wq = SyncFIFO(width=len(q_addr) + R * P, depth=8)
        m.d.comb += [wq.w_data.eq(Cat(q_addr, q_bits)), wq.w_en.eq(q_v & q_keep)]
        pb = Signal(3)
        head_addr = wq.r_data[:len(q_addr)]
        head_bits = data.View(data.ArrayLayout(R, P), wq.r_data[len(q_addr):])
        plane_off = Signal(len(q_addr))
        m.d.comb += [self.wr_en.eq(wq.r_rdy), self.wr_addr.eq(head_addr + plane_off),
                     self.wr_data.eq(head_bits[pb])]
        with m.If(wq.r_rdy):
            with m.If(pb == cfg.planes_last):
                m.d.comb += wq.r_en.eq(1)
                m.d.sync += [pb.eq(0), plane_off.eq(0)]
            with m.Else():
                m.d.sync += [pb.eq(pb + 1), plane_off.eq(plane_off + cfg.plane_size)]

        m.d.comb += self.busy.eq((wq.w_level != 0) | q_v | l_v | lload[0] | Cat(*[self.i[r].valid for r in range(R)]).any())
        return m
