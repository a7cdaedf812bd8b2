"""The whole accelerator in Amaranth's simulator, on a small build (fast to elaborate and simulate).

Complements the cocotb/Verilator tests (tests/test_top.py): a small random network with every layer
dumped, resident and streamed weights, random idle cycles and backpressure; INFO and a bad opcode.
"""

from __future__ import annotations

import numpy as np
import pytest

from binaccel.hw.top import Accelerator, info_words
from tests.hw.gateware import run_sim
from binaccel.sw import intref, program
from binaccel.sw.intmodel import IntModel
from binaccel.sw.randmodel import random_layer

SMALL = dict(rows=2, cols=3, word=8, max_fan_in=600, max_in_bits=8, max_planes=3, max_taps=9, m_bits=6,
             mul_bits=12, add_bits=20, fm_depth=256, w_depth=128, t_depth=64, max_layers=4, max_dim=16)
# weight entries of 3x16 bits = two stream words each (streamed weights arrive while dumps go out)
WIDE = dict(SMALL, rows=3, cols=2, word=16)


def drive(dut, words, n_out, *, seed=0, idle=0.0, backpressure=0.0, max_cycles=200_000):
    """Stream ``words`` into the accelerator, return (n_out output words, cycles, error flag)."""
    rng = np.random.default_rng(seed)
    res = {}

    async def tb(ctx):
        out, k, offering, cycle, pending = [], 0, False, 0, None
        while len(out) < n_out:
            assert cycle < max_cycles, f"timeout: {k}/{len(words)} words in, {len(out)}/{n_out} out"
            if not offering and k < len(words) and not (idle and rng.random() < idle):
                offering = True
                ctx.set(dut.i_stream.payload, words[k])
            ctx.set(dut.i_stream.valid, int(offering))
            rdy = int(not (backpressure and rng.random() < backpressure))
            ctx.set(dut.o_stream.ready, rdy)
            fire = offering and ctx.get(dut.i_stream.ready)
            ov = ctx.get(dut.o_stream.valid)
            ow = ctx.get(dut.o_stream.payload) if ov else None
            if pending is not None:
                assert ow == pending, f"output changed while valid and not ready at cycle {cycle}"
            await ctx.tick()
            cycle += 1
            if fire:
                k += 1
                offering = False
            if ov and rdy:
                out.append(ow)
                pending = None
            else:
                pending = ow
        ctx.set(dut.i_stream.valid, 0)
        ctx.set(dut.o_stream.ready, 1)
        for _ in range(50):
            assert not ctx.get(dut.o_stream.valid), "unexpected output word"
            await ctx.tick()
        assert k == len(words), f"only {k} of {len(words)} input words consumed"
        res.update(out=out, cycles=cycle, error=ctx.get(dut.error), busy=ctx.get(dut.busy))

    run_sim(dut, tb)
    return res


def tiny_model(rng, *, mode="mcn", planes=2):
    k = planes if mode != "plain" else 1
    layers = [
        random_layer(rng, name="conv1", mode=mode, planes=planes, in_ch=k, in_h=6, in_w=6, out_ch=2 * k,
                     in_bits=8, pool=2, m_bits=6),
        random_layer(rng, name="conv2", mode=mode, planes=planes, in_ch=2 * k, in_h=3, in_w=3, out_ch=3 * k,
                     in_bits=1, m_bits=6, out_kind="requant", out_bits=5),
        random_layer(rng, name="fc", kind="fc", in_ch=3 * k, in_h=3, in_w=3, out_ch=5, out_kind="logits",
                     in_bits=5),
    ]
    m = IntModel(name=f"tiny-{mode}", input_shape=(1, 6, 6), layers=layers, input_repeat=k, classes=5)
    m.validate()
    return m


_DUTS = {}


def _dut(name):
    if name not in _DUTS:
        _DUTS[name] = Accelerator(**{"w8": SMALL, "w16": WIDE, "w16np": dict(WIDE, pair_reads=0)}[name])
    return _DUTS[name]


@pytest.fixture(scope="module")
def dut():
    return _dut("w8")


@pytest.mark.parametrize("build,mode,stream,seed", [("w8", "mcn", "auto", 1), ("w8", "plain", True, 2),
                                                    ("w16", "mcn1", ["conv2"], 3), ("w16", "mcn", True, 4),
                                                    ("w16np", "plain", True, 5), ("w16np", "mcn", "auto", 6)])
def test_tiny_network(build, mode, stream, seed):
    dut = _dut(build)
    rng = np.random.default_rng(seed)
    model = tiny_model(rng, mode=mode, planes=1 if mode == "plain" else 2)
    images = rng.integers(0, 256, size=(2, 1, 6, 6)).astype(np.uint8)
    pr = program.compile_model(model, dut.params, dump=True, stream=stream)
    words = pr.setup_words + pr.images_words(images)
    res = drive(dut, words, 2 * pr.out_words_per_image, seed=seed, idle=0.3, backpressure=0.3)
    assert res["error"] == 0 and res["busy"] == 0
    dec = pr.decode(res["out"], 2)
    refs = intref.run_model(model, images)
    assert np.array_equal(dec["logits"], refs[-1].reshape(2, -1))
    for i, y in dec["outputs"].items():
        assert np.array_equal(y, refs[i]), model.layers[i].name


def test_info_and_bad_opcode(dut):
    info = info_words(dut.params)
    res = drive(dut, [0x3, 0xE, 0x3], 2 * len(info))
    assert res["out"] == info + info and res["error"] == 1
