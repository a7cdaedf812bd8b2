"""First-layer unit: 8-bit pixels times binary weights by adder trees, a 2x2 quad of positions per cycle."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from binaccel.sw.hwif import dp as dpif

from .._util import REPLICA, check_int, checking
from ..params import layout
from .carry import Term, fused_add
from .nest import Flag, Predecoded, UpCounter, mux_next
from .pe import result_layout

__all__ = ["FirstLayerUnit", "first_cfg_layout"]

PIX = 8
TAPS = 9


def first_cfg_layout(*, count_w: int, aw: int, w_aw: int) -> data.StructLayout:
    """Per-layer configuration (:func:`binaccel.sw.hwif.dp.first_cfg_layout`)."""
    return layout(dpif.first_cfg_layout(count_w=count_w, aw=aw, w_aw=w_aw))


def _tree_levels_registered(n, every):
    """The levels after which :func:`_tree` of ``n`` values registers."""
    out, k = [], 0
    while n > 1:
        n, k = (n + 1) // 2, k + 1
        if k % every == 0 or n == 1:
            out.append(k)
    return out


def _tree(m, platform, pixels, negs, every, name):
    """A balanced adder tree over the terms ``pixels[i] ^ (0xFF if negs[i] else 0)``, registered
    after every ``every`` levels and at the end; returns (sum, registers on the way). A term's
    XOR lies in the carry cells of the addition that first takes it (:func:`.carry.fused_add`),
    so a term passed on unadded is registered as its pixel and its bit."""
    stops = _tree_levels_registered(len(pixels), every)
    # an element: ("raw", pixel, neg) or ("sum", value)
    level, regs, k = [("raw", x, n) for x, n in zip(pixels, negs)], 0, 0

    def term(e):
        return Term(e[1], e[2], "xor") if e[0] == "raw" else Term(e[1])

    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            if i + 1 == len(level):
                nxt.append(level[i])
                continue
            a, b = level[i], level[i + 1]
            if a[0] == "sum" and b[0] == "sum":
                nxt.append(("sum", a[1] + b[1]))
            else:
                if a[0] == "raw" and b[0] == "sum":
                    a, b = b, a            # (the plain operand in the first place)
                nxt.append(("sum", fused_add(m, platform, term(a), term(b), name=f"{name}_a{k}_{i}")))
        level = nxt
        k += 1
        if k in stops:
            out = []
            for i, e in enumerate(level):
                if e[0] == "raw":
                    x = Signal(len(e[1]), name=f"{name}_l{k}_{i}x", reset_less=True)
                    n = Signal(name=f"{name}_l{k}_{i}n", reset_less=True)
                    m.d.sync += [x.eq(e[1]), n.eq(e[2])]
                    out.append(("raw", x, n))
                else:
                    r = Signal(len(e[1]), name=f"{name}_l{k}_{i}", reset_less=True)
                    m.d.sync += r.eq(e[1])
                    out.append(("sum", r))
            level, regs = out, regs + 1
    assert level[0][0] == "sum"
    return level[0][1], regs


class FirstLayerUnit(wiring.Component):
    """The convolution of a layer on 8-bit pixels with binary weights (3x3, stride 1).

    Parameters (keyword-only): ``rows`` (output channels per group tile), ``acc_width``,
    ``tag_width`` (the results' layout, as the array's, ``n`` always 0), ``count_w``, ``aw``,
    ``w_aw`` (:func:`first_cfg_layout`), ``mem_latency`` (1 to 3), ``levels_per_stage``.

    The image lies in memory as tile words: a word holds the 2x2 pixels ``(2ty + dy, 2tx + dx)``
    of the zero-padded image in byte ``2*dy + dx``; channels follow each other ``ch_size`` words
    apart. A quad ``(qy, qx)`` covers the output positions ``(2qy + dy, 2qx + dx)``; it reads the
    4x4 pixel block of tiles ``(qy + i, qx + j)``, ``i, j`` in 0, 1 (four read ports), one channel
    per cycle. For each row ``r`` (output channel ``g*rows + r``) and position, with weight bits
    ``s`` (bit ``3*ky + kx`` of the row's entry; 1 is +1), the unit sums ``x XOR (0 if s else 255)``
    over the taps and channels: ``acc = sum(w*x) + 255 * (number of -1 weights)``, an unsigned
    value the lane turns back with its offset. With ``cfg.pool`` the quad's largest ``acc`` goes
    out (the smallest where the row's ``dir`` bit, weight entry bit ``9*rows + r`` of channel 0,
    is set: a decreasing output function); otherwise the four positions go out in turn (``dy``
    major). A quad starts only when ``avail`` (image words in memory) exceeds the address of
    the last word it reads (``quad address + need_off``) by a tile row and one (``avail`` is all
    ones once the whole image is in), so the unit runs while the image arrives. Quads' last
    channels are at least ``cfg.spacing`` cycles apart (4 or more without pooling). All rows put
    out their results in the same cycle, as the array's do. The order is group tile, quad row,
    quad, part, channel; ``tag[0]`` is ``g & 1``. :func:`binaccel.sw.dpref.first_layer` is the
    reference.
    """

    def __init__(self, *, rows, acc_width, tag_width, count_w, aw, w_aw, mem_latency=1, levels_per_stage=2,
                 positions=4):
        with checking(self):
            check_int("positions", positions, 1, 4)
            if positions not in (1, 2, 4):
                raise ValueError(f"positions must be 1, 2 or 4, got {positions}")
            for name, v, lo, hi in (("rows", rows, 1, None), ("acc_width", acc_width, 13, None),
                                    ("tag_width", tag_width, 1, None), ("count_w", count_w, 1, 24),
                                    ("aw", aw, 1, 32), ("w_aw", w_aw, 1, 24), ("mem_latency", mem_latency, 1, 3),
                                    ("levels_per_stage", levels_per_stage, 1, None)):
                check_int(name, v, lo, hi)
        self.rows, self.acc_width, self.tag_width = rows, acc_width, tag_width
        self.mem_latency, self.levels_per_stage = mem_latency, levels_per_stage
        self.positions = positions
        self.cfg_layout = first_cfg_layout(count_w=count_w, aw=aw, w_aw=w_aw)
        self.w_width = rows * (TAPS + 1)
        res = result_layout(acc_width=acc_width, n_width=1, tag_width=tag_width)
        super().__init__({
            "cfg": In(self.cfg_layout), "start": In(1), "busy": Out(1), "hold": In(1), "seg_go": Out(1),
            "group": Out(count_w),
            "img_addr": Out(data.ArrayLayout(aw, 4)), "img_data": In(data.ArrayLayout(32, 4)),
            "avail": In(aw + 1),
            "w_addr": Out(w_aw), "w_data": In(self.w_width),
            "o": Out(data.ArrayLayout(res, rows)),
        })

    #: Rows served by one copy of a pixel register.
    ROWS_PER_COPY = 4

    @property
    def min_latency(self) -> int:
        """Fewest cycles from a quad's first step leaving the counters to a result on ``o``."""
        regs = max(len(_tree_levels_registered(TAPS, self.levels_per_stage)), 1)
        # v1, memory, part pixels, tree stages, accumulate, done, output register
        return 1 + self.mem_latency + 1 + regs + 1 + 1 + 1

    def elaborate(self, platform):
        m = Module()
        cfg, R = self.cfg, self.rows

        # ---- counters: one (quad, channel) step per cycle ----------------------------------------------
        # (as the window generator's: a registered start, registered tests, pre-decoded copies)
        pre = Predecoded(m, "flu_pre")
        start = Signal()
        m.d.sync += start.eq(self.start)
        running = Flag(m, "running")
        go = Signal()                 # registered, decided a cycle ahead (as the window generator's)
        P = self.positions
        H = 4 // P                    # parts of a quad, each its P positions over all channels
        cch = UpCounter(m, "ch", cfg.last_ch, init=start, go=go, pre=pre)
        cpt = UpCounter(m, "part", Const(H - 1, max(H - 1, 1).bit_length()), init=start, go=go,
                        cond=cch.last_cond, pre=pre)
        cqx = UpCounter(m, "qx", cfg.last_qx, init=start, go=go, cond=cpt.last_cond, pre=pre)
        cqy = UpCounter(m, "qy", cfg.last_qy, init=start, go=go, cond=cqx.last_cond, pre=pre)
        cgt = UpCounter(m, "gt", cfg.last_gt, init=start, go=go, cond=cqy.last_cond, pre=pre)
        ch, gt = cch.value, cgt.value
        quad_addr = Signal(len(cfg.img_base))
        # `need` is the last word the current quad reads plus a tile row and one: a quad starts when
        # `avail` exceeds it, in a registered test two cycles old by the quad's first step (in two
        # quad starts the last word read grows by at most a tile row and one, and `avail` only grows)
        need = Signal(len(cfg.img_base) + 1)
        row_need = Signal(len(cfg.img_base) + 1)
        need0 = pre(cfg.img_base + cfg.need_off + cfg.tile_row + 1, len(need), "need0")
        row_addr = Signal(len(cfg.img_base))
        ch_addr = Signal(len(cfg.img_base))
        w_row = Signal(len(self.w_addr))
        since = Signal(len(cfg.spacing), init=(1 << len(cfg.spacing)) - 1)
        spaced = Flag(m, "spaced", init=1)
        sp_m1 = pre(cfg.spacing - 1, len(cfg.spacing), "sp_m1")
        sp_le1 = pre(cfg.spacing <= 1, 1, "sp_le1")
        have = Signal()
        m.d.sync += have.eq(self.avail > need)
        # a group tile's first quad starts three cycles or more after the group changed
        # (`grp_wait`), then waits for `hold` (registered by the caller for the new group)
        grp_first = Flag(m, "grp_first")
        grp_wait = Flag(m, "grp_wait")
        age = Signal(range(3))
        last = cpt.last_cond          # the quad's last step
        quad_first = cch.at_zero & cpt.at_zero
        m.d.comb += [self.seg_go.eq(go & quad_first), self.group.eq(gt)]
        regroup = start | cqy.wraps
        m.d.comb += [mux_next(grp_first, [(regroup, 1), (go & quad_first, 0)]),
                     mux_next(grp_wait, [(regroup, 1), (age == 1, 0)]),
                     mux_next(running, [(start, 1), (cgt.wraps, 0)]),
                     mux_next(spaced, [(start, 1), (go & last, sp_le1),
                                       (since != (1 << len(since)) - 1, spaced.value | (since == sp_m1))])]
        with m.If(regroup):
            m.d.sync += age.eq(0)
        with m.Elif(age != 2):
            m.d.sync += age.eq(age + 1)
        last_n = cpt.at_last_next & cch.at_last_next
        quad_first_n = cch.at_zero_next & cpt.at_zero_next
        stall_n = ~have | grp_wait.next | (grp_first.next & self.hold)
        m.d.sync += go.eq(running.next & ~(last_n & ~spaced.next) & ~(quad_first_n & stall_n))
        running, spaced = running.value, spaced.value

        v1 = Signal()
        first1, last1, tag1 = Signal(reset_less=True), Signal(reset_less=True), Signal(self.tag_width, reset_less=True)
        part1 = Signal(len(cpt.value), reset_less=True)
        m.d.sync += v1.eq(go)
        with m.If(go):
            # (`first`/`last`: the part's first and last channel)
            m.d.sync += [first1.eq(cch.at_zero), last1.eq(cch.at_last), tag1.eq(gt[0]), part1.eq(cpt.value),
                         self.img_addr[0].eq(ch_addr), self.img_addr[1].eq(ch_addr + 1),
                         self.img_addr[2].eq(ch_addr + cfg.tile_row), self.img_addr[3].eq(ch_addr + cfg.tile_row + 1),
                         self.w_addr.eq(w_row + ch)]
        with m.If(go & ~cch.at_last):
            m.d.sync += ch_addr.eq(ch_addr + cfg.ch_size)
        with m.If(cch.wraps & ~cpt.at_last):      # the quad's next part: its channels again
            m.d.sync += ch_addr.eq(quad_addr)
        with m.If(cpt.wraps & ~cqx.at_last):
            m.d.sync += [quad_addr.eq(quad_addr + 1), ch_addr.eq(quad_addr + 1), need.eq(need + 1)]
        with m.If(cqx.wraps & ~cqy.at_last):
            nxt = row_addr + cfg.tile_row
            m.d.sync += [row_addr.eq(nxt), quad_addr.eq(nxt), ch_addr.eq(nxt),
                         need.eq(row_need + cfg.tile_row), row_need.eq(row_need + cfg.tile_row)]
        with m.If(cqy.wraps):
            m.d.sync += [need.eq(need0), row_need.eq(need0), row_addr.eq(cfg.img_base), quad_addr.eq(cfg.img_base),
                         ch_addr.eq(cfg.img_base)]
        with m.If(cqy.wraps & ~cgt.at_last):
            m.d.sync += w_row.eq(w_row + cfg.w_stride)
        with m.If(go & last):
            m.d.sync += since.eq(1)
        with m.Elif(since != (1 << len(since)) - 1):
            m.d.sync += since.eq(since + 1)
        with m.If(start):
            m.d.sync += [need.eq(need0), row_need.eq(need0)]
            m.d.sync += [quad_addr.eq(cfg.img_base), row_addr.eq(cfg.img_base),
                         ch_addr.eq(cfg.img_base), w_row.eq(cfg.w_base), since.eq((1 << len(since)) - 1)]

        # ---- wait for the memories --------------------------------------------------------------------
        ctl = [v1, first1, last1, tag1, part1]
        in_flight = [v1]
        for d in range(self.mem_latency):
            nxt = [Signal.like(s, name=f"mem{d}_{i}", reset_less=i > 0) for i, s in enumerate(ctl)]
            m.d.sync += [a.eq(b) for a, b in zip(nxt, ctl)]
            ctl = nxt
            in_flight.append(ctl[0])

        # ---- the part's pixels, registered (shared by the rows) -----------------------------------------
        def pixel(by, bx):
            word = self.img_data[2 * (by // 2) + (bx // 2)]
            byte = 2 * (by % 2) + (bx % 2)
            return word[PIX * byte:PIX * (byte + 1)]

        part_ctl = ctl[4]
        # (slot j, ky, kx, copy): the pixel of position part * P + j, one copy per ROWS_PER_COPY rows
        copies = -(-R // self.ROWS_PER_COPY)
        taps = {}
        for j in range(P):
            for ky in range(3):
                for kx in range(3):
                    choices = [pixel((h * P + j) // 2 + ky, (h * P + j) % 2 + kx) for h in range(H)]
                    sel = choices[0]
                    for h in range(1, H):
                        sel = Mux(part_ctl == h, choices[h], sel)
                    for g in range(copies):
                        t = Signal(PIX, name=f"tap{j}_{ky}{kx}_{g}", reset_less=True, attrs=REPLICA)
                        m.d.sync += t.eq(sel)
                        taps[j, ky, kx, g] = t
        w_q = Signal(self.w_width, reset_less=True)
        m.d.sync += w_q.eq(self.w_data)
        nxt = [Signal.like(s, name=f"taps_{i}", reset_less=i > 0) for i, s in enumerate(ctl)]
        m.d.sync += [a.eq(b) for a, b in zip(nxt, ctl)]
        ctl = nxt
        in_flight.append(ctl[0])

        # ---- 9-term sums: one tree per row and position of the part -------------------------------------
        sums, regs = {}, 0
        for r in range(R):
            wbits = w_q[r * TAPS:(r + 1) * TAPS]
            for j in range(P):
                g = r // self.ROWS_PER_COPY
                pixels = [taps[j, ky, kx, g] for ky in range(3) for kx in range(3)]
                negs = [~wbits[3 * ky + kx] for ky in range(3) for kx in range(3)]
                sums[r, j], regs = _tree(m, platform, pixels, negs, self.levels_per_stage, f"t{r}_{j}")
        dirs = w_q[R * TAPS:R * TAPS + R]
        dir_q = dirs
        assert regs >= 1
        for d in range(regs - 1):
            nxt = [Signal.like(s, name=f"tree{d}_{i}", reset_less=i > 0) for i, s in enumerate(ctl)]
            dq = Signal(R, name=f"dir_q{d}", reset_less=True)
            m.d.sync += [a.eq(b) for a, b in zip(nxt, ctl)] + [dq.eq(dir_q)]
            ctl, dir_q = nxt, dq
            in_flight.append(ctl[0])
        # the last tree stage's control: one copy per row (each drives that row's accumulators only)
        ctl_rows = []
        for r in range(R):
            nxt = [Signal.like(s, name=f"tree_ctl{r}_{i}", reset_less=i > 0, attrs=REPLICA) for i, s in enumerate(ctl)]
            m.d.sync += [a.eq(b) for a, b in zip(nxt, ctl)]
            ctl_rows.append(nxt)
        dq = Signal(R, name=f"dir_q{regs - 1}", reset_less=True)
        m.d.sync += dq.eq(dir_q)
        dir_q = dq
        valid, first, lastc, tag, part = ctl_rows[0]
        in_flight.append(valid)

        # ---- accumulate over the channels; the quad's results ---------------------------------------------
        W = self.acc_width
        acc = {(r, j): Signal(W, name=f"acc{r}_{j}", reset_less=True) for r in range(R) for j in range(P)}
        done = Signal()
        done_tag = Signal(self.tag_width, reset_less=True)
        dirs_l = Signal(R, reset_less=True)
        fin_dirs = Signal(R, reset_less=True)
        half_dirs = Signal(R, reset_less=True)
        fin = {(r, p): Signal(W, name=f"fin{r}_{p}", reset_less=True) for r in range(R) for p in range(4)}
        # (per row: whether the row's output registers take the quad's first position, and whether
        # they take the pooled result, each a copy)
        done_unp = [Signal(name=f"done_unp{r}", attrs=REPLICA) for r in range(R)]
        pool_q = Signal(reset_less=True)
        quad_last = lastc & (part == H - 1)
        m.d.sync += [done.eq(valid & quad_last), pool_q.eq(cfg.pool)]
        for r in range(R):
            v_r, first_r, last_r, _, part_r = ctl_rows[r]
            m.d.sync += done_unp[r].eq(v_r & last_r & (part_r == H - 1) & ~pool_q)
            with m.If(v_r):
                for j in range(P):
                    a = acc[r, j]
                    # (the clear at a part's first channel in the carry cells)
                    nxt = fused_add(m, platform, Term(sums[r, j]), Term(a, first_r, "andnot"), name=f"acc{r}_{j}")
                    m.d.sync += a.eq(nxt)
                    for h in range(H):
                        with m.If(last_r & (part_r == h)):
                            m.d.sync += fin[r, h * P + j].eq(nxt)
        with m.If(valid):
            with m.If(first):
                m.d.sync += dirs_l.eq(dir_q)
            with m.If(quad_last):
                m.d.sync += [done_tag.eq(tag), fin_dirs.eq(Mux(first, dir_q, dirs_l))]
        in_flight.append(done)

        # pooled: the best of the four in two levels, each a registered compare, then a select by
        # that flip-flop; else the four in turn
        out_v = Signal()
        out_tag = Signal(self.tag_width, reset_less=True)
        out_acc = [Signal(W, name=f"out{r}", reset_less=True) for r in range(R)]
        pf = {(r, p): Signal(W, name=f"pf{r}_{p}", reset_less=True) for r in range(R) for p in range(4)}
        pc = {(r, h): Signal(name=f"pc{r}_{h}", reset_less=True) for r in range(R) for h in range(2)}
        half = {(r, h): Signal(W, name=f"half{r}_{h}", reset_less=True) for r in range(R) for h in range(2)}
        hf = {(r, h): Signal(W, name=f"hf{r}_{h}", reset_less=True) for r in range(R) for h in range(2)}
        hc = [Signal(name=f"hc{r}", reset_less=True) for r in range(R)]
        p1_v, half_v = Signal(), Signal()
        p3_rows = [Signal(name=f"pool_v{r}", attrs=REPLICA) for r in range(R)]
        p1_tag, half_tag, p3_tag = (Signal(self.tag_width, name=n, reset_less=True)
                                    for n in ("p1_tag", "half_tag", "p3_tag"))
        p1_dirs = Signal(R, reset_less=True)
        m.d.sync += [p1_v.eq(done & pool_q), p1_tag.eq(done_tag), p1_dirs.eq(fin_dirs),
                     half_v.eq(p1_v), half_tag.eq(p1_tag), half_dirs.eq(p1_dirs),
                     p3_tag.eq(half_tag)]
        m.d.sync += [h.eq(half_v) for h in p3_rows]
        for r in range(R):
            for h in range(2):
                a, b = fin[r, 2 * h], fin[r, 2 * h + 1]
                m.d.sync += [pf[r, 2 * h].eq(a), pf[r, 2 * h + 1].eq(b), pc[r, h].eq((a > b) ^ fin_dirs[r]),
                             half[r, h].eq(Mux(pc[r, h], pf[r, 2 * h], pf[r, 2 * h + 1])), hf[r, h].eq(half[r, h])]
            m.d.sync += hc[r].eq((half[r, 0] > half[r, 1]) ^ half_dirs[r])
        in_flight += [p1_v, half_v, p3_rows[0]]
        serial = Signal(range(4))        # positions still to send of an unpooled quad
        held = {(r, p): Signal(W, name=f"held{r}_{p}", reset_less=True) for r in range(R) for p in range(3)}
        # the data registers load every cycle, selected by flip-flops (`half_v`, `done_unp`): no
        # decoded select fans out to the rows; `out_v` alone says which cycles carry results
        for r in range(R):
            m.d.sync += out_acc[r].eq(Mux(p3_rows[r], Mux(hc[r], hf[r, 0], hf[r, 1]),
                                          Mux(done_unp[r], fin[r, 0], held[r, 0])))
            m.d.sync += [held[r, p].eq(Mux(done_unp[r], fin[r, p + 1], held[r, p + 1])) for p in range(2)]
            m.d.sync += held[r, 2].eq(fin[r, 3])
        m.d.sync += out_v.eq(0)
        with m.If(p3_rows[0]):
            m.d.sync += [out_v.eq(1), out_tag.eq(p3_tag)]
        with m.If(done_unp[0]):
            # the four in turn: the first now, the others from a shift register (no position select)
            m.d.sync += [serial.eq(3), out_tag.eq(done_tag), out_v.eq(1)]
        with m.Elif(serial != 0):
            m.d.sync += [serial.eq(serial - 1), out_v.eq(1)]
        in_flight += [serial != 0, out_v]

        for r in range(R):
            m.d.comb += [self.o[r].valid.eq(out_v), self.o[r].acc.eq(out_acc[r]), self.o[r].n.eq(0),
                         self.o[r].tag.eq(out_tag)]
        m.d.comb += self.busy.eq(start | running | Cat(*in_flight).any())
        return m
