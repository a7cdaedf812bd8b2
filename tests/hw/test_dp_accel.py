"""The pipelined accelerator in Amaranth's simulator: every layer's whole output map (dumped) and
the logits equal the integer reference, under random idle input and output backpressure."""

import numpy as np
import pytest
from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.sim import Simulator

from binaccel.hw.dp import synth
from binaccel.hw.dp.accel import DpAccelerator, dp_info_words
from binaccel.sw import dpprog, intref, zoo
from binaccel.sw.hwif import Op
from binaccel.sw.hwif.dp import DpParams
from tests.sw.test_dpprog import NETS, _model

BUILD = dict(cols=4, fm_depth=1024, w_depth=256, t_depth=128, p_depth=256, max_dim=16, max_steps=64, mem_latency=2)


def _stream(dut, words, n_out, *, rng, idle, backpressure, max_cycles=400000):
    got = []

    async def tb(ctx):
        i, cyc = 0, 0
        while len(got) < n_out:
            send = i < len(words) and rng.random() >= idle
            ctx.set(dut.i_stream.valid, int(send))
            if send:
                ctx.set(dut.i_stream.payload, words[i])
            take = rng.random() >= backpressure
            ctx.set(dut.o_stream.ready, int(take))
            rdy, ov, op = ctx.get(dut.i_stream.ready), ctx.get(dut.o_stream.valid), ctx.get(dut.o_stream.payload)
            await ctx.tick()
            if send and rdy:
                i += 1
            if take and ov:
                got.append(op)
            cyc += 1
            assert cyc < max_cycles, f"{len(got)} of {n_out} words after {cyc} cycles"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return got


@pytest.mark.parametrize("net,idle,backpressure,extra", [
    ("binary", 0.0, 0.0, {}), ("multibit", 0.3, 0.5, {}), ("requant_pool", 0.5, 0.3, {}),
    ("binary", 0.2, 0.2, {"mem_latency": 3, "flu_positions": 4}), ("requant_pool", 0.0, 0.0, {"flu_positions": 1}),
])
def test_accelerator_matches_intref(net, idle, backpressure, extra):
    rng = np.random.default_rng(len(net))
    specs, shape = NETS[net]
    model = _model(rng, specs, in_shape=shape, name=net)
    build = {**BUILD, **extra}
    prog = dpprog.compile_model(model, DpParams(**build), dump=True)
    images = rng.integers(0, 256, (2, *shape)).astype(np.uint8)
    ref = intref.run_model(model, images)
    words = list(prog.setup)
    for img in images:
        words += prog.run_words(img)
    n = prog.reply_words()
    got = _stream(DpAccelerator(**build), words, 2 * n, rng=rng, idle=idle, backpressure=backpressure)
    for k in range(2):
        rep = prog.parse_reply(got[k * n:(k + 1) * n])
        for i, layer in enumerate(model.layers[:-1]):
            assert np.array_equal(rep["maps"][i], ref[i][k]), layer.name
        assert np.array_equal(rep["logits"], ref[-1][k].reshape(-1))
        assert len(rep["layer_cycles"]) == len(model.layers) and rep["cycles"] >= sum(rep["layer_cycles"])


def test_siman_mnist_matches_intref():
    """A 28x28 image: the first layer's outputs reach the write-back while the image still arrives."""
    build = {**BUILD, "fm_depth": 2048, "max_dim": 32, "max_steps": 128}
    model = zoo.untrained_model("siman")
    prog = dpprog.compile_model(model, DpParams(**build), dump=True)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (1, 1, 28, 28)).astype(np.uint8)
    ref = intref.run_model(model, img)
    got = _stream(DpAccelerator(**build), prog.setup + prog.run_words(img[0]), prog.reply_words(), rng=rng,
                  idle=0.0, backpressure=0.0)
    rep = prog.parse_reply(got)
    for i in range(3):
        assert np.array_equal(rep["maps"][i], ref[i][0]), model.layers[i].name
    assert np.array_equal(rep["logits"], ref[-1][0].reshape(-1))


def test_info_reply():
    dut = DpAccelerator(**BUILD)
    info = dp_info_words(DpParams(**BUILD))
    got = _stream(dut, [Op.INFO], len(info), rng=np.random.default_rng(0), idle=0.0, backpressure=0.2)
    assert got == info


def test_parameters_checked():
    with pytest.raises(ValueError, match="cols"):
        DpAccelerator(cols=9)
    with pytest.raises(ValueError, match="fm_depth"):
        DpAccelerator(fm_depth=1000)


def test_synth_command_refuses_bad_parameters(capsys):
    assert synth.main(["--cols", "9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cols" in err
    with pytest.raises(SystemExit):
        synth.main(["--freq", "-5"])


def test_reset_mid_layer_then_clean_rerun():
    """A reset in the middle of a RUN (the first layer running, the image half in) leaves no state
    that changes a rerun: the program written again and the image run again give exact results."""
    rng = np.random.default_rng(5)
    specs, shape = NETS["binary"]
    model = _model(rng, specs, in_shape=shape, name="binary")
    prog = dpprog.compile_model(model, DpParams(**BUILD), dump=True)
    img = rng.integers(0, 256, (1, *shape)).astype(np.uint8)
    ref = intref.run_model(model, img)
    run = prog.run_words(img[0])
    n = prog.reply_words()

    rst = Signal()
    top = Module()
    dut = DpAccelerator(**BUILD)
    top.submodules.dut = ResetInserter({"sync": rst})(dut)
    got = []

    async def tb(ctx):
        async def send(words, *, stop_after=None):
            for k, w in enumerate(words):
                if stop_after is not None and k == stop_after:
                    return
                ctx.set(dut.i_stream.valid, 1)
                ctx.set(dut.i_stream.payload, w)
                await ctx.tick().until(dut.i_stream.ready)
            ctx.set(dut.i_stream.valid, 0)

        ctx.set(dut.o_stream.ready, 1)
        await send(prog.setup)
        await send(run, stop_after=len(run) // 2)     # half the image: the first layer has started
        ctx.set(dut.i_stream.valid, 0)
        for _ in range(20):
            await ctx.tick()
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        for _ in range(4):
            await ctx.tick()
        await send(prog.setup + run)
        for _ in range(200000):
            if ctx.get(dut.o_stream.valid):
                got.append(ctx.get(dut.o_stream.payload))
                if len(got) == n:
                    return
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    rep = prog.parse_reply(got)
    for i, layer in enumerate(model.layers[:-1]):
        assert np.array_equal(rep["maps"][i], ref[i][0]), layer.name
    assert np.array_equal(rep["logits"], ref[-1][0].reshape(-1))
