"""Engine on Verilator through cocotb (sim/tb_engine.py via binaccel.sim.layer): every output integer
equals binaccel.sw.intref, with random idle on the input stream and random output backpressure.

One Verilator build per engine configuration (build/sim/engine-<config>/, shared by all tests);
every layer case runs in one cocotb simulation per seed. Default suite: 3 seeds on the smallest
configuration (r2c3w8, one build); ``-m sim``: the same on the other configurations; ``-m slow``:
more seeds, a larger batch and the largest supported layer on the default build.
"""

import json

import numpy as np
import pytest

from binaccel.hw.params import EngineParams
from binaccel.hw.perf import ideal_cycles, layer_cycles
from binaccel.sim.layer import run_layer, run_layers, run_model
from binaccel.sw import intref
from binaccel.sw.randmodel import random_input, random_layer, random_model

CONFIGS = {
    "r2c3w8": dict(rows=2, cols=3, word=8),     # odd sizes: partial words, tiles and group tiles
    "r4c4w32": dict(rows=4, cols=4, word=32),   # the default build
    # two-stage PEs (the iCEBreaker builds): one cycle more per layer run, the same integers
    "r2c3w8-pe_stages2": dict(rows=2, cols=3, word=8, params={"pe_stages": 2}),
}
#: The configurations as test parameters: the smallest build (r2c3w8) in the default tier, the
#: others (one more Verilator build each) under ``-m sim``.
CONFIG_PARAMS = [pytest.param(c, marks=() if c == "r2c3w8" else pytest.mark.sim) for c in CONFIGS]

#: Layer cases (randmodel.random_layer keyword arguments): SiMaN-style plain binary conv, MCN with
#: full M-Filters, MCNs-1, multi-bit first layers, FC with logits; strides 1/2, padding 0/1,
#: kernels 1/3, channel counts that are not multiples of the word (5, 33).
CASES = {
    "siman-c5-k3-s1-p1": dict(in_ch=5, in_h=6, in_w=5, out_ch=6, kernel=3, stride=1, padding=1),
    "siman-c33-k3-s2-p1-pool": dict(in_ch=33, in_h=8, in_w=8, out_ch=5, kernel=3, stride=2, padding=1, pool=2),
    "siman-c33-k1-s1-p0": dict(in_ch=33, in_h=3, in_w=4, out_ch=9, kernel=1, stride=1, padding=0),
    "mcn-c5-k3-s1-p1": dict(in_ch=5, in_h=5, in_w=5, out_ch=8, kernel=3, stride=1, padding=1, mode="mcn",
                            planes=4, m_bits=8),
    "mcn-c33-k3-s2-p0-in4": dict(in_ch=33, in_h=7, in_w=7, out_ch=6, kernel=3, stride=2, padding=0, mode="mcn",
                                 planes=2, m_bits=6, in_bits=4, out_kind="requant", out_bits=4),
    "mcns1-c8-k3-s1-p1": dict(in_ch=8, in_h=5, in_w=4, out_ch=8, kernel=3, stride=1, padding=1, mode="mcn1",
                              planes=4, m_bits=8),
    "first-in8-c1-k3-s1-p1-pool": dict(in_ch=1, in_h=8, in_w=8, out_ch=4, kernel=3, stride=1, padding=1,
                                       in_bits=8, pool=2),
    "mcn-first-in8-c2-k3-s2-p1": dict(in_ch=2, in_h=6, in_w=6, out_ch=4, kernel=3, stride=2, padding=1,
                                      mode="mcn", planes=2, m_bits=8, in_bits=8),
    "fc-logits-c8x3x3": dict(kind="fc", in_ch=8, in_h=3, in_w=3, out_ch=10, out_kind="logits"),
    "fc-in2-requant-c33": dict(kind="fc", in_ch=33, in_h=1, in_w=1, out_ch=5, in_bits=2, out_kind="requant",
                               out_bits=8),
}


def _cases(seed, names=None, n=2):
    rng = np.random.default_rng(1000 + seed)
    layers, xs = [], []
    for name in names or CASES:
        layer = random_layer(rng, name=name, **CASES[name])
        layers.append(layer)
        xs.append(random_input(rng, layer, n))
    return layers, xs


def _check(run, layers, xs):
    assert len(run.outputs) == len(layers)
    for layer, x, y in zip(layers, xs, run.outputs):
        ref = intref.run_layer(layer, x)
        assert y.shape == ref.shape and np.array_equal(y, ref), layer.name


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("config", CONFIG_PARAMS)
def test_layers_bit_exact(config, seed):
    layers, xs = _cases(seed)
    run = run_layers(layers, xs, chain=False, seed=seed, idle=0.3, backpressure=0.3, **CONFIGS[config])
    _check(run, layers, xs)
    rec = json.loads(run.record_path.read_text())
    assert rec["config"] == config and rec["idle"] == 0.3 and rec["error_flag"] == 0
    for r, layer, x in zip(rec["layers"], layers, xs):
        cfg = CONFIGS[config]
        assert r["layer"] == layer.name and r["bit_exact"]
        assert r["ideal_cycles"] == pytest.approx(ideal_cycles(layer, cfg["rows"], cfg["cols"], cfg["word"], n=2))
        assert r["utilisation"] == pytest.approx(r["ideal_cycles"] / r["cycles"])
        # stalls only ever add cycles to the unstalled figure
        assert r["cycles"] >= r["model_cycles"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 11))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_layers_bit_exact_more_seeds(config, seed):
    layers, xs = _cases(seed, n=3)
    idle, bp = [(0.0, 0.0), (0.5, 0.1), (0.1, 0.6), (0.3, 0.3)][seed % 4]
    run = run_layers(layers, xs, chain=False, seed=seed, idle=idle, backpressure=bp, **CONFIGS[config])
    _check(run, layers, xs)


@pytest.mark.parametrize("config", CONFIG_PARAMS)
def test_cycles_equal_analytic_model(config):
    """Without idle and backpressure the measured cycles equal hw.perf.layer_cycles exactly."""
    names = ["siman-c5-k3-s1-p1", "siman-c33-k3-s2-p1-pool", "mcn-c5-k3-s1-p1", "mcns1-c8-k3-s1-p1",
             "first-in8-c1-k3-s1-p1-pool", "fc-logits-c8x3x3"]
    layers, xs = _cases(7, names)
    cfg = CONFIGS[config]
    run = run_layers(layers, xs, chain=False, seed=7, idle=0.0, backpressure=0.0, **cfg)
    _check(run, layers, xs)
    for layer, cycles in zip(layers, run.cycles):
        assert cycles == layer_cycles(layer, cfg["rows"], cfg["cols"], cfg["word"], n=2,
                                      params=cfg.get("params")), layer.name


def test_reset_in_the_middle_of_a_layer():
    """Reset during a layer (beats in flight, outputs pending), then a clean rerun: same result."""
    layers, xs = _cases(5, ["mcn-c5-k3-s1-p1"])
    n_beats = 60
    run = run_layers(layers, xs, chain=False, seed=5, reset_after=n_beats, **CONFIGS["r2c3w8"])
    assert run.record["reset"]["beats_sent_before_reset"] == n_beats  # (the testbench checked busy=1)
    y = run.outputs[0]
    assert np.array_equal(y, intref.run_layer(layers[0], xs[0]))
    y2, _ = run_layer(layers[0], xs[0], seed=6, **CONFIGS["r2c3w8"])
    assert np.array_equal(y2, y)


@pytest.mark.parametrize("mode,planes", [("plain", 1), ("mcn", 2), ("mcn1", 2)])
def test_run_model_every_layer(mode, planes):
    """A whole random model (8-bit first layer, binary conv, FC logits): the host feeds each layer the
    previous layer's hardware output; every layer's output equals intref.run_model."""
    rng = np.random.default_rng(21)
    model = random_model(rng, mode=mode, planes=planes)
    images = rng.integers(0, 256, size=(2, 1, 12, 12), dtype=np.int64).astype(np.uint8)
    outs, cycles = run_model(model, images, seed=3, **CONFIGS["r2c3w8"])
    refs = intref.run_model(model, images)
    assert len(outs) == len(refs) == len(cycles) == len(model.layers)
    for layer, y, ref in zip(model.layers, outs, refs):
        assert np.array_equal(y, ref), layer.name


def test_refuses_unsupported_layer_before_simulating():
    rng = np.random.default_rng(0)
    layer = random_layer(rng, name="int8-first", in_ch=1, in_h=4, in_w=4, out_ch=2, w_bits=8, in_bits=8)
    with pytest.raises(ValueError, match="layer 'int8-first': field 'w_bits'"):
        run_layer(layer, random_input(rng, layer, 1), **CONFIGS["r2c3w8"])


@pytest.mark.slow
def test_largest_supported_layer_default_build():
    """fan-in = max_fan_in (512 channels x 3x3), 8-bit input, all taps agreeing, M-Filter at its
    largest factor: the accumulator reaches the documented bound without overflow."""
    p = EngineParams()
    rng = np.random.default_rng(9)
    c = p.max_fan_in // 9
    layer = random_layer(rng, name="largest-mcn", mode="mcn", in_ch=c, in_h=3, in_w=3, out_ch=p.max_planes,
                         kernel=3, stride=1, padding=0, planes=p.max_planes, m_bits=p.m_bits, in_bits=8,
                         out_kind="logits")
    layer.mfilter[:] = (1 << p.m_bits) - 1
    layer.weights[:] = 1
    layer.mul[:] = 1
    layer.add[:] = 0
    x = np.full((1, c, 3, 3), 255, dtype=np.int64)
    y, _ = run_layer(layer, x, idle=0.1, backpressure=0.1, **CONFIGS["r4c4w32"])
    ref = intref.run_layer(layer, x)
    assert np.array_equal(y, ref) and int(ref.max()) == p.acc_bound


@pytest.mark.slow
def test_fast_backend_matches():
    """The fast path (compiled C++ stream driver) gives the same outputs and, without idle, the
    analytic cycles."""
    layers, xs = _cases(4)
    run = run_layers(layers, xs, chain=False, seed=4, idle=0.0, backpressure=0.0, backend="fast",
                     **CONFIGS["r2c3w8"])
    _check(run, layers, xs)
    for layer, c in zip(layers, run.cycles):
        assert c == layer_cycles(layer, 2, 3, 8, n=2), layer.name
    run = run_layers(layers, xs, chain=False, seed=5, idle=0.4, backpressure=0.4, backend="fast",
                     **CONFIGS["r2c3w8"])
    _check(run, layers, xs)
