"""The cycle model of the pipelined accelerator (binaccel.sw.dpcycles) equals the hardware's own
cycle counters on Verilator (binaccel.sim.dp, the fast path: a word offered every cycle, the
output always ready): every layer's count and the image's, ==.

Networks: the zoo's siman, sign and mcn1, and small chains of random layers (a first layer, one
or two array layers over kernel 1/3, stride 1/2, padding 0/1, pooled and LINEAR tiles, 1 to 4
groups, binary and multi-bit inputs, FC logits of one to three groups). Builds: the ULX3S build
(mem_latency 3, a 4-position first-layer unit), the cocotb tests' default build (mem_latency 2,
2 positions) and a narrow one (3 columns, mem_latency 1, 1 position).

Default tier: the ULX3S build, siman and two small nets. The rest is marked `sim`.
"""

from __future__ import annotations

import numpy as np
import pytest

from binaccel.hw.dp.lane import Lane
from binaccel.hw.dp.synth import ULX3S_BUILD
from binaccel.sim import dp
from binaccel.sw import dpcycles, dpprog, netzoo, zoo
from binaccel.sw.hwif.dp import DpParams
from tests.sw.test_dpprog import _model

ULX3S = DpParams(**ULX3S_BUILD)
#: The cocotb tests' default build.
BUILD = DpParams(cols=4, fm_depth=2048, w_depth=256, t_depth=128, p_depth=256, max_dim=32, max_steps=128,
                 mem_latency=2)
#: 3 columns (no pooled array layer, no unpooled first layer), mem_latency 1, one position.
NARROW = DpParams(cols=3, fm_depth=1024, w_depth=256, t_depth=128, p_depth=256, max_dim=16, max_steps=64,
                  mem_latency=1, flu_positions=1)

#: (layer specs (kind, out_ch, kernel, stride, padding, pool, out_kind, out_bits), input shape);
#: `wide` nets need a 4-column build (a pooled array layer or an unpooled first layer).
NETS = {
    # pooled first layer, LINEAR 3x3 pad 1 (a short last tile), FC
    "lin3": ([("conv", 16, 3, 1, 1, 2, "sign", 1), ("conv", 20, 3, 1, 1, 1, "sign", 1),
              ("fc", 10, 1, 1, 0, 1, "logits", 1)], (1, 14, 10)),
    # stride 2, padding 0, three groups (the parameter loads wait for the previous group's results)
    "s2p0": ([("conv", 16, 3, 1, 1, 2, "sign", 1), ("conv", 40, 3, 2, 0, 1, "sign", 1),
              ("fc", 10, 1, 1, 0, 1, "logits", 1)], (1, 16, 16)),
    # 1x1 stride 2 on 33 channels (three chunks), then 1x1 stride 1
    "k1": ([("conv", 33, 3, 1, 1, 2, "sign", 1), ("conv", 18, 1, 2, 0, 1, "sign", 1),
            ("conv", 12, 1, 1, 0, 1, "sign", 1), ("fc", 10, 1, 1, 0, 1, "logits", 1)], (2, 12, 12)),
    # multi-bit: a 3-bit first layer into a 3x3 padding 0 layer to 2 bits, FC on 2-bit inputs
    "multibit": ([("conv", 16, 3, 1, 1, 2, "requant", 3), ("conv", 17, 3, 1, 0, 1, "requant", 2),
                  ("fc", 10, 1, 1, 0, 1, "logits", 1)], (1, 12, 12)),
    # 8-bit outputs of a stride-2 layer (spacing from the write-back's 8 planes), FC of 40 logits
    # (three groups: the logits FIFO's credits hold the third)
    "fc40": ([("conv", 20, 3, 1, 0, 2, "sign", 1), ("conv", 9, 3, 2, 1, 1, "requant", 8),
              ("fc", 40, 1, 1, 0, 1, "logits", 1)], (3, 14, 14)),
    # one step a segment (1x1 on 16 channels, binary) next to long segments
    "onestep": ([("conv", 16, 3, 1, 1, 2, "sign", 1), ("conv", 16, 1, 1, 0, 1, "sign", 1),
                 ("conv", 16, 1, 2, 0, 1, "requant", 2), ("fc", 12, 1, 1, 0, 1, "logits", 1)], (1, 8, 8)),
}
WIDE = {
    # unpooled first layer of 3 channels and 4 groups, pooled 3x3 array layer on 4-bit inputs
    "quad": ([("conv", 50, 3, 1, 1, 1, "requant", 4), ("conv", 24, 3, 1, 1, 2, "sign", 1),
              ("fc", 10, 1, 1, 0, 1, "logits", 1)], (3, 8, 8)),
    # pooled stride 2, requantized pooled outputs of 2 bits, FC on them
    "quad_s2": ([("conv", 16, 3, 1, 1, 1, "sign", 1), ("conv", 40, 3, 2, 1, 2, "requant", 2),
                 ("fc", 20, 1, 1, 0, 1, "logits", 1)], (4, 12, 12)),
}


def net(name: str):
    specs, shape = {**NETS, **WIDE}[name]
    rng = np.random.default_rng(sorted({**NETS, **WIDE}).index(name))
    return _model(rng, specs, in_shape=shape, name=name)


def model_of(name: str):
    return zoo.untrained_model(name) if name in ("siman", "sign", "mcn1") else net(name)


def assert_model_equals_counters(name: str, params: DpParams, *, images: int = 1):
    model = model_of(name)
    rng = np.random.default_rng(7)
    imgs = rng.integers(0, 256, (images, *model.input_shape)).astype(np.uint8)
    run = dp.run_model(model, imgs, params=params)
    assert run.matched == images
    prog = dpprog.compile_model(model, params)
    want = dpcycles.image_cycles(prog, params)
    assert want["layers"] == [int(c) for c in run.layer_cycles], name
    # the mean over the images: every image's count is the same
    assert want["image"] == run.cycles_per_image, name
    assert want["image"] == 2 + sum(want["layers"])


def assert_dump_and_period(name: str, params: DpParams):
    """With every hidden map dumped, three RUNs back to back: each image's counters equal the
    model's, and consecutive RUNs' last reply words are ``period`` cycles apart."""
    model = model_of(name)
    imgs = np.random.default_rng(3).integers(0, 256, (3, *model.input_shape)).astype(np.uint8)
    for dump in (False, True):
        prog = dpprog.compile_model(model, params, dump=dump)
        words = list(prog.setup)
        for img in imgs:
            words += prog.run_words(img)
        n = prog.reply_words()
        res = dp.dp_build(params).run_detailed(words, 3 * n, stamps=True)
        want = dpcycles.image_cycles(prog, params)
        for k in range(3):
            rep = prog.parse_reply(res.out[k * n:(k + 1) * n])
            assert rep["layer_cycles"] == want["layers"] and rep["cycles"] == want["image"], (name, dump, k)
        ends = [res.stamps[(k + 1) * n - 1] for k in range(3)]
        assert list(np.diff(ends)) == [want["period"]] * 2, (name, dump)


def test_default_ulx3s_siman_and_small_nets():
    for name in ("siman", "lin3", "quad"):
        assert_model_equals_counters(name, ULX3S, images=2)
    assert_dump_and_period("multibit", ULX3S)


def test_latencies_the_model_uses_are_the_designs():
    assert dpcycles.LANE_DELAY == Lane.latency
    from binaccel.hw.dp.array import XnorArray
    from binaccel.hw.dp.window import WindowGen
    for p in (ULX3S, BUILD, NARROW):
        arr = XnorArray(rows=p.rows, cols=p.cols, word=p.word, slot=16, acc_width=p.acc_width, n_width=p.n_width,
                        tag_width=p.tag_width)
        win = WindowGen(rows=p.rows, cols=p.cols, n_width=p.n_width, tag_width=p.tag_width, aw=p.aw, cw=p.cw,
                        count_w=p.count_w, steps_w=p.steps_w, tbl_aw=p.tbl_aw, w_aw=p.w_aw,
                        mem_latency=p.mem_latency)
        arr._MustUse__silence = win._MustUse__silence = True     # (only their latencies are read)
        assert dpcycles.array_latency(p) == arr.latency
        assert dpcycles.window_latency(p) == win.latency


def test_a_layer_on_its_own_is_compiled():
    model = net("lin3")
    prog = dpprog.compile_model(model, ULX3S)
    for layer, code in zip(model.layers[1:], prog.layers[1:]):
        assert dpcycles.layer_cycles(layer, ULX3S) == dpcycles.layer_cycles(code, ULX3S)


@pytest.mark.sim
@pytest.mark.parametrize("name", ["sign", "mcn1", *sorted(NETS), *sorted(WIDE)])
def test_ulx3s(name):
    assert_model_equals_counters(name, ULX3S)


@pytest.mark.sim
def test_ulx3s_resnet20_shape():
    model = netzoo.build("resnet20_siman")
    imgs = np.random.default_rng(7).integers(0, 256, (1, *model.input_shape)).astype(np.uint8)
    run = dp.run_model(model, imgs, params=ULX3S)
    want = dpcycles.image_cycles(model, ULX3S)
    assert run.matched == 1
    assert want["layers"] == [int(c) for c in run.layer_cycles] and want["image"] == run.cycles_per_image


@pytest.mark.sim
@pytest.mark.parametrize("name", ["lin3", "quad"])
def test_dump_and_period_cocotb_default_build(name):
    assert_dump_and_period(name, BUILD)


@pytest.mark.sim
@pytest.mark.parametrize("name", ["siman", "sign", "mcn1", *sorted(NETS), *sorted(WIDE)])
def test_cocotb_default_build(name):
    assert_model_equals_counters(name, BUILD)


@pytest.mark.sim
@pytest.mark.parametrize("name", sorted(NETS))
def test_narrow_build(name):
    assert_model_equals_counters(name, NARROW)
