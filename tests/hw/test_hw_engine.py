"""The whole engine in Amaranth's simulator: packed layers in, outputs equal intref.run_layer.

Small build (2x3 PEs of 8 bits) so that channel counts 5/17/33 leave partial words, positions leave
partial tiles and group counts leave partial group tiles.
"""

import zlib

import numpy as np
import pytest

from binaccel.hw.engine import Engine
from binaccel.hw.params import BeatKind, EngineParams
from binaccel.hw.perf import layer_cycles
from tests.hw.gateware import drive_engine, run_sim
from binaccel.sw import intref, pack
from binaccel.sw.randmodel import random_input, random_layer

PARAMS = dict(rows=2, cols=3, word=8, max_fan_in=297, max_in_bits=8, max_planes=3, max_taps=9, m_bits=6,
              mul_bits=12, add_bits=20)


@pytest.fixture(scope="module")
def engine():
    return Engine(**PARAMS)


def run_engine(engine, layers_inputs, *, seed=0, idle=0.0, backpressure=0.0):
    """Run several layers back to back in one stream; returns (outputs, cycles per layer)."""
    packs = [pack.pack_layer(layer, x, engine.params) for layer, x in layers_inputs]
    beats = [b for pk in packs for b in pk.beats]
    n_out = sum(pk.out_beats for pk in packs)
    res = {}

    async def tb(ctx):
        res["r"] = await drive_engine(ctx, engine, beats, rng=np.random.default_rng(seed), idle=idle,
                                      backpressure=backpressure, n_out=n_out)
        res["error"] = ctx.get(engine.error)
        for _ in range(3):
            await ctx.tick()
        res["busy"] = ctx.get(engine.busy)

    run_sim(engine, tb)
    out, first, last, in_cycles = res["r"]
    assert res["error"] == 0 and res["busy"] == 0
    outs, k = [], 0
    for pk in packs:
        y = pack.unpack_outputs(pk, out[k:k + pk.out_beats])
        outs.append(pack.unfold_outputs(pk.layer, y))
        k += pk.out_beats
    return outs, last - first + 1


CASES = {
    "plain-c5-k3-s1-p1": dict(in_ch=5, in_h=5, in_w=4, out_ch=3, kernel=3, stride=1, padding=1),
    "plain-c17-k3-s2-p1-pool": dict(in_ch=17, in_h=7, in_w=7, out_ch=5, kernel=3, stride=2, padding=1, pool=2),
    "plain-c33-k1-s1-p0": dict(in_ch=33, in_h=3, in_w=3, out_ch=4, kernel=1, stride=1, padding=0),
    "mcn-c5-k3-s2-p1": dict(in_ch=5, in_h=5, in_w=5, out_ch=6, kernel=3, stride=2, padding=1, mode="mcn",
                            planes=3, m_bits=6),
    "mcn-c9-k3-s1-p0-in4": dict(in_ch=9, in_h=5, in_w=4, out_ch=4, kernel=3, stride=1, padding=0, mode="mcn",
                                planes=2, m_bits=5, in_bits=4, out_kind="requant", out_bits=4),
    "mcn1-c6-k3-s1-p1": dict(in_ch=6, in_h=4, in_w=4, out_ch=6, kernel=3, stride=1, padding=1, mode="mcn1",
                             planes=3, m_bits=6),
    "first-in8-c1-k3-s1-p1": dict(in_ch=1, in_h=6, in_w=6, out_ch=3, kernel=3, stride=1, padding=1, in_bits=8,
                                  pool=2),
    "fc-logits": dict(kind="fc", in_ch=5, in_h=2, in_w=3, out_ch=7, out_kind="logits"),
    "fc-in2-requant": dict(kind="fc", in_ch=3, in_h=3, in_w=3, out_ch=3, in_bits=2, out_kind="requant", out_bits=8),
}


def _layer(rng, name):
    kw = dict(CASES[name])
    if kw.get("out_kind", "sign") != "sign":
        layer = random_layer(rng, name=name, **kw)
        layer.mul = np.clip(layer.mul, -(1 << 11), (1 << 11) - 1)
        layer.add = np.clip(layer.add, -(1 << 19), (1 << 19) - 1)
        return layer
    return random_layer(rng, name=name, **kw)


@pytest.mark.parametrize("name", list(CASES))
def test_engine_layer_random_stalls(engine, name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    layer = _layer(rng, name)
    x = random_input(rng, layer, 2)
    (y,), _ = run_engine(engine, [(layer, x)], seed=1, idle=0.3, backpressure=0.3)
    assert np.array_equal(y, intref.run_layer(layer, x))


def test_engine_cycles_match_model(engine):
    """No idle, no backpressure: measured cycles equal hw.perf.layer_cycles exactly."""
    rng = np.random.default_rng(7)
    for name in ("plain-c5-k3-s1-p1", "mcn-c5-k3-s2-p1", "mcn1-c6-k3-s1-p1", "first-in8-c1-k3-s1-p1", "fc-logits"):
        layer = _layer(rng, name)
        x = random_input(rng, layer, 2)
        (y,), cycles = run_engine(engine, [(layer, x)])
        assert np.array_equal(y, intref.run_layer(layer, x))
        assert cycles == layer_cycles(layer, 2, 3, 8, n=2, params=engine.params), name


def test_engine_two_pe_stages():
    """pe_stages=2 (the iCEBreaker builds): the same integers with random stalls; without stalls
    exactly the cycles of hw.perf.layer_cycles, one more per layer run than with one stage."""
    engine2 = Engine(**PARAMS, pe_stages=2)
    rng = np.random.default_rng(9)
    for name in ("mcn-c5-k3-s2-p1", "first-in8-c1-k3-s1-p1", "fc-in2-requant"):
        layer = _layer(rng, name)
        x = random_input(rng, layer, 2)
        (y,), _ = run_engine(engine2, [(layer, x)], seed=3, idle=0.3, backpressure=0.3)
        assert np.array_equal(y, intref.run_layer(layer, x)), name
        (y,), cycles = run_engine(engine2, [(layer, x)])
        assert np.array_equal(y, intref.run_layer(layer, x)), name
        assert cycles == layer_cycles(layer, 2, 3, 8, n=2, params=engine2.params), name
        assert cycles == layer_cycles(layer, 2, 3, 8, n=2, params=PARAMS) + 1, name


def test_engine_layers_back_to_back(engine):
    """A model's layers in one stream: each descriptor waits for the previous layer to drain."""
    rng = np.random.default_rng(3)
    layers = [_layer(rng, n) for n in ("mcn-c5-k3-s2-p1", "fc-logits", "plain-c5-k3-s1-p1")]
    xs = [random_input(rng, layer, 1) for layer in layers]
    ys, _ = run_engine(engine, list(zip(layers, xs)), seed=2, idle=0.2, backpressure=0.5)
    for layer, x, y in zip(layers, xs, ys):
        assert np.array_equal(y, intref.run_layer(layer, x)), layer.name


def _extreme_layer(kind, params: EngineParams, rng):
    """Largest supported layer: fan-in = max_fan_in, widest input, largest M-Filter factors."""
    p = params
    if kind == "mcn":  # 9 taps x c channels, c*9 = max_fan_in (297 = 33*9 in this build)
        c = p.max_fan_in // 9
        layer = random_layer(rng, name="extreme-mcn", mode="mcn", in_ch=c, in_h=3, in_w=3, out_ch=p.max_planes,
                             kernel=3, stride=1, padding=0, planes=p.max_planes, m_bits=p.m_bits,
                             in_bits=p.max_in_bits, out_kind="logits")
        layer.mfilter[:] = (1 << p.m_bits) - 1
    else:
        layer = random_layer(rng, name="extreme-fc", kind="fc", in_ch=p.max_fan_in, in_h=1, in_w=1, out_ch=3,
                             in_bits=p.max_in_bits, out_kind="logits")
    layer.mul = np.full(layer.out_ch, 1, dtype=np.int64)
    layer.add = np.zeros(layer.out_ch, dtype=np.int64)
    return layer


@pytest.mark.parametrize("kind", ["mcn", "fc"])
@pytest.mark.parametrize("agree", [True, False])
def test_engine_extremes_no_overflow(engine, kind, agree):
    """All taps agree / all disagree with the weights at the largest fan-in and widest input: the
    accumulator reaches +-bound exactly (mul=1, add=0 so the logits are the accumulators)."""
    p = engine.params
    rng = np.random.default_rng(11)
    layer = _extreme_layer(kind, p, rng)
    layer.weights = np.ones_like(layer.weights) * (1 if agree else -1)
    x = np.full((1, layer.in_ch, layer.in_h, layer.in_w), (1 << layer.in_bits) - 1, dtype=np.int64)
    (y,), _ = run_engine(engine, [(layer, x)])
    ref = intref.run_layer(layer, x)
    assert np.array_equal(y, ref)
    mmax = (1 << p.m_bits) - 1 if kind == "mcn" else 1
    assert int(np.abs(ref).max()) == layer.fan_in * ((1 << layer.in_bits) - 1) * mmax
    assert layer.fan_in == p.max_fan_in
    if kind == "mcn":
        assert int(np.abs(ref).max()) == p.acc_bound


def test_engine_binary_extremes(engine):
    """Binary input equal to / opposite of the weights everywhere, with zero padding at the border."""
    rng = np.random.default_rng(5)
    layer = random_layer(rng, name="bin", in_ch=33, in_h=3, in_w=3, out_ch=2, kernel=3, stride=1, padding=1,
                         out_kind="logits")
    layer.mul[:] = 1
    layer.add[:] = 0
    layer.weights[:] = 1
    ones = np.ones((1, 33, 3, 3), dtype=np.int64)
    (y1, y0), _ = run_engine(engine, [(layer, ones), (layer, 0 * ones)])
    assert np.array_equal(y1, intref.run_layer(layer, ones))
    assert np.array_equal(y0, intref.run_layer(layer, 0 * ones))
    assert y1[0, 0, 1, 1] == 33 * 9 and y1[0, 0, 0, 0] == 33 * 4  # only valid taps count
    assert y0[0, 0, 1, 1] == -33 * 9 and y0[0, 0, 0, 0] == -33 * 4


def test_engine_error_flag(engine):
    """A beat of the wrong kind sets ``error``; a descriptor with zero fields is refused."""
    p = engine.params
    rng = np.random.default_rng(0)
    layer = _layer(rng, "fc-logits")
    pk = pack.pack_layer(layer, random_input(rng, layer, 1), p)
    bad_first = pk.beats[1]  # an MFILT beat while a descriptor is expected
    zero_desc = int(BeatKind.DESC)  # descriptor with every field 0
    flags = {}

    async def tb(ctx):
        for name, word in (("mfilt_in_idle", bad_first), ("zero_desc", zero_desc)):
            ctx.set(engine.i_stream.payload.as_value(), word)
            ctx.set(engine.i_stream.valid, 1)
            await ctx.tick()
            ctx.set(engine.i_stream.valid, 0)
            await ctx.tick()
            flags[name] = (ctx.get(engine.error), ctx.get(engine.busy))

    run_sim(engine, tb)
    assert flags["mfilt_in_idle"] == (1, 0)
    assert flags["zero_desc"] == (1, 0)


def test_engine_parameters_checked():
    with pytest.raises(ValueError, match="rows"):
        Engine(rows=0)
    with pytest.raises(TypeError, match="word"):
        Engine(word="32")
    with pytest.raises(TypeError):
        Engine(colls=4)
