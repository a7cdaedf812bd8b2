"""Fetch unit and write-back unit in Amaranth's simulator.

* Fetch: a layer's input map in a feature-map bank -> operand steps; they must equal the OPER beats
  :func:`binaccel.sw.pack.pack_layer` builds on the host (a, m and w fields), for directed cases
  (padding, strides 1/2, kernels 1/3, partial words, partial tiles, mcn per-tap segments, multi-bit
  maps, an FC layer as a whole-map kernel, more columns than the output width) and random ones.
* Write-back: the engine's output beats of a layer (from the reference values) -> the output map
  in the bank; it must equal ``intref.run_layer`` (with ``maxpool2``) read back through the map
  layout, and logits must come out in stream order.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from binaccel.hw.fetch import FetchUnit
from binaccel.hw.fmap import WriteBack
from binaccel.hw.params import layout
from binaccel.sw.hwif import AccelParams
from tests.hw.gateware import run_sim
from binaccel.sw import intref, pack, program
from binaccel.sw.intmodel import Layer
from binaccel.sw.randmodel import random_input, random_layer

SMALL = dict(rows=2, cols=3, word=8, max_fan_in=600, max_in_bits=8, max_planes=3, max_taps=9, m_bits=6,
             mul_bits=12, add_bits=20, fm_depth=512, w_depth=256, t_depth=64, max_layers=4, max_dim=16)
WIDE = dict(SMALL, word=16, cols=4, rows=3)


class FetchHarness(wiring.Component):
    """FetchUnit + one feature-map bank + weight buffer, contents given at construction."""

    def __init__(self, params: AccelParams, fm, wts):
        self.p, self.fm, self.wts = params, fm, wts
        super().__init__({"cfg": In(layout(params.desc_layout)), "start": In(1), "busy": Out(1),
                          "o_stream": Out(stream.Signature(layout(params.engine.oper_layout)))})

    def elaborate(self, platform):
        m = Module()
        p, e = self.p, self.p.engine
        m.submodules.fetch = f = FetchUnit(params=p)
        m.submodules.bank = bank = Memory(shape=e.word, depth=p.fm_depth, init=self.fm)
        m.submodules.wmem = wmem = Memory(shape=e.rows * e.word, depth=p.w_depth, init=self.wts)
        for c in range(e.cols):
            rp = bank.read_port()
            m.d.comb += [rp.addr.eq(f.rd_addr[c]), rp.en.eq(f.rd_en), f.rd_data[c].eq(rp.data)]
            if p.pair_reads:
                rp2 = bank.read_port()
                m.d.comb += [rp2.addr.eq(f.rd2_addr[c]), rp2.en.eq(f.rd_en), f.rd2_data[c].eq(rp2.data)]
        wp = wmem.read_port()
        m.d.comb += [wp.addr.eq(f.w_addr), wp.en.eq(f.w_en), f.w_data.eq(wp.data)]
        m.d.comb += [f.cfg.eq(self.cfg), f.start.eq(self.start), self.busy.eq(f.busy)]
        wiring.connect(m, f.o_stream, wiring.flipped(self.o_stream))
        return m


def _conv_equivalent(layer: Layer) -> Layer:
    """An FC layer as the convolution the fetch unit runs (kernel = the whole map, (y, x, c) fan-in)."""
    if layer.kind != "fc":
        return layer
    assert layer.in_h == layer.in_w
    w = np.asarray(layer.weights).reshape(layer.out_ch, layer.in_ch, layer.in_h, layer.in_w)
    return Layer(name=layer.name, kind="conv", mode="plain", in_ch=layer.in_ch, in_h=layer.in_h, in_w=layer.in_w,
                 out_ch=layer.out_ch, kernel=layer.in_h, stride=1, padding=0, in_bits=layer.in_bits, w_bits=1,
                 weights=w, out_kind=layer.out_kind, mul=layer.mul, add=layer.add, shift=layer.shift,
                 thresh=layer.thresh, flip=layer.flip, out_bits=layer.out_bits)


def run_fetch(params, layer, x, *, seed=0, backpressure=0.0, pair=True):
    """Operand steps (ints of oper_layout) of the fetch unit for one image ``x`` (C, H, W)."""
    p = AccelParams(**params)
    info, desc, wents, _ = program.compile_layer(p, layer, 0, (layer.in_ch, layer.in_h, layer.in_w),
                                                 layer.in_bits > 1, pair=pair)
    fm = program.encode_map(p, x, layer.in_bits > 1)
    dut = FetchHarness(p, fm, wents)
    n = info.plan.n_gt * info.desc["gt_opers"]
    rng = np.random.default_rng(seed)
    got = {}

    async def tb(ctx):
        ctx.set(dut.cfg.as_value(), desc)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        out, cycles, pending = [], 0, None
        while len(out) < n:
            rdy = int(not (backpressure and rng.random() < backpressure))
            ctx.set(dut.o_stream.ready, rdy)
            v = ctx.get(dut.o_stream.valid)
            word = ctx.get(dut.o_stream.payload.as_value()) if v else None
            if pending is not None:
                assert word == pending, "payload changed while valid and not ready"
            await ctx.tick()
            cycles += 1
            assert cycles < 50 * n + 1000, f"timeout: {len(out)}/{n} operand steps"
            if v and rdy:
                out.append(word)
                pending = None
            else:
                pending = word
        ctx.set(dut.o_stream.ready, 1)
        for _ in range(5):
            assert not ctx.get(dut.o_stream.valid), "more operand steps than expected"
            await ctx.tick()
        got["busy"] = ctx.get(dut.busy)
        got["cycles"] = cycles
        got["out"] = out

    run_sim(dut, tb)
    assert got["busy"] == 0
    return got["out"], got["cycles"]


def expected_opers(params, layer, x):
    p = AccelParams(**params)
    e = p.engine
    pk = pack.pack_layer(_conv_equivalent(layer), np.asarray(x)[None], e)
    off = pack.field_offset(e.in_layout, "data")
    size = e.oper_layout.size
    return [(b >> off) & ((1 << size) - 1) for b in pk.beats if b & 3 == 3]


def _split(params, beats):
    e = AccelParams(**params).engine
    lay = e.oper_layout
    res = {}
    for name in ("w", "a", "m"):
        f = lay[name]
        res[name] = [(b >> f.offset) & ((1 << f.width) - 1) for b in beats]
    return res


FETCH_CASES = {
    "plain-c5-k3-s1-p1": dict(in_ch=5, in_h=5, in_w=4, out_ch=3, kernel=3, stride=1, padding=1),
    "plain-c17-k3-s2-p1": dict(in_ch=17, in_h=7, in_w=7, out_ch=5, kernel=3, stride=2, padding=1, pool=2),
    "plain-c9-k1-s1-p0": dict(in_ch=9, in_h=3, in_w=5, out_ch=4, kernel=1, stride=1, padding=0),
    "plain-c3-k3-s2-p0-w2": dict(in_ch=3, in_h=5, in_w=5, out_ch=2, kernel=3, stride=2, padding=0),
    "plain-in8-c1": dict(in_ch=1, in_h=6, in_w=6, out_ch=4, kernel=3, stride=1, padding=1, in_bits=8),
    "plain-in4-c3-s2": dict(in_ch=3, in_h=5, in_w=6, out_ch=3, kernel=3, stride=2, padding=1, in_bits=4),
    "mcn-c5-k3-s2-p1": dict(in_ch=5, in_h=5, in_w=5, out_ch=6, kernel=3, stride=2, padding=1, mode="mcn",
                            planes=3, m_bits=6),
    "mcn-c9-in8": dict(in_ch=9, in_h=4, in_w=5, out_ch=4, kernel=3, stride=1, padding=1, mode="mcn", planes=2,
                       m_bits=6, in_bits=8),
    "mcn1-c4-k3": dict(in_ch=4, in_h=4, in_w=4, out_ch=6, kernel=3, stride=1, padding=1, mode="mcn1", planes=3,
                       m_bits=6),
    "fc-c6-4x4": dict(kind="fc", in_ch=6, in_h=4, in_w=4, out_ch=5, out_kind="logits"),
    "fc-in8-c3-2x2": dict(kind="fc", in_ch=3, in_h=2, in_w=2, out_ch=4, out_kind="logits", in_bits=8),
    "plain-1x1-out": dict(in_ch=4, in_h=2, in_w=1, out_ch=2, kernel=1, stride=1, padding=0),
}


@pytest.mark.parametrize("params", [SMALL, WIDE], ids=["w8c3", "w16c4"])
@pytest.mark.parametrize("name", list(FETCH_CASES))
def test_fetch_matches_host_fold(name, params):
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    layer = random_layer(rng, name=name, **FETCH_CASES[name])
    x = random_input(rng, layer, 1)[0]
    got, cycles = run_fetch(params, layer, x, seed=1, backpressure=0.3 if "c5" in name else 0.0,
                            pair=params is WIDE)
    exp = expected_opers(params, layer, x)
    assert len(got) == len(exp)
    g, x_ = _split(params, got), _split(params, exp)
    for f in ("a", "m", "w"):
        bad = [i for i, (u, v) in enumerate(zip(g[f], x_[f])) if u != v]
        assert not bad, f"field {f}: {len(bad)} of {len(exp)} steps differ, first at {bad[0]}"


@pytest.mark.parametrize("seed", range(4))
def test_fetch_random(seed):
    rng = np.random.default_rng(100 + seed)
    mode = ["plain", "mcn", "mcn1"][seed % 3]
    k = int(rng.choice([1, 3]))
    shape = dict(in_ch=int(rng.integers(1, 20)), in_h=int(rng.integers(k, 7)), in_w=int(rng.integers(k, 7)),
                 kernel=k, stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, k)),
                 in_bits=int(rng.choice([1, 1, 2, 8])), mode=mode)
    planes = 1 if mode == "plain" else int(rng.integers(1, 4))
    layer = random_layer(rng, out_ch=planes * int(rng.integers(1, 4)), planes=planes, m_bits=5, **shape)
    x = random_input(rng, layer, 1)[0]
    params = [SMALL, WIDE][seed % 2]
    got, _ = run_fetch(params, layer, x, seed=seed, backpressure=0.2)
    assert got == expected_opers(params, layer, x)


@pytest.mark.parametrize("in_bits,in_ch,n_word", [(1, 8, 1), (8, 1, 8)])
def test_fetch_tap_pairs(in_bits, in_ch, n_word):
    """Few channels per pixel: two taps per read. 8 binary channels in 16-bit words: 72 bits = 5 words
    per position tile in 5 cycles; one 8-bit channel: 9 bits = 1 word = 8 steps in 8 cycles."""
    layer = random_layer(np.random.default_rng(7), in_ch=in_ch, in_h=5, in_w=8, out_ch=3, kernel=3, stride=1,
                         padding=1, in_bits=in_bits)
    x = random_input(np.random.default_rng(8), layer, 1)[0]
    exp = expected_opers(WIDE, layer, x)
    got_pair, cycles_pair = run_fetch(WIDE, layer, x, pair=True)
    got_one, cycles_one = run_fetch(WIDE, layer, x, pair=False)
    assert got_pair == exp and got_one == exp
    tiles = 40 // 4                      # 5x8 positions, 4 columns
    per_tile = 5 if in_bits == 1 else 8
    assert cycles_pair <= tiles * per_tile + 12, (cycles_pair, cycles_one)
    assert cycles_one >= tiles * 9
    # a build without the second read port: the compiler does not pair, one tap per read
    one_port = FetchUnit(params=AccelParams(**WIDE, pair_reads=0))
    one_port._MustUse__silence = True    # built for its signature only, never elaborated
    assert "rd2_addr" not in one_port.signature.members
    got_nb, cycles_nb = run_fetch(dict(WIDE, pair_reads=0), layer, x, pair=True)
    assert got_nb == exp and cycles_nb == cycles_one


def test_fetch_throughput_full_words():
    """A binary layer whose channels fill whole words: one operand step per cycle (plus start-up)."""
    layer = random_layer(np.random.default_rng(5), in_ch=16, in_h=4, in_w=6, out_ch=3, kernel=3, stride=1,
                         padding=1)
    x = random_input(np.random.default_rng(6), layer, 1)[0]
    got, cycles = run_fetch(WIDE, layer, x)
    assert got == expected_opers(WIDE, layer, x)
    assert cycles <= len(got) + 12, (cycles, len(got))


# ---- write-back ---------------------------------------------------------------------------------

class WriteBackHarness(wiring.Component):
    """WriteBack + one feature-map bank (transparent read port for the pooling read-modify-write)."""

    def __init__(self, params: AccelParams, fm):
        self.p, self.fm = params, fm
        e = params.engine
        super().__init__({"cfg": In(layout(params.desc_layout)), "start": In(1), "busy": Out(1),
                          "i_stream": In(stream.Signature(layout(e.out_layout))),
                          "l_stream": Out(stream.Signature(data.signed(e.y_width)))})

    def elaborate(self, platform):
        m = Module()
        p, e = self.p, self.p.engine
        m.submodules.wb = wb = WriteBack(params=p)
        m.submodules.bank = self.bank = bank = Memory(shape=e.word, depth=p.fm_depth, init=self.fm)
        wp = bank.write_port()
        rp = bank.read_port(transparent_for=(wp,))
        m.d.comb += [rp.addr.eq(wb.rd_addr), rp.en.eq(wb.rd_en), wb.rd_data.eq(rp.data),
                     wp.addr.eq(wb.wr_addr), wp.data.eq(wb.wr_data), wp.en.eq(wb.wr_en)]
        m.d.comb += [wb.cfg.eq(self.cfg), wb.start.eq(self.start), self.busy.eq(wb.busy)]
        wiring.connect(m, wiring.flipped(self.i_stream), wb.i_stream)
        wiring.connect(m, wb.l_stream, wiring.flipped(self.l_stream))
        return m


def engine_beats(params, layer, y):
    """Output beats the engine produces for pre-pool values ``y`` (out_ch, conv_h, conv_w)."""
    p = AccelParams(**params)
    e = p.engine
    pl = pack.plan_layer(layer, 1, e)
    R, C, Km, K = e.rows, e.cols, e.max_planes, pl.planes
    yw = e.y_width
    flat = np.asarray(y, dtype=np.int64).reshape(layer.out_ch, -1)
    beats = []
    for gt in range(pl.n_gt):
        for pt in range(pl.n_pt):
            for c in range(C):
                pos = pt * C + c
                v = 0
                for r in range(R):
                    for j in range(K):
                        ch = (gt * R + r) * K + j
                        val = int(flat[ch, pos]) if ch < layer.out_ch and pos < flat.shape[1] else 0
                        v |= (val & ((1 << yw) - 1)) << ((r * Km + j) * yw)
                beats.append(v)
    return beats


def run_writeback(params, layer, y, *, seed=0, idle=0.0, backpressure=0.0, out_base=0):
    p = AccelParams(**params)
    in_shape = (layer.in_ch, layer.in_h, layer.in_w)
    info, desc, _, _ = program.compile_layer(p, layer, 0, in_shape, layer.in_bits > 1)
    rng = np.random.default_rng(seed)
    fm = [int(v) for v in rng.integers(0, 1 << p.word, size=p.fm_depth)]
    if out_base:
        info.desc["out_base"] = out_base
        desc = program._pack_struct(p.desc_layout, info.desc, layer.name)
    dut = WriteBackHarness(p, fm)
    beats = engine_beats(params, layer, y)
    res = {}

    async def tb(ctx):
        ctx.set(dut.cfg.as_value(), desc)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        k, logits, offering, cycles, pending = 0, [], False, 0, None
        while k < len(beats) or ctx.get(dut.busy):
            if not offering and k < len(beats) and not (idle and rng.random() < idle):
                offering = True
                ctx.set(dut.i_stream.payload.as_value(), beats[k])
            ctx.set(dut.i_stream.valid, int(offering))
            rdy = int(not (backpressure and rng.random() < backpressure))
            ctx.set(dut.l_stream.ready, rdy)
            fire = offering and ctx.get(dut.i_stream.ready)
            lv = ctx.get(dut.l_stream.valid)
            lval = ctx.get(dut.l_stream.payload) if lv else None
            if pending is not None:
                assert lval == pending, "logit changed while valid and not ready"
            await ctx.tick()
            cycles += 1
            assert cycles < 40 * len(beats) + 1000, "timeout"
            if fire:
                k += 1
                offering = False
            if lv and rdy:
                logits.append(lval)
                pending = None
            else:
                pending = lval
        ctx.set(dut.i_stream.valid, 0)
        res["mem"] = [ctx.get(dut.bank.data[i]) for i in range(p.fm_depth)]
        res["logits"], res["cycles"] = logits, cycles

    run_sim(dut, tb)
    return info, fm, res


WB_CASES = {
    "sign-c5-pool": dict(in_ch=3, in_h=6, in_w=6, out_ch=5, pool=2),
    "sign-c5-pool-odd": dict(in_ch=3, in_h=7, in_w=5, out_ch=5, pool=2),
    "sign-c11-nopool": dict(in_ch=3, in_h=4, in_w=5, out_ch=11),
    "requant-c5-pool": dict(in_ch=3, in_h=6, in_w=6, out_ch=5, pool=2, out_kind="requant", out_bits=4),
    "requant-mcn-c9-pool": dict(in_ch=3, in_h=5, in_w=6, out_ch=9, pool=2, out_kind="requant", out_bits=8,
                                mode="mcn", planes=3, m_bits=5),
    "sign-mcn-c4-p2": dict(in_ch=3, in_h=4, in_w=4, out_ch=4, pool=2, mode="mcn", planes=2, m_bits=5),
    "sign-2x2-pool": dict(in_ch=2, in_h=2, in_w=2, out_ch=7, pool=2),
    "requant-mcn1-c6": dict(in_ch=3, in_h=3, in_w=3, out_ch=6, out_kind="requant", out_bits=3, mode="mcn1",
                            planes=3, m_bits=5),
}


@pytest.mark.parametrize("params", [SMALL, WIDE], ids=["w8c3", "w16c4"])
@pytest.mark.parametrize("name", list(WB_CASES))
def test_writeback_map(name, params):
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    layer = random_layer(rng, name=name, kernel=3, stride=1, padding=1, **WB_CASES[name])
    x = random_input(rng, layer, 1)
    y = intref.postprocess(layer, intref.accumulate(layer, x))[0]          # before pooling
    ref = intref.run_layer(layer, x)[0]
    p = AccelParams(**params)
    base = 7 if "odd" in name else 0
    info, fm, res = run_writeback(params, layer, y, seed=3, idle=0.3 if "pool" in name else 0.0,
                                  backpressure=0.2, out_base=base)
    words = res["mem"][base:base + info.out_words]
    got = program.decode_map(p, words, info.out_shape, info.out_multibit)
    assert np.array_equal(got, ref)
    # words outside the output map are untouched
    outside = [i for i in range(p.fm_depth) if not base <= i < base + info.out_words]
    assert all(res["mem"][i] == fm[i] for i in outside)
    assert res["logits"] == []


@pytest.mark.parametrize("params", [SMALL, WIDE], ids=["w8c3", "w16c4"])
def test_writeback_logits(params):
    rng = np.random.default_rng(9)
    layer = random_layer(rng, kind="fc", in_ch=4, in_h=2, in_w=2, out_ch=11, out_kind="logits")
    x = random_input(rng, layer, 1)
    y = intref.run_layer(layer, x)[0]
    info, fm, res = run_writeback(params, layer, y, backpressure=0.4)
    assert res["logits"] == [int(v) for v in y.reshape(-1)]
    assert res["mem"] == fm


def test_writeback_conv_logits_order():
    """Logits of a conv layer (several positions, several group tiles) come out group tile major."""
    rng = np.random.default_rng(10)
    layer = random_layer(rng, in_ch=3, in_h=2, in_w=3, out_ch=5, out_kind="logits")
    x = random_input(rng, layer, 1)
    y = intref.run_layer(layer, x)[0]
    p = AccelParams(**SMALL)
    info, fm, res = run_writeback(SMALL, layer, y)
    gt_ch = p.rows
    exp = []
    for g in range(-(-5 // gt_ch)):
        for pos in range(6):
            exp += [int(y[ch].reshape(-1)[pos]) for ch in range(g * gt_ch, min(5, g * gt_ch + gt_ch))]
    assert res["logits"] == exp


@pytest.mark.parametrize("seed", range(4))
def test_writeback_random(seed):
    rng = np.random.default_rng(200 + seed)
    mode = ["plain", "mcn", "mcn1"][seed % 3]
    planes = 1 if mode == "plain" else int(rng.integers(1, 4))
    out_kind = "requant" if seed % 2 else "sign"
    k = int(rng.choice([1, 3]))
    layer = random_layer(rng, in_ch=int(rng.integers(1, 5)), in_h=int(rng.integers(2, 8)), in_w=int(rng.integers(2, 8)),
                         out_ch=planes * int(rng.integers(1, 7)), kernel=k, stride=1, padding=k // 2,
                         pool=int(rng.choice([1, 2])), mode=mode, planes=planes, m_bits=5, out_kind=out_kind,
                         out_bits=int(rng.integers(2, 9)))
    x = random_input(rng, layer, 1)
    y = intref.postprocess(layer, intref.accumulate(layer, x))[0]
    params = [SMALL, WIDE][seed % 2]
    p = AccelParams(**params)
    info, fm, res = run_writeback(params, layer, y, seed=seed, idle=0.2, backpressure=0.2)
    got = program.decode_map(p, res["mem"][:info.out_words], info.out_shape, info.out_multibit)
    assert np.array_equal(got, intref.run_layer(layer, x)[0])
    assert res["mem"][info.out_words:] == fm[info.out_words:]
