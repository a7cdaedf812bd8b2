"""The whole accelerator (binaccel.hw.top.Accelerator) on Verilator through cocotb (binaccel.sim.top).

Whole random networks (plain, mcn, mcn1, multi-bit requant layers, 1x1 and strided kernels) with
several images per run, random idle cycles and backpressure: the logits and every intermediate
layer (dumped by the accelerator) must equal binaccel.sw.intref.run_model. A mid-run reset followed
by a clean rerun gives the same results. One build of the default parameters is shared by all
tests (and by the fast path and the MNIST runs).
"""

from __future__ import annotations

import numpy as np
import pytest

from binaccel.hw.perf import layer_cycles
from binaccel.hw.seq import AccelParams
from binaccel.sim import top
from binaccel.sw import intref, program
from binaccel.sw.intmodel import IntModel
from binaccel.sw.randmodel import random_layer, random_model

P = AccelParams()


@pytest.fixture(scope="module")
def build():
    return top.accel_build(P)


def mixed_model(rng) -> IntModel:
    """8-bit input -> 4-bit requant (pool) -> 1x1 mcn to 8-bit requant -> strided mcn1 sign -> fc."""
    layers = [
        random_layer(rng, name="conv1", in_ch=2, in_h=10, in_w=10, out_ch=6, in_bits=8, pool=2,
                     out_kind="requant", out_bits=4),
        random_layer(rng, name="conv2", mode="mcn", planes=2, in_ch=6, in_h=5, in_w=5, out_ch=10, kernel=1,
                     padding=0, in_bits=4, out_kind="requant", out_bits=8, m_bits=6),
        random_layer(rng, name="conv3", mode="mcn1", planes=3, in_ch=10, in_h=5, in_w=5, out_ch=9, stride=2,
                     in_bits=8, m_bits=5),
        random_layer(rng, name="fc", kind="fc", in_ch=9, in_h=3, in_w=3, out_ch=7, out_kind="logits"),
    ]
    m = IntModel(name="mixed", input_shape=(2, 10, 10), layers=layers, classes=7)
    m.validate()
    return m


def _images(rng, model, n):
    return rng.integers(0, 256, size=(n, *model.input_shape)).astype(np.uint8)


def _check(model, images, res):
    refs = intref.run_model(model, images)
    assert np.array_equal(res.logits, refs[-1].reshape(len(images), -1))
    assert sorted(res.outputs) == list(range(len(model.layers) - 1))
    for i, y in res.outputs.items():
        assert np.array_equal(y, refs[i]), f"layer {model.layers[i].name}"


@pytest.mark.parametrize("mode,planes,seed", [("plain", 1, 1), ("mcn", 2, 2), ("mcn1", 3, 3)])
def test_random_model(build, mode, planes, seed):
    rng = np.random.default_rng(seed)
    model = random_model(rng, mode=mode, planes=planes)
    images = _images(rng, model, 3)
    res = top.run_model(model, images, params=P, dump=True, idle=0.3, backpressure=0.3, seed=seed)
    _check(model, images, res)
    # each layer takes at least what the engine alone needs for it
    e = P.engine
    for layer, c in zip(model.layers, res.cycles_per_layer):
        assert c >= layer_cycles(layer, e.rows, e.cols, e.word, params=e)
    assert res.record_path.is_file() and res.record["utilisation"] > 0


def test_multibit_requant_model(build):
    rng = np.random.default_rng(7)
    model = mixed_model(rng)
    images = _images(rng, model, 2)
    res = top.run_model(model, images, params=P, dump=True, idle=0.2, backpressure=0.4, seed=4)
    _check(model, images, res)


def test_reset_mid_run_then_rerun(build):
    rng = np.random.default_rng(11)
    model = random_model(rng, mode="mcn", planes=2)
    images = _images(rng, model, 2)
    pr = program.compile_model(model, P)
    # reset while the first image is being computed (all of its words sent, then 300 cycles)
    k = len(pr.setup_words) + len(pr.image_words(images[0]))
    res = top.run_model(model, images, params=P, dump=True, reset_after=k, seed=5, idle=0.1, backpressure=0.1)
    assert res.record["reset"]["busy_at_reset"] == 1
    _check(model, images, res)


def test_logits_without_dumps_and_stats_match_cycles(build):
    """No dumps: only logits and counters come back; the per-image counter covers the layers."""
    rng = np.random.default_rng(12)
    model = random_model(rng, mode="plain")
    images = _images(rng, model, 4)
    res = top.run_model(model, images, params=P, seed=6)
    assert np.array_equal(res.logits, intref.predict(model, images))
    assert res.outputs == {}
    assert np.all(res.image_cycles > res.layer_cycles.sum(axis=1))
    # without idle/backpressure every image after the first takes the same number of cycles
    assert len(set(res.image_cycles[1:].tolist())) == 1


@pytest.mark.parametrize("stream,seed", [(True, 21), (["conv2"], 22)])
def test_streamed_weights(build, stream, seed):
    """Weights streamed with every image through the ring of the weight buffer, while layers run."""
    rng = np.random.default_rng(seed)
    model = random_model(rng, mode="mcn", planes=2)
    images = _images(rng, model, 3)
    res = top.run_model(model, images, params=P, dump=True, stream=stream, idle=0.3, backpressure=0.3, seed=seed)
    _check(model, images, res)
    assert res.record["streamed_layers"] == (["conv1", "conv2", "fc"] if stream is True else ["conv2"])


def test_info_and_bad_command(build):
    """INFO returns the build parameters; an unknown opcode raises the error flag and is skipped."""
    from binaccel.hw.top import info_words

    info = info_words(P)
    out, _, _, _, extra = top.run_words([0x3, 0xF, 0x0, 0x3], 2 * len(info), params=P, allow_error=True)
    assert out == info + info and extra["error"] == 1
    out, _, _, _, extra = top.run_words([0x0, 0x3], len(info), params=P)
    assert out == info and extra["error"] == 0


def test_fit_error_before_simulating():
    model = random_model(np.random.default_rng(0))
    with pytest.raises(program.FitError, match="layer conv1: input feature map"):
        top.run_model(model, _images(np.random.default_rng(0), model, 1), params=dict(fm_depth=64))


@pytest.mark.parametrize("params", [{}, dict(rows=2, cols=3, word=16, max_in_bits=1, fm_depth=300, w_depth=100)],
                         ids=["default", "binary-small"])
def test_lint_clean(params):
    top.lint(params)   # raises LintError listing every warning without a written waiver


@pytest.mark.sim   # a second accelerator configuration (one more Verilator build)
def test_icebreaker_board_build():
    """The accelerator as built for the iCEBreaker (hw.sweep.ACCEL_BASE: plain widths, no tap pairs,
    two PE stages) at 1x1x16: a plain network's every layer equals intref, with stalls."""
    from binaccel.hw import sweep

    p = AccelParams(**{**sweep.ACCEL_BASE["icebreaker"], "rows": 1, "cols": 1, "word": 16})
    assert p.pe_stages == 2 and p.pair_reads == 0
    rng = np.random.default_rng(31)
    model = random_model(rng, mode="plain")
    images = _images(rng, model, 2)
    res = top.run_model(model, images, params=p, dump=True, idle=0.3, backpressure=0.3, seed=31)
    _check(model, images, res)
    for layer, c in zip(model.layers, res.cycles_per_layer):
        assert c >= layer_cycles(layer, 1, 1, 16, params=p.engine)
