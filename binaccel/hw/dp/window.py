"""Window generator: the operand steps of a layer, read straight from the feature-map slots."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from binaccel.sw.hwif import dp as dpif

from .._util import check_int, checking
from ..params import WinMode, layout
from .array import array_step_layout
from .nest import DownCounter, Flag, Predecoded, UpCounter, mux_next

__all__ = ["WindowGen"]

SLOT = dpif.SLOT


class WindowGen(wiring.Component):
    """Streams one layer's operand steps into an :class:`~binaccel.hw.dp.array.XnorArray`.

    Parameters (keyword-only): ``rows``, ``cols``, ``word`` (``2 * SLOT``: a step holds two
    16-bit slots), ``n_width``, ``tag_width`` (the array's), ``aw`` (feature-map address width, in
    slots), ``cw`` (signed coordinate width), ``count_w``, ``steps_w``, ``tbl_aw``, ``w_aw`` (see
    :func:`binaccel.sw.hwif.dp.window_cfg_layout`), ``kb`` (tap index width), ``mem_latency``
    (cycles from an address to its data on every memory port, 1 or 2).

    The feature map holds one 16-bit slot per address: 16 channels of one pixel in one bit plane
    (pixel-major, channel chunks minor, planes ``plane_size`` apart). A layer run visits, for each
    group tile ``g`` (the array's rows), each tile of ``cols`` output positions (``cfg.mode``),
    one segment: bit planes from the top one down, in each ``last_step + 1`` steps. Step ``j``
    reads, for every column and both slots ``s``, the slot at ``column origin + tbl[j][s].off``
    (offset table entry ``tbl_base + j``). A slot is *valid* if it is ``used``, in range
    (``2j + s < col_lim[c]``), its column is in use, and its tap lies inside the input map
    (``cfg.mode != FC``). An invalid slot reads as 0; with ``cfg.binary`` it is also masked out of
    the popcount and its ``nbits`` are not counted (``n``), otherwise its mask bit is its ``used``
    bit (zero-padded bit planes contribute exactly through the lane's offset).

    The weight word of step ``j`` of group ``g`` is read from ``w_base + g * w_stride + j``.
    ``tag[0]`` of every step is ``g & 1`` (the lanes' parameter bank).

    Ports: ``cfg`` (stable during a run), ``start`` (one cycle), ``busy``, ``hold`` (while high
    no new segment starts), the memory read ports ``tbl_addr``/``tbl_data``, ``w_addr``/``w_data``
    and ``rd_addr[2c + s]``/``rd_data[2c + s]`` (data ``mem_latency`` cycles after the address),
    and ``o``, the array's step input (a bubble when not valid). Within a run, the last steps of
    two segments are at least ``cfg.spacing`` cycles apart (at least ``cols``: the array's rule;
    the count restarts at ``start``, and the caller keeps runs apart). ``seg_go``
    marks the cycle a segment's first step leaves the counters; ``group`` is the group tile of
    the next step. Nothing stalls once a segment has
    started.
    """

    def __init__(self, *, rows, cols, n_width, tag_width, aw, cw, count_w, steps_w, tbl_aw, w_aw, kb=2,
                 mem_latency=1, word=2 * SLOT):
        with checking(self):
            for name, v, lo, hi in (("rows", rows, 1, None), ("cols", cols, 1, None), ("n_width", n_width, 1, None),
                                    ("tag_width", tag_width, 1, None), ("aw", aw, 1, 32), ("cw", cw, 2, 24),
                                    ("count_w", count_w, 1, 24), ("steps_w", steps_w, 1, 24),
                                    ("tbl_aw", tbl_aw, 1, 24), ("w_aw", w_aw, 1, 24), ("kb", kb, 1, 4),
                                    ("mem_latency", mem_latency, 1, 3)):
                check_int(name, v, lo, hi)
            if word != 2 * SLOT:
                raise ValueError(f"word must be {2 * SLOT} (two {SLOT}-bit slots), got {word}")
        self.rows, self.cols, self.word = rows, cols, word
        self.n_width, self.tag_width = n_width, tag_width
        self.aw, self.cw, self.kb, self.mem_latency = aw, cw, kb, mem_latency
        self.cfg_layout = layout(dpif.window_cfg_layout(cols=cols, aw=aw, cw=cw, count_w=count_w, steps_w=steps_w,
                                                        tbl_aw=tbl_aw, w_aw=w_aw))
        self.entry_layout = layout(dpif.table_entry_layout(aw=aw, kb=kb))
        self.count_w, self.steps_w = count_w, steps_w
        super().__init__({
            "cfg": In(self.cfg_layout),
            "start": In(1), "busy": Out(1), "hold": In(1), "hold_every": In(1), "seg_go": Out(1),
            "group": Out(count_w),
            "tbl_addr": Out(tbl_aw), "tbl_data": In(self.entry_layout),
            "w_addr": Out(w_aw), "w_data": In(data.ArrayLayout(word, rows)),
            "rd_addr": Out(data.ArrayLayout(aw, 2 * cols)),
            "rd_data": In(data.ArrayLayout(SLOT, 2 * cols)),
            "o": Out(array_step_layout(rows=rows, cols=cols, word=word, slot=SLOT, n_width=n_width,
                                       tag_width=tag_width)),
        })

    @property
    def latency(self) -> int:
        """Cycles from a step leaving the counters to the step on ``o``."""
        return 5 + self.mem_latency + max(self.mem_latency - 2, 0)

    def elaborate(self, platform):
        m = Module()
        cfg, C, L = self.cfg, self.cols, self.mem_latency
        aw, cw = self.aw, self.cw

        # ---- counters: one step per cycle -----------------------------------------------------------
        # (the counters start from a `start` registered once: the pre-decoded copies of the
        # configuration they compare against are registers too; every test below is a flip-flop)
        pre = Predecoded(m, "win_pre")
        start = Signal()
        m.d.sync += start.eq(self.start)
        running = Flag(m, "running")
        # `go` (the counters step this cycle) is a register: decided a cycle ahead from the next
        # values of the tests, so the decision and its fan-out to the counters take a cycle each
        go = Signal()
        cj = UpCounter(m, "j", cfg.last_step, init=start, go=go, pre=pre)
        cb = DownCounter(m, "b", cfg.planes_last, init=start, go=go, cond=cj.last_cond, pre=pre)
        seg_end = cb.wraps
        ctx = UpCounter(m, "tx", cfg.last_tx, init=start, go=go, cond=cb.last_cond, pre=pre)
        cty = UpCounter(m, "ty", cfg.last_ty, init=start, go=go, cond=ctx.last_cond, pre=pre)
        cgt = UpCounter(m, "gt", cfg.last_gt, init=start, go=go, cond=cty.last_cond, pre=pre)
        j, gt = cj.value, cgt.value
        tile_addr = Signal(aw)
        row_addr = Signal(aw)
        plane_addr = Signal(aw)
        iy = Signal(signed(cw))
        ix = Signal(signed(cw))
        w_row = Signal(len(self.w_addr))

        seg_last = cj.at_last & cb.at_zero
        seg_first = cj.at_zero & cb.at_top
        # segment ends at least `spacing` cycles apart: `since` counts from the last one
        since = Signal(len(cfg.spacing), init=(1 << len(cfg.spacing)) - 1)
        spaced = Flag(m, "spaced", init=1)          # since >= spacing
        sp_m1 = pre(cfg.spacing - 1, len(cfg.spacing), "sp_m1")
        sp_le1 = pre(cfg.spacing <= 1, 1, "sp_le1")
        # `hold` is looked at in a group tile's first segment (every segment with `hold_every`), for
        # a segment that starts three cycles or more after the group changed or a segment began (the
        # caller registers it, and `go` is decided a cycle ahead)
        grp_first = Flag(m, "grp_first")
        young = Flag(m, "young")                    # age < 2
        age = Signal(range(3))
        hold_every = pre(self.hold_every, 1, "hold_every")
        seg_go = go & seg_first
        m.d.comb += [self.seg_go.eq(seg_go), self.group.eq(gt)]
        regroup = start | cty.wraps
        m.d.comb += [mux_next(grp_first, [(regroup, 1), (seg_go, 0)]),
                     mux_next(young, [(regroup | seg_go, 1), (age == 1, 0)]),
                     mux_next(running, [(start, 1), (cgt.wraps, 0)]),
                     mux_next(spaced, [(start, 1), (go & seg_last, sp_le1),
                                       (since != (1 << len(since)) - 1, spaced.value | (since == sp_m1))])]
        with m.If(regroup | seg_go):
            m.d.sync += age.eq(0)
        with m.Elif(age != 2):
            m.d.sync += age.eq(age + 1)
        seg_last_n = cj.at_last_next & cb.at_zero_next
        seg_first_n = cj.at_zero_next & cb.at_top_next
        stall_n = (grp_first.next | hold_every) & (young.next | self.hold)
        m.d.sync += go.eq(running.next & ~(seg_last_n & ~spaced.next) & ~(seg_first_n & stall_n))
        running, spaced = running.value, spaced.value
        # the step record, stage by stage
        def rec(name):
            # only `valid` has a reset
            return {
                "valid": Signal(name=f"{name}_valid"), "first": Signal(name=f"{name}_first", reset_less=True),
                "dbl": Signal(name=f"{name}_dbl", reset_less=True), "last": Signal(name=f"{name}_last", reset_less=True),
                "tag": Signal(self.tag_width, name=f"{name}_tag", reset_less=True),
                "j2": Signal(self.steps_w + 1, name=f"{name}_j2", reset_less=True),
                "w_addr": Signal(len(self.w_addr), name=f"{name}_waddr", reset_less=True),
            }

        def pass_on(dst, src):
            return [dst[k].eq(src[k]) for k in dst]

        p1 = rec("p1")
        p1_plane = Signal(aw, reset_less=True)
        # each column's input coordinates (its own register: each feeds that column's tap tests only)
        p1_y = [Signal(signed(cw + 1), name=f"p1_y{c}", reset_less=True) for c in range(C)]
        p1_x = [Signal(signed(cw + 1), name=f"p1_x{c}", reset_less=True) for c in range(C)]
        p1_tx_last = Signal(reset_less=True)
        tbl_base = pre(cfg.tbl_base, name="tbl_base")
        m.d.sync += p1["valid"].eq(go)
        with m.If(go):
            m.d.sync += [
                p1["first"].eq(seg_first), p1["dbl"].eq(cj.at_zero & ~cb.at_top), p1["last"].eq(seg_last),
                p1["tag"].eq(gt[0]), p1["j2"].eq(j << 1), p1["w_addr"].eq(w_row + j),
                p1_plane.eq(plane_addr), p1_tx_last.eq(ctx.at_last),
                self.tbl_addr.eq(tbl_base + j),
            ]
        with m.If(go):
            for c in range(C):
                m.d.sync += [p1_y[c].eq(iy + cfg.col_dy[c]), p1_x[c].eq(ix + cfg.col_dx[c])]
        with m.If(cj.wraps & ~cb.at_zero):
            m.d.sync += plane_addr.eq(plane_addr - cfg.plane_size)
        with m.If(seg_end & ~ctx.at_last):
            m.d.sync += [tile_addr.eq(tile_addr + cfg.dx_addr), plane_addr.eq(tile_addr + cfg.dx_addr),
                         ix.eq(ix + cfg.dx_pix)]
        with m.If(ctx.wraps):
            m.d.sync += ix.eq(cfg.ix0)
        with m.If(ctx.wraps & ~cty.at_last):
            nxt = row_addr + cfg.dy_addr
            m.d.sync += [row_addr.eq(nxt), tile_addr.eq(nxt), plane_addr.eq(nxt), iy.eq(iy + cfg.dy_pix)]
        with m.If(cty.wraps):
            m.d.sync += [iy.eq(cfg.iy0), row_addr.eq(cfg.addr0), tile_addr.eq(cfg.addr0), plane_addr.eq(cfg.addr0)]
        with m.If(cty.wraps & ~cgt.at_last):
            m.d.sync += w_row.eq(w_row + cfg.w_stride)
        with m.If(go & seg_last):
            m.d.sync += since.eq(1)
        with m.Elif(since != (1 << len(since)) - 1):
            m.d.sync += since.eq(since + 1)
        with m.If(start):
            m.d.sync += [tile_addr.eq(cfg.addr0), row_addr.eq(cfg.addr0), plane_addr.eq(cfg.addr0),
                         iy.eq(cfg.iy0), ix.eq(cfg.ix0), w_row.eq(cfg.w_base), since.eq((1 << len(since)) - 1)]

        # ---- p2: each column's origin, and which taps lie inside the map --------------------------------
        # (tap k of column c is inside if 0 <= y + k < hin, y = iy + col_dy[c]: two comparisons of
        # the column's coordinate against pre-decoded limits, no adder in front of them)
        K = 1 << self.kb
        p2 = rec("p2")
        m.d.sync += pass_on(p2, p1)
        base2 = [Signal(aw, name=f"p2_base{c}", reset_less=True) for c in range(C)]
        iny2 = [Signal(K, name=f"p2_iny{c}", reset_less=True) for c in range(C)]
        inx2 = [Signal(K, name=f"p2_inx{c}", reset_less=True) for c in range(C)]
        ok2 = [Signal(name=f"p2_colok{c}", reset_less=True) for c in range(C)]
        lw = signed(cw + 2)
        hin_k = [pre(cfg.hin - k, lw, f"hin{k}") for k in range(K)]
        win_k = [pre(cfg.win - k, lw, f"win{k}") for k in range(K)]
        for c in range(C):
            m.d.sync += [base2[c].eq(p1_plane + cfg.col_off[c]),
                         ok2[c].eq((cfg.mode != WinMode.LINEAR) | ~p1_tx_last | (c < cfg.last_cols))]
            for k in range(K):
                m.d.sync += [iny2[c][k].eq((p1_y[c] >= -k) & (p1_y[c] < hin_k[k])),
                             inx2[c][k].eq((p1_x[c] >= -k) & (p1_x[c] < win_k[k]))]

        # ---- p3: the valid taps of each column; the table entry --------------------------------------------
        p3 = rec("p3")
        m.d.sync += pass_on(p3, p2)
        base3 = [Signal(aw, name=f"p3_base{c}", reset_less=True) for c in range(C)]
        vy3 = [Signal(K, name=f"p3_vy{c}", reset_less=True) for c in range(C)]
        vx3 = [Signal(K, name=f"p3_vx{c}", reset_less=True) for c in range(C)]
        inr3 = [Signal(2, name=f"p3_inr{c}", reset_less=True) for c in range(C)]
        fc_q = pre(cfg.mode == WinMode.FC, 1, "fc")
        for c in range(C):
            m.d.sync += base3[c].eq(base2[c])
            for k in range(K):
                m.d.sync += [vy3[c][k].eq(ok2[c] & (fc_q | iny2[c][k])), vx3[c][k].eq(fc_q | inx2[c][k])]
            for s in range(2):
                m.d.sync += inr3[c][s].eq(p2["j2"] + s < cfg.col_lim[c])
        # the table entry, registered once more with one cycle of memory latency; with three, p3
        # waits a cycle for it
        if L == 1:
            ent = Signal(self.entry_layout, reset_less=True)
            m.d.sync += ent.eq(self.tbl_data)
        else:
            ent = self.tbl_data
        p3_valids = [p3["valid"]]
        for d in range(L - 2):
            p3x = rec(f"p3x{d}")
            m.d.sync += pass_on(p3x, p3)
            regs = [[Signal.like(x, name=f"p3x{d}_{x.name}") for x in group] for group in (base3, vy3, vx3, inr3)]
            for dst, src in zip(regs, (base3, vy3, vx3, inr3)):
                m.d.sync += [a.eq(b) for a, b in zip(dst, src)]
            p3 = p3x
            p3_valids.append(p3["valid"])
            base3, vy3, vx3, inr3 = regs

        # ---- p4: slot addresses and validity ----------------------------------------------------------
        p4 = rec("p4")
        m.d.sync += pass_on(p4, p3)
        valid4 = [Signal(name=f"p4_valid{i}", reset_less=True) for i in range(2 * C)]
        used4 = [Signal(name=f"p4_used{i}", reset_less=True) for i in range(2 * C)]
        nbits4 = [Signal(5, name=f"p4_nbits{i}", reset_less=True) for i in range(2 * C)]
        for c in range(C):
            for s in range(2):
                e = ent[s]
                i = 2 * c + s
                m.d.sync += [
                    self.rd_addr[i].eq(base3[c] + e.off),
                    valid4[i].eq(e.used & inr3[c][s] & vy3[c].bit_select(e.ky, 1) & vx3[c].bit_select(e.kx, 1)),
                    used4[i].eq(e.used & inr3[c][s]),
                    nbits4[i].eq(e.nbits),
                ]
        m.d.sync += self.w_addr.eq(p3["w_addr"])

        # ---- wait for the memories, then the step -------------------------------------------------------
        stage, valid_d, used_d, nbits_d = p4, valid4, used4, nbits4
        in_flight = [p1["valid"], p2["valid"], *p3_valids, p4["valid"]]
        for d in range(L):
            nxt = rec(f"q{d}")
            m.d.sync += pass_on(nxt, stage)
            vq = [Signal(name=f"q{d}_valid{i}", reset_less=True) for i in range(2 * C)]
            uq = [Signal(name=f"q{d}_used{i}", reset_less=True) for i in range(2 * C)]
            nq = [Signal(5, name=f"q{d}_nbits{i}", reset_less=True) for i in range(2 * C)]
            m.d.sync += [x.eq(y) for x, y in zip(vq + uq + nq, valid_d + used_d + nbits_d)]
            stage, valid_d, used_d, nbits_d = nxt, vq, uq, nq
            in_flight.append(stage["valid"])

        o = Signal(self.o.shape(), reset_less=True)
        o_valid = Signal()
        m.d.comb += [self.o.eq(o), self.o.ctl.valid.eq(o_valid)]
        m.d.sync += [o_valid.eq(stage["valid"]), o.ctl.first.eq(stage["first"]), o.ctl.dbl.eq(stage["dbl"]),
                     o.ctl.last.eq(stage["last"]), o.ctl.tag.eq(stage["tag"]), o.w.eq(self.w_data)]
        for c in range(C):
            slots, mask, n = [], [], 0
            for s in range(2):
                i = 2 * c + s
                slots.append(Mux(valid_d[i], self.rd_data[i], 0))
                mask.append(Mux(cfg.binary, valid_d[i], used_d[i]))
                n = n + Mux(cfg.binary & valid_d[i], nbits_d[i], 0)
            m.d.sync += [o.a[c].eq(Cat(*slots)), o.m[c].eq(Cat(*mask)), o.n[c].eq(n)]

        m.d.comb += self.busy.eq(start | running | Cat(*in_flight).any() | o_valid)
        return m
