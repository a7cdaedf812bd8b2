"""The first-layer unit in Amaranth's simulator against :func:`binaccel.sw.dpref.first_layer`, and
the unit's arithmetic with the lane against the integer reference on a real first layer."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from binaccel.hw.dp.first import FirstLayerUnit
from binaccel.sw import dpprog, dpref, intref
from binaccel.sw.randmodel import random_layer
from tests.hw.gateware import read_port, run_sim


class _Bench(wiring.Component):
    def __init__(self, dut, img, weights):
        self.dut, self.img, self.weights = dut, img, weights
        super().__init__({"start": In(1), "hold": In(1), "busy": Out(1), "cfg": In(dut.cfg.shape()),
                          "o": Out(dut.o.shape()), "avail": In(dut.avail.shape())})

    def elaborate(self, platform):
        m = Module()
        d = self.dut
        m.submodules.dut = d
        m.d.comb += [d.cfg.eq(self.cfg), d.start.eq(self.start), d.hold.eq(self.hold), self.busy.eq(d.busy),
                     self.o.eq(d.o), d.avail.eq(self.avail)]

        def port(mem, addr, data):
            read_port(m, mem, addr, data, latency=d.mem_latency)

        m.submodules.img = img = Memory(shape=32, depth=len(self.img), init=self.img)
        for i in range(4):
            port(img, d.img_addr[i], d.img_data[i])
        m.submodules.wm = wm = Memory(shape=d.w_width, depth=len(self.weights), init=self.weights)
        port(wm, d.w_addr, d.w_data)
        return m


def tile_image(x, pad):
    """``(C, H, W)`` uint8 -> tile words of the zero-padded image, channel after channel; returns
    (words, tile_row, ch_size)."""
    words = dpprog.tile_words(np.asarray(x), pad)
    _, th, tw = words.shape
    return [int(v) for v in words.reshape(-1)], tw, th * tw


def _run(dut, cfg, img, weights, *, rng, hold_p, slow_image=False):
    bench = _Bench(dut, img, weights)
    got = [[] for _ in range(dut.rows)]
    first_out = []

    async def tb(ctx):
        ctx.set(bench.cfg, cfg)
        ctx.set(bench.start, 1)
        await ctx.tick()
        ctx.set(bench.start, 0)
        cyc = 0
        while ctx.get(bench.busy) or cyc < 3:
            ctx.set(bench.hold, int(rng.random() < hold_p))
            # the image "arrives" one word every other cycle: the unit waits for the rows it reads
            # (all ones once the whole image is in)
            whole = not slow_image or cyc // 2 >= len(img)
            ctx.set(bench.avail, (1 << len(dut.avail)) - 1 if whole else cyc // 2)
            for r in range(dut.rows):
                o = ctx.get(bench.o[r])
                if o.valid:
                    got[r].append((int(o.acc), int(o.tag) & 1))
                    first_out.append(cyc)
            await ctx.tick()
            cyc += 1
            assert cyc < 50000
    run_sim(bench, tb)
    if slow_image:  # the first quad waited for the words it reads
        assert min(first_out) > 2 * (cfg["img_base"] + cfg["need_off"])
    return got


@pytest.mark.parametrize("pool,channels,mem_latency,positions,seed", [
    (1, 1, 1, 4, 0), (0, 1, 2, 4, 1), (1, 3, 2, 4, 2), (0, 2, 1, 4, 3),
    (1, 1, 2, 2, 4), (0, 1, 2, 2, 5), (1, 3, 1, 2, 6), (0, 2, 2, 2, 7), (1, 2, 2, 1, 8), (0, 1, 1, 1, 9), (1, 1, 3, 2, 10), (0, 2, 3, 2, 11),
])
def test_first_layer_matches_reference(pool, channels, mem_latency, positions, seed):
    rng = np.random.default_rng(seed)
    rows, groups, h, w = 3, 2, 6, 8
    img, tile_row, ch_size = tile_image(rng.integers(0, 256, (channels, h, w)), 1)
    weights = [int(v) for v in rng.integers(0, 1 << (rows * 10), 16, dtype=np.uint64)]
    cfg = {"pool": pool, "spacing": 1 if pool else 4, "last_qx": w // 2 - 1, "last_qy": h // 2 - 1, "last_ch": channels - 1,
           "last_gt": groups - 1, "img_base": 0, "tile_row": tile_row, "ch_size": ch_size, "w_base": 2,
           "w_stride": channels, "need_off": (channels - 1) * ch_size + tile_row + 1}
    dut = FirstLayerUnit(rows=rows, acc_width=16, tag_width=2, count_w=5, aw=8, w_aw=5, mem_latency=mem_latency,
                         positions=positions)
    want = dpref.first_layer(cfg, img=img, weights=weights, rows=rows)
    got = _run(dut, cfg, img, weights, rng=rng, hold_p=0.2, slow_image=bool(seed % 2))
    assert got == want
    assert len(got[0]) == groups * (h // 2) * (w // 2) * (1 if pool else 4)


@pytest.mark.parametrize("flip_mix,seed", [(False, 0), (True, 1)])
def test_first_layer_arithmetic_equals_intref(flip_mix, seed):
    """The unit's unsigned sums, its pooling direction and the lane's offset and threshold give
    exactly ``intref.run_layer`` for a first layer (8-bit pixels, 3x3, pad 1, 2x2 max-pool)."""
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, name="conv1", in_ch=1, in_h=8, in_w=10, out_ch=4, kernel=3, stride=1, padding=1,
                         in_bits=8, pool=2)
    if not flip_mix:
        layer.flip[:] = 0
    x = rng.integers(0, 256, (1, 1, 8, 10))
    want = intref.run_layer(layer, x)[0]                        # (O, 4, 5)
    img, tile_row, ch_size = tile_image(x[0], 1)
    wb = np.asarray(layer.weights)[:, 0] > 0                    # (O, 3, 3)
    entry = sum(int(wb[r].reshape(-1) @ (1 << np.arange(9))) << (9 * r) for r in range(4))
    entry |= sum(int(layer.flip[r]) << (36 + r) for r in range(4))
    cfg = {"pool": 1, "spacing": 1, "last_qx": 4, "last_qy": 3, "last_ch": 0, "last_gt": 0, "img_base": 0, "tile_row": tile_row,
           "ch_size": ch_size, "w_base": 0, "w_stride": 1, "need_off": tile_row + 1}
    res = dpref.first_layer(cfg, img=img, weights=[entry], rows=4)
    for r in range(4):
        neg = int((~wb[r]).sum())
        t, flip = int(layer.thresh[r]), int(layer.flip[r])
        bank = {"noff": -255 * neg, "mul": -1 if flip else 1, "add": t if flip else -t}
        y = dpref.lane([(a, 0, t) for a, t in res[r]], cfg={"kind": "sign", "alpha": 0, "sum_cols": 0, "pool": 0,
                                                          "shift": 0, "out_bits": 1}, banks=[bank, bank], cols=4)
        assert y == [int(v) for v in want[r].reshape(-1)]
    if flip_mix:
        assert layer.flip.any() and not layer.flip.all()
