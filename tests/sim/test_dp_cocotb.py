"""The pipelined accelerator (binaccel.hw.dp.accel.DpAccelerator) on Verilator through cocotb
(binaccel.sim.dp_cocotb, testbench binaccel.sim.tb_dp).

Random networks over the layer kinds the dp compiler accepts, and SiMaN on real MNIST digits, run
with random idle input cycles and random output backpressure (probabilities 0 to 0.8); every
hidden layer's whole output map (dumped by the accelerator) and the logits must equal
binaccel.sw.intref.run_model, every integer. The testbench checks the stream protocol, the word
count, the error and busy flags.

The corner matrix (NETS; test_matrix_covers_the_corners checks it from the models):

    binary        first layer pooled, 1 channel; LINEAR 3x3 with a short last tile; stride 2
                  pooled; 1x1; FC on binary inputs; 20, 24, 40, 18 channels
    multibit      first layer unpooled, 3 channels, 4-bit requant; 3x3 padding 0 on 4-bit inputs
                  to 3-bit requant; stride 2 on 3-bit inputs; 17 and 33 channels
    requant_pool  first layer pooled to 8-bit requant, 2 channels; pooled 3x3 on 8-bit inputs to
                  2-bit requant; FC on 2-bit inputs
    kernel1       first layer unpooled, 4 channels, padding 0; 1x1 stride 2 (33 channels); pooled
                  3x3 to 5-bit requant; 1x1 on 5-bit inputs; 3x3 stride 2 padding 0 on 2-bit
                  inputs; FC of 20 logits (two group tiles)
    fc_multibit   first layer of 5 channels out; 3x3 stride 2 padding 0 to 7-bit requant; FC on
                  7-bit inputs

Each net runs at the three (idle, backpressure) probabilities of PROBS. A second build, the ULX3S
one, runs SiMaN on real MNIST digits; a third (NARROW: 3 columns, mem_latency 1, flu_positions 1)
a net of LINEAR layers with an unpooled 8-bit output. MCN layers are refused by the compiler
(DpFitError, one line naming the layer) before anything is simulated.

Default tier: one Verilator build (BUILD) and a few runs. The rest of the matrix, the ULX3S and
narrow builds, the resets in later layers, the injected weight fault and the testbench's own
failure modes are marked `sim`.
"""

from __future__ import annotations

import numpy as np
import pytest

from binaccel.hw.dp.accel import dp_info_words
from binaccel.hw.dp.synth import ULX3S_BUILD
from binaccel.sim import dp_cocotb
from binaccel.sim.runner import CocotbFailure
from binaccel.sw import dpprog, intref, zoo
from binaccel.sw.data import load_mnist
from binaccel.sw.hwif import Op
from binaccel.sw.hwif.dp import DpParams, DpTarget
from binaccel.sw.intmodel import IntModel
from binaccel.sw.randmodel import random_layer, random_model
from tests.sw.test_dpprog import NETS as DPPROG_NETS
from tests.sw.test_dpprog import _model

#: The small build of the default tier (buffers for the random nets and for SiMaN's 28x28 maps).
BUILD = DpParams(cols=4, fm_depth=2048, w_depth=256, t_depth=128, p_depth=256, max_dim=32, max_steps=128,
                 mem_latency=2)
ULX3S = DpParams(**ULX3S_BUILD)
#: A third build (`sim`): 3 columns (no pooled array layers, no unpooled first layer), unregistered
#: buffer outputs, a one-position first-layer unit.
NARROW = DpParams(cols=3, fm_depth=1024, w_depth=256, t_depth=128, p_depth=256, max_dim=16, max_steps=64,
                  mem_latency=1, flu_positions=1)
#: The net of the narrow build: LINEAR tiles of 3 columns (one short), an unpooled layer with 8-bit
#: outputs (a 4-column build cannot encode its segment spacing), requant into the array, FC.
NARROW_NET = ([("conv", 20, 3, 1, 1, 2, "sign", 1), ("conv", 17, 3, 1, 1, 1, "requant", 8),
               ("conv", 33, 3, 2, 0, 1, "sign", 1), ("conv", 9, 1, 1, 0, 1, "requant", 4),
               ("fc", 11, 1, 1, 0, 1, "logits", 1)], (3, 14, 12))

NETS = {
    **DPPROG_NETS,
    "kernel1": ([("conv", 7, 3, 1, 0, 1, "sign", 1), ("conv", 33, 1, 2, 0, 1, "sign", 1),
                 ("conv", 9, 3, 1, 1, 2, "requant", 5), ("conv", 12, 1, 1, 0, 1, "requant", 2),
                 ("conv", 16, 3, 2, 0, 1, "sign", 1), ("fc", 20, 1, 1, 0, 1, "logits", 1)], (4, 14, 14)),
    "fc_multibit": ([("conv", 5, 3, 1, 1, 1, "sign", 1), ("conv", 5, 3, 2, 0, 1, "requant", 7),
                     ("fc", 3, 1, 1, 0, 1, "logits", 1)], (1, 6, 6)),
}

#: (idle, backpressure) per case: none, moderate, high.
PROBS = [(0.0, 0.0), (0.3, 0.5), (0.8, 0.8)]
#: The matrix cases that run in the default tier; every other (net, probabilities) is `sim`.
DEFAULT_CASES = {("binary", 0), ("multibit", 1)}


def net(name: str) -> IntModel:
    specs, shape = NETS[name]
    return _model(np.random.default_rng(sorted(NETS).index(name)), specs, in_shape=shape, name=name)


def images_for(model: IntModel, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(1000 + seed).integers(0, 256, (n, *model.input_shape)).astype(np.uint8)


def mnist_digits(n: int) -> np.ndarray:
    return load_mnist().x_test[:n]


def assert_exact(run, model, images):
    """Every dumped hidden map and the logits equal intref (the run's own comparison, and again here)."""
    assert run.exact, f"{model.name}: mismatches\n{run.report()}"
    refs = intref.run_model(model, images)
    assert sorted(run.maps) == list(range(len(model.layers) - 1))
    for i, got in run.maps.items():
        assert got.dtype == np.int64 and np.array_equal(got, refs[i]), model.layers[i].name
    assert np.array_equal(run.logits, intref.predict(model, images))
    # the hardware's counters: an image's count covers its layers
    assert run.check.layer_cycles.shape == (len(images), len(model.layers))
    assert np.all(run.check.cycles >= run.check.layer_cycles.sum(axis=1))


_RUNS: dict = {}


def cached_run(name: str, probs: int, *, params=BUILD, n_images=2):
    """One run per (net, probabilities, build) in this process (the corruption tests reuse it)."""
    key = (name, probs, params, n_images)
    if key not in _RUNS:
        model = net(name)
        images = images_for(model, n_images, probs)
        idle, bp = PROBS[probs]
        _RUNS[key] = (model, images, dp_cocotb.run_model(model, images, params=params, seed=probs, idle=idle,
                                                         backpressure=bp))
    return _RUNS[key]


# ----------------------------------------------------------------------------------------------
# The matrix


def _matrix():
    for name in NETS:
        for k, (idle, bp) in enumerate(PROBS):
            marks = () if (name, k) in DEFAULT_CASES else (pytest.mark.sim,)
            yield pytest.param(name, k, id=f"{name}-idle{idle}-bp{bp}", marks=marks)


@pytest.mark.parametrize("name,probs", list(_matrix()))
def test_random_net_every_layer_exact(name, probs):
    model, images, run = cached_run(name, probs)
    assert_exact(run, model, images)
    assert run.record["idle"] == PROBS[probs][0] and run.record["backpressure"] == PROBS[probs][1]


def test_matrix_covers_the_corners():
    """The nets hold every layer kind the verification plan names (checked from the models)."""
    first, array = [], []
    for name in NETS:
        layers = net(name).layers
        first.append(layers[0])
        array += layers[1:]
    conv = [x for x in array if x.kind == "conv"]
    fc = [x for x in array if x.kind == "fc"]
    assert {x.stride for x in conv} == {1, 2} and {x.padding for x in conv} == {0, 1}
    assert {x.kernel for x in conv} == {1, 3}
    assert {x.pool for x in conv} == {1, 2} and {x.pool for x in first} == {1, 2}
    assert any(x.in_bits > 1 for x in conv) and any(x.in_bits > 1 for x in fc)
    assert {x.out_kind for x in conv + first} == {"sign", "requant"}
    assert {x.in_ch for x in first} == {1, 2, 3, 4} and all(x.in_bits == 8 for x in first)
    assert any(x.out_ch % 16 for x in conv) and any(x.in_ch % 16 for x in conv)
    assert any(x.out_ch % 32 and x.out_ch > 16 for x in conv + first)
    assert any(x.out_ch > 16 for x in fc)   # logits over two group tiles
    assert all(x.out_kind == "logits" for x in fc)
    # a LINEAR tile row whose last tile is not full
    assert any(x.pool == 1 and x.conv_w % BUILD.cols for x in conv)


def test_siman_mnist_digits_exact():
    """SiMaN (untrained weights) on real MNIST digits: 28x28, the first layer running while the
    image arrives, every layer compared."""
    model = zoo.untrained_model("siman")
    images = mnist_digits(2)
    run = dp_cocotb.run_model(model, images, params=BUILD, seed=3, idle=0.2, backpressure=0.3)
    assert_exact(run, model, images)


@pytest.mark.sim
@pytest.mark.parametrize("probs", range(len(PROBS)))
def test_siman_mnist_on_ulx3s_build(probs):
    """SiMaN on the ULX3S build (registered buffer addresses, a four-position first-layer unit)."""
    model = zoo.untrained_model("siman")
    images = mnist_digits(9)[3 * probs:3 * probs + 3]
    idle, bp = PROBS[probs]
    run = dp_cocotb.run_model(model, images, params=ULX3S, seed=10 + probs, idle=idle, backpressure=bp)
    assert_exact(run, model, images)


@pytest.mark.sim
@pytest.mark.parametrize("name", ["binary", "kernel1"])
def test_random_net_on_ulx3s_build(name):
    model = net(name)
    images = images_for(model, 2, 7)
    run = dp_cocotb.run_model(model, images, params=ULX3S, seed=7, idle=0.3, backpressure=0.3)
    assert_exact(run, model, images)


@pytest.mark.sim
@pytest.mark.parametrize("probs", range(len(PROBS)))
def test_narrow_build(probs):
    """3 columns, mem_latency 1, flu_positions 1: a LINEAR layer's last tile of 2 of 3 columns, an
    unpooled layer's 8-bit outputs, FC over 3 columns."""
    specs, shape = NARROW_NET
    model = _model(np.random.default_rng(21), specs, in_shape=shape, name="narrow")
    assert any(x.kind == "conv" and x.conv_w % NARROW.cols for x in model.layers[1:])
    assert any(x.pool == 1 and x.out_kind == "requant" and x.out_bits == 8 for x in model.layers)
    images = images_for(model, 2, 20 + probs)
    idle, bp = PROBS[probs]
    run = dp_cocotb.run_model(model, images, params=NARROW, seed=20 + probs, idle=idle, backpressure=bp)
    assert_exact(run, model, images)


def test_narrow_build_refuses_pooled_array_layers():
    with pytest.raises(dpprog.DpFitError, match="layer 'l2': a pooled layer runs in 2x2 quads on a 4-column build"):
        dpprog.compile_model(net("binary"), NARROW)
    with pytest.raises(dpprog.DpFitError, match="layer 'l0': an unpooled first layer needs a build with 4 or more"):
        dpprog.compile_model(net("multibit"), NARROW)


@pytest.mark.sim
def test_logits_only_without_stats():
    """No dumps, no counters: the reply is the logits alone, and they equal intref."""
    model = net("kernel1")
    images = images_for(model, 3, 8)
    run = dp_cocotb.run_model(model, images, params=BUILD, seed=8, idle=0.5, backpressure=0.5, dump=False,
                              stats=False)
    assert run.exact, run.report()
    assert run.maps == {} and run.check.cycles.size == 0
    assert run.record["reply_words_per_image"] == 20 * (-(-BUILD.y_width // 32))
    assert np.array_equal(run.logits, intref.predict(model, images))


# ----------------------------------------------------------------------------------------------
# Resets in the middle of a RUN


@pytest.mark.parametrize("name,image,fraction,probs", [
    ("binary", 0, 0.5, 1),
    pytest.param("requant_pool", 1, 0.3, 2, marks=pytest.mark.sim),
])
def test_reset_while_image_arrives_then_clean_rerun(name, image, fraction, probs):
    """Part of an image in (the first-layer unit running, waiting for the rest), a reset, then the
    program and every image again from the start: every layer exact."""
    model = net(name)
    images = images_for(model, 2, 4)
    idle, bp = PROBS[probs]
    spec = {}

    def reset(prog, imgs):
        spec.update(dp_cocotb.reset_in_image(prog, imgs, image=image, fraction=fraction))
        spec["reply"] = prog.reply_words()
        return spec

    run = dp_cocotb.run_model(model, images, params=BUILD, seed=4, idle=idle, backpressure=bp, reset=reset)
    assert run.reset["busy_at_reset"] == 1 and run.reset["error_at_reset"] == 0
    # the earlier images' replies were out, nothing of this one
    assert run.reset["outputs_before_reset"] == image * spec["reply"]
    assert_exact(run, model, images)


@pytest.mark.sim
@pytest.mark.parametrize("name,layer,image", [("binary", 2, 0), ("kernel1", 3, 1), ("multibit", 1, 1)])
def test_reset_in_a_later_layer_then_clean_rerun(name, layer, image):
    """Reset once the earlier layers' maps of an image are out and the next layer has run a few
    cycles (its own dump not begun), then a clean rerun: every layer exact."""
    model = net(name)
    images = images_for(model, 2, 5)
    spec = {}

    def reset(prog, imgs):
        spec.update(dp_cocotb.reset_in_layer(prog, imgs, layer, image=image, wait=15))
        return spec

    run = dp_cocotb.run_model(model, images, params=BUILD, seed=5, idle=0.3, backpressure=0.3, reset=reset)
    assert run.reset["busy_at_reset"] == 1 and run.reset["error_at_reset"] == 0
    assert run.reset["outputs_before_reset"] == spec["expect_outputs"] > 0
    assert_exact(run, model, images)


# ----------------------------------------------------------------------------------------------
# The comparison and the testbench can fail


def test_corrupted_reply_word_is_reported():
    """One bit of one reply word flipped in a dumped map and one in a logit: each is reported as a
    mismatch naming its layer and image, and nothing else is."""
    model, images, run = cached_run("binary", 0)
    assert run.exact, run.report()
    prog = dpprog.compile_model(model, BUILD, dump=True)
    n = prog.reply_words()
    layer = 1
    at = sum(c.desc["dump_words"] for c in prog.layers[:layer])   # the first word of layer 1's dump
    out = list(run.tb.out)
    out[n + at] ^= 1   # image 1: slot 0 bit 0 = channel 0 of pixel (0, 0), bit plane 0
    chk = dp_cocotb.compare(prog, images, out)
    assert [(m.layer, m.name, m.image, m.what) for m in chk.mismatches] == [(layer, "l1", 1, "map")]
    m = chk.mismatches[0]
    assert m.differing == 1 and m.first == (0, 0, 0) and m.got == 1 - m.want
    assert "layer 'l1'" in str(m) and "image 1" in str(m)

    out = list(run.tb.out)
    logit0 = sum(c.desc["dump_words"] for c in prog.layers)
    out[logit0] ^= 1 << 3   # image 0, logit 0
    chk = dp_cocotb.compare(prog, images, out)
    assert [(m.layer, m.image, m.what, m.first) for m in chk.mismatches] == [(len(model.layers) - 1, 0, "logits",
                                                                              (0,))]
    assert abs(chk.mismatches[0].got - chk.mismatches[0].want) == 8
    with pytest.raises(ValueError, match="reply words"):
        dp_cocotb.compare(prog, images, run.tb.out[:-1])


def _weight_word(prog, layer: int, row: int) -> int:
    """Index in ``prog.setup`` of row ``row``'s 32-bit word of layer ``layer``'s first weight entry."""
    at = 2 + len(prog.layers) * prog.params.desc_words
    head = prog.setup[at]
    assert head & 0xFF == Op.WRITE | (DpTarget.WEIGHT << 4)
    per_entry = prog.params.entry_words(DpTarget.WEIGHT)
    return at + 2 + prog.layers[layer].w_base * per_entry + row * prog.params.word // 32


@pytest.mark.sim
def test_corrupted_weight_is_reported():
    """A whole weight word of output channel 0 of layer l1 inverted in the setup words the hardware
    receives: the mismatches start at l1, and there only in channel 0."""
    model = net("binary")
    images = images_for(model, 2, 9)
    prog = dpprog.compile_model(model, BUILD, dump=True)
    words = dp_cocotb.program_words(prog, images)
    words[_weight_word(prog, 1, 0)] ^= 0xFFFFFFFF
    tb = dp_cocotb.run_words(words, 2 * prog.reply_words(), params=BUILD, seed=9, idle=0.2, backpressure=0.2)
    chk = dp_cocotb.compare(prog, images, tb.out)
    assert chk.mismatches and min(m.layer for m in chk.mismatches) == 1
    ref = intref.run_model(model, images)
    assert np.array_equal(chk.maps[0], ref[0])
    diff = chk.maps[1] != ref[1]
    assert diff.any() and not diff[:, 1:].any()
    assert {(1, k) for k in range(2) if diff[k].any()} <= {(m.layer, m.image) for m in chk.mismatches}


@pytest.mark.sim
def test_testbench_fails_on_an_extra_word_and_on_the_error_flag():
    """The testbench's own checks bite: a word more than expected, and an unknown opcode raising
    the error flag."""
    model = net("fc_multibit")
    images = images_for(model, 1, 11)
    prog = dpprog.compile_model(model, BUILD)
    words = dp_cocotb.program_words(prog, images)
    with pytest.raises(CocotbFailure, match="run_job") as exc:
        dp_cocotb.run_words(words, prog.reply_words() - 1, params=BUILD, seed=11)
    assert "1 output words after" in exc.value.log_file.read_text()
    with pytest.raises(CocotbFailure, match="run_job") as exc:
        dp_cocotb.run_words([0xF] + words, prog.reply_words(), params=BUILD, seed=11)
    assert "error flag" in exc.value.log_file.read_text()
    tb = dp_cocotb.run_words([0xF] + words, prog.reply_words(), params=BUILD, seed=11, allow_error=True)
    assert tb.error == 1 and dp_cocotb.compare(prog, images, tb.out).exact


@pytest.mark.sim
def test_info_reply():
    info = dp_info_words(BUILD)
    tb = dp_cocotb.run_words([Op.INFO, Op.INFO], 2 * len(info), params=BUILD, seed=12, backpressure=0.5)
    assert tb.out == info + info and tb.error == 0


# ----------------------------------------------------------------------------------------------
# What the compiler refuses


def test_mcn1_runs_as_its_plain_equivalent():
    """MCNs-1 layers (one scalar per plane) run as their plain equivalents
    (:func:`binaccel.sw.dpprog.plain_equivalent`), the first layer reading the repeated image
    channel once per repeat: every map and the logits exact."""
    model = random_model(np.random.default_rng(0), mode="mcn1", planes=2)
    assert model.input_repeat == 2 and {l.mode for l in model.layers[:-1]} == {"mcn1"}
    images = images_for(model, 2, 21)
    run = dp_cocotb.run_model(model, images, params=BUILD, seed=21, idle=0.3, backpressure=0.3)
    assert_exact(run, model, images)


@pytest.mark.parametrize("mode", ["mcn"])
def test_mcn_refused_before_simulating(mode):
    """Full M-Filter MCN layers: a DpFitError with a one-line message naming the layer, raised by
    the compiler (no build, no simulation), for an MCN first layer and an MCN hidden layer."""
    with pytest.raises(dpprog.DpFitError) as exc:
        dp_cocotb.run_model(random_model(np.random.default_rng(0), mode=mode, planes=2),
                            np.zeros((1, 1, 12, 12), np.uint8), params=BUILD)
    msg = str(exc.value)
    assert msg == (f"layer 'conv1': mode '{mode}': the pipelined accelerator runs plain layers only "
                   "(MCN modulation is not in this build)")
    rng = np.random.default_rng(1)
    first = random_layer(rng, name="conv1", in_ch=1, in_h=8, in_w=8, out_ch=16, in_bits=8, pool=2)
    hidden = random_layer(rng, name="conv2", mode=mode, planes=2, in_ch=16, in_h=4, in_w=4, out_ch=16)
    fc = random_layer(rng, name="fc", kind="fc", in_ch=16, in_h=4, in_w=4, out_ch=10, out_kind="logits")
    model = IntModel(name=f"hidden-{mode}", input_shape=(1, 8, 8), layers=[first, hidden, fc], classes=10)
    with pytest.raises(dpprog.DpFitError) as exc:
        dp_cocotb.run_model(model, np.zeros((1, 1, 8, 8), np.uint8), params=BUILD)
    assert str(exc.value).startswith(f"layer 'conv2': mode '{mode}': ") and "\n" not in str(exc.value)


def test_unpooled_layer_with_8bit_outputs():
    """An unpooled layer with 8-bit outputs on 4 columns: segments 4 x 8 = 32 cycles apart."""
    model = _model(np.random.default_rng(2), [("conv", 16, 3, 1, 1, 1, "sign", 1),
                                              ("conv", 8, 3, 1, 1, 1, "requant", 8),
                                              ("fc", 4, 1, 1, 0, 1, "logits", 1)], in_shape=(1, 6, 6), name="u8")
    images = images_for(model, 1, 13)
    run = dp_cocotb.run_model(model, images, params=BUILD, seed=13)
    assert_exact(run, model, images)
