"""The window generator in Amaranth's simulator, with its memories, against
:func:`binaccel.sw.dpref.window`: every step equal, segment ends ``cols`` apart, under random hold."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from binaccel.hw.dp.window import WindowGen
from binaccel.sw import dpref
from binaccel.sw.hwif.dp import WinMode
from tests.hw.gateware import read_port, run_sim

AW, CW, KB = 10, 8, 2


class _Bench(wiring.Component):
    """The generator with its feature-map (one read port per column and slot), table and weight
    memories (``mem_latency`` cycles: a registered read, with 2 a further output register, with 3
    also an address register)."""

    def __init__(self, gen, fm, table, weights):
        self.gen, self.fm, self.table, self.weights = gen, fm, table, weights
        super().__init__({"start": In(1), "hold": In(1), "busy": Out(1), "o": Out(gen.o.shape()),
                          "cfg": In(gen.cfg.shape())})

    def elaborate(self, platform):
        m = Module()
        g = self.gen
        m.submodules.gen = g
        m.d.comb += [g.cfg.eq(self.cfg), g.start.eq(self.start), g.hold.eq(self.hold), self.busy.eq(g.busy),
                     self.o.eq(g.o)]

        def port(mem, addr, data):
            read_port(m, mem, addr, data, latency=g.mem_latency)

        m.submodules.fm = fm = Memory(shape=16, depth=1 << AW, init=self.fm)
        for i in range(2 * g.cols):
            port(fm, g.rd_addr[i], g.rd_data[i])
        m.submodules.tbl = tbl = Memory(shape=g.entry_layout, depth=len(self.table), init=self.table)
        port(tbl, g.tbl_addr, g.tbl_data)
        m.submodules.wm = wm = Memory(shape=g.w_data.shape(), depth=len(self.weights), init=self.weights)
        port(wm, g.w_addr, g.w_data)
        return m


def _conv_case(rng, *, cols, mode, kernel, stride, pad, hin, win, chunks, planes, binary, groups, rows):
    """A convolution's window configuration and offset table, as the compiler lays them out."""
    k = kernel
    conv_h = (hin + 2 * pad - k) // stride + 1
    conv_w = (win + 2 * pad - k) // stride + 1
    slots = [(ky, kx, ch) for ky in range(k) for kx in range(k) for ch in range(chunks)]
    steps = -(-len(slots) // 2)
    table = []
    for jj in range(steps):
        ent = []
        for s in range(2):
            i = 2 * jj + s
            if i < len(slots):
                ky, kx, ch = slots[i]
                ent.append({"off": (ky * win + kx) * chunks + ch, "ky": ky, "kx": kx,
                            "nbits": int(rng.integers(1, 17)), "used": 1})
            else:
                ent.append({"off": 0, "ky": 0, "kx": 0, "nbits": 0, "used": 0})
        table.append(ent)
    plane = hin * win * chunks
    top_base = (planes - 1) * plane + 3
    if mode == WinMode.QUAD:
        tx_n, ty_n = conv_w // 2, conv_h // 2
        dx_pix, dy_pix = 2 * stride, 2 * stride
        col = [(c // 2, c % 2) for c in range(cols)]
    else:
        tx_n, ty_n = -(-conv_w // cols), conv_h
        dx_pix, dy_pix = cols * stride, stride
        col = [(0, c) for c in range(cols)]
    cfg = {
        "mode": int(mode), "binary": int(binary), "planes_last": planes - 1, "plane_size": plane,
        "addr0": (top_base + (-pad * win - pad) * chunks) % (1 << AW), "iy0": -pad, "ix0": -pad,
        "hin": hin, "win": win, "dx_addr": dx_pix * chunks, "dy_addr": dy_pix * win * chunks,
        "dx_pix": dx_pix, "dy_pix": dy_pix, "last_tx": tx_n - 1, "last_ty": ty_n - 1, "last_gt": groups - 1,
        "last_cols": conv_w - cols * (tx_n - 1) if mode == WinMode.LINEAR else cols,
        "last_step": steps - 1, "spacing": cols, "tbl_base": 0, "w_base": 1, "w_stride": steps,
        "col_off": [((dy * stride) * win + dx * stride) * chunks for dy, dx in col],
        "col_dy": [dy * stride for dy, _ in col], "col_dx": [dx * stride for _, dx in col],
        "col_lim": [2 * steps] * cols,
    }
    return cfg, table


def _fc_case(rng, *, cols, slots_total, binary, groups):
    span = -(-slots_total // (2 * cols))          # steps per column
    table = [[{"off": 2 * jj + s, "ky": 0, "kx": 0, "nbits": 16, "used": 1} for s in range(2)] for jj in range(span)]
    cfg = {
        "mode": int(WinMode.FC), "binary": int(binary), "planes_last": 0, "plane_size": 0, "addr0": 5,
        "iy0": 0, "ix0": 0, "hin": 1, "win": 1, "dx_addr": 0, "dy_addr": 0, "dx_pix": 0, "dy_pix": 0,
        "last_tx": 0, "last_ty": 0, "last_gt": groups - 1, "last_cols": cols, "last_step": span - 1,
        "spacing": cols + 2, "tbl_base": 0, "w_base": 0, "w_stride": span,
        "col_off": [2 * span * c for c in range(cols)], "col_dy": [0] * cols, "col_dx": [0] * cols,
        "col_lim": [max(0, slots_total - 2 * span * c) for c in range(cols)],
    }
    return cfg, table


CASES = [
    dict(mode=WinMode.LINEAR, kernel=3, stride=1, pad=1, hin=6, win=7, chunks=1, planes=1, binary=True),
    dict(mode=WinMode.QUAD, kernel=3, stride=1, pad=1, hin=6, win=5, chunks=2, planes=1, binary=True),
    dict(mode=WinMode.LINEAR, kernel=3, stride=2, pad=1, hin=7, win=7, chunks=2, planes=1, binary=True),
    dict(mode=WinMode.LINEAR, kernel=1, stride=1, pad=0, hin=3, win=5, chunks=3, planes=1, binary=True),
    dict(mode=WinMode.QUAD, kernel=3, stride=1, pad=1, hin=4, win=4, chunks=1, planes=3, binary=False),
    dict(mode=WinMode.LINEAR, kernel=3, stride=1, pad=0, hin=5, win=6, chunks=1, planes=2, binary=False),
    dict(mode=WinMode.LINEAR, kernel=1, stride=2, pad=0, hin=4, win=4, chunks=1, planes=1, binary=True),
]


def _run(gen, cfg, fm, table, weights, *, rng, hold_p):
    bench = _Bench(gen, fm, table, weights)
    got, lasts = [], []

    async def tb(ctx):
        ctx.set(bench.cfg, cfg)
        ctx.set(bench.start, 1)
        await ctx.tick()
        ctx.set(bench.start, 0)
        cyc = 0
        while True:
            ctx.set(bench.hold, int(rng.random() < hold_p))
            o = ctx.get(bench.o)
            if o.ctl.valid:
                st = {"valid": 1, "first": int(o.ctl.first), "dbl": int(o.ctl.dbl), "last": int(o.ctl.last),
                      "tag": int(o.ctl.tag) & 1, "w": [int(o.w[r]) for r in range(gen.rows)],
                      "a": [int(o.a[c]) for c in range(gen.cols)], "m": [int(o.m[c]) for c in range(gen.cols)],
                      "n": [int(o.n[c]) for c in range(gen.cols)]}
                got.append(st)
                if st["last"]:
                    lasts.append(cyc)
            if not ctx.get(bench.busy) and cyc > 2:
                break
            await ctx.tick()
            cyc += 1
            assert cyc < 20000

    run_sim(bench, tb)
    return got, lasts


@pytest.mark.parametrize("mem_latency", [1, 2, 3])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_window_conv_matches_reference(case, mem_latency):
    rng = np.random.default_rng(case * 7 + mem_latency)
    rows, cols, groups = 2, 4, 2
    cfg, table = _conv_case(rng, cols=cols, rows=rows, groups=groups, **CASES[case])
    fm = [int(v) for v in rng.integers(0, 1 << 16, 1 << AW)]
    weights = [[int(v) for v in rng.integers(0, 1 << 32, rows, dtype=np.uint64)] for _ in range(64)]
    gen = WindowGen(rows=rows, cols=cols, n_width=9, tag_width=2, aw=AW, cw=CW, count_w=6, steps_w=6, tbl_aw=6,
                    w_aw=6, kb=KB, mem_latency=mem_latency)
    want = dpref.window(cfg, fm=fm, table=table, weights=weights, cols=cols, aw=AW)
    got, lasts = _run(gen, cfg, fm, table, weights, rng=rng, hold_p=0.3)
    assert got == want
    assert all(b - a >= cols for a, b in zip(lasts, lasts[1:]))
    # the case exercises padding: some slots are masked
    if CASES[case]["pad"] and CASES[case]["binary"]:
        assert any(m != 3 for st in got for m in st["m"])


@pytest.mark.parametrize("slots_total,binary", [(64, True), (37, True), (10, False)])
def test_window_fc_matches_reference(slots_total, binary):
    rng = np.random.default_rng(slots_total)
    rows, cols = 3, 4
    cfg, table = _fc_case(rng, cols=cols, slots_total=slots_total, binary=binary, groups=2)
    fm = [int(v) for v in rng.integers(0, 1 << 16, 1 << AW)]
    weights = [[int(v) for v in rng.integers(0, 1 << 32, rows, dtype=np.uint64)] for _ in range(64)]
    gen = WindowGen(rows=rows, cols=cols, n_width=9, tag_width=1, aw=AW, cw=CW, count_w=4, steps_w=6, tbl_aw=6,
                    w_aw=6, kb=KB)
    want = dpref.window(cfg, fm=fm, table=table, weights=weights, cols=cols, aw=AW)
    got, lasts = _run(gen, cfg, fm, table, weights, rng=rng, hold_p=0.0)
    assert got == want
    assert all(b - a >= cols + 2 for a, b in zip(lasts, lasts[1:]))
    assert sum(bin(m).count("1") for st in got[:len(table)] for m in st["m"]) == min(slots_total, 2 * cols * len(table))


def test_window_parameters_checked():
    with pytest.raises(ValueError, match="word"):
        WindowGen(rows=1, cols=1, n_width=4, tag_width=1, aw=8, cw=8, count_w=4, steps_w=4, tbl_aw=4, w_aw=4,
                  word=64)
    with pytest.raises(ValueError, match="mem_latency"):
        WindowGen(rows=1, cols=1, n_width=4, tag_width=1, aw=8, cw=8, count_w=4, steps_w=4, tbl_aw=4, w_aw=4,
                  mem_latency=4)
