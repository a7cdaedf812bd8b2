"""The cocotb testbenches on a second simulator: Icarus Verilog against Verilator.

The same testbench, build parameters, seed and stimulus run on both simulators
(``binaccel.sim.runner``, ``sim="verilator"`` / ``sim="icarus"``); each run checks its outputs
against the numpy reference (``binaccel.sw.intref``) itself, and the tests here compare the two
simulators' recorded outputs as whole tensors (``np.array_equal``) and word lists (``==``), with
the cycle counts: only the wall time may differ.

* Engine (``sim/tb_engine.py`` via ``binaccel.sim.layer``), the r2c3w8 build: the layer kinds of
  ``tests/sim/test_sim_layer.py`` (plain binary conv, stride 2 with padding and pooling, 1x1,
  MCN, MCN on 4-bit inputs to requant, MCNs-1, 8-bit first layers, FC to logits and FC on 2-bit
  inputs) in one simulation, random idle and backpressure. Default tier: seed 0; ``-m sim``: two
  more seeds, the two-stage-PE build, and a whole random MCNs-1 model layer after layer.
* The pipelined accelerator (``sim/tb_dp.py`` via ``binaccel.sim.dp_cocotb``, the default build of
  ``tests/sim/test_dp_cocotb.py``), ``-m sim``: the small networks ``fc_multibit`` (binary conv,
  stride 2 padding 0 to 7-bit requant, FC on 7-bit inputs) and ``binary`` (pooled first layer,
  stride 2, 1x1, FC), every word of the reply, every dumped map and the logits, with idle and
  backpressure.
* The time-zero regression (``tests/sim/time_zero_designs.py``, the construct found by the
  accelerator): combinational logic whose inputs keep their initial values is evaluated at time
  zero on both simulators.

Icarus is part of the set-up (``make setup`` installs the Debian package ``iverilog``): when it is
missing the tests fail, saying how to install it.
"""

from __future__ import annotations

import re
import shutil
import time

import numpy as np
import pytest

from binaccel.hw import verilog as hw_verilog
from binaccel.sim import dp_cocotb
from binaccel.sim.layer import run_layers, run_model
from binaccel.sim.runner import ICARUS_MISSING, build_component, run_cocotb
from binaccel.sw import intref
from binaccel.sw.randmodel import random_model
from tests.sim.test_dp_cocotb import BUILD, PROBS, images_for, net
from tests.sim.test_sim_layer import CASES, CONFIGS, _cases
from tests.sim.time_zero_designs import TimeZeroHold

SIMS = ("verilator", "icarus")


@pytest.fixture(autouse=True)
def icarus_installed():
    """Fail (not skip) without Icarus: it is part of the set-up."""
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        pytest.fail(ICARUS_MISSING, pytrace=False)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _engine_both(layers, xs, *, config, seed, idle=0.3, backpressure=0.3, chain=False):
    runs, wall = {}, {}
    for sim in SIMS:
        runs[sim], wall[sim] = _timed(lambda: run_layers(layers, xs, chain=chain, seed=seed, idle=idle,
                                                         backpressure=backpressure, sim=sim, **CONFIGS[config]))
    print(f"engine {config} seed {seed}, {len(layers)} layers: " +
          ", ".join(f"{sim} {wall[sim]:.1f} s" for sim in SIMS))
    return runs["verilator"], runs["icarus"]


def _assert_engine_equal(ver, ica, layers, refs):
    assert len(ver.outputs) == len(ica.outputs) == len(layers)
    for layer, yv, yi, ref in zip(layers, ver.outputs, ica.outputs, refs):
        assert yv.dtype == yi.dtype == np.int64, layer.name
        assert yv.shape == yi.shape == ref.shape, layer.name
        assert np.array_equal(yv, yi), f"{layer.name}: Verilator and Icarus differ"
        assert np.array_equal(yi, ref), f"{layer.name}: Icarus differs from intref"
    # the same stimulus met the same design: the same cycles, layer by layer
    assert ver.cycles == ica.cycles
    assert ver.record["error_flag"] == ica.record["error_flag"] == 0
    assert ver.record["extra_output_beats"] == ica.record["extra_output_beats"] == 0


def test_engine_layer_kinds_same_on_both():
    """Default tier: every layer kind of test_sim_layer on the r2c3w8 engine, seed 0."""
    layers, xs = _cases(0)
    assert [layer.name for layer in layers] == list(CASES)
    ver, ica = _engine_both(layers, xs, config="r2c3w8", seed=0)
    _assert_engine_equal(ver, ica, layers, [intref.run_layer(layer, x) for layer, x in zip(layers, xs)])


@pytest.mark.sim
@pytest.mark.parametrize("config,seed", [("r2c3w8", 1), ("r2c3w8", 2), ("r2c3w8-pe_stages2", 0)])
def test_engine_layer_kinds_more(config, seed):
    layers, xs = _cases(seed)
    ver, ica = _engine_both(layers, xs, config=config, seed=seed, idle=0.5, backpressure=0.2)
    _assert_engine_equal(ver, ica, layers, [intref.run_layer(layer, x) for layer, x in zip(layers, xs)])


@pytest.mark.sim
def test_engine_model_mcn1_same_on_both():
    """A whole random MCNs-1 model (8-bit first layer, binary convs, FC logits), each layer fed the
    previous layer's hardware output."""
    rng = np.random.default_rng(21)
    model = random_model(rng, mode="mcn1", planes=2)
    images = rng.integers(0, 256, size=(2, 1, 12, 12), dtype=np.int64).astype(np.uint8)
    x = intref.model_input(model, images)
    ver, ica = _engine_both(model.layers, [x], config="r2c3w8", seed=3, chain=True)
    _assert_engine_equal(ver, ica, model.layers, intref.run_model(model, images))
    outs, _ = run_model(model, images, seed=3, sim="icarus", **CONFIGS["r2c3w8"])
    assert all(np.array_equal(a, b) for a, b in zip(outs, ica.outputs))


@pytest.mark.sim
@pytest.mark.parametrize("name,n_images", [("fc_multibit", 1), ("binary", 2)])
def test_dp_network_same_on_both(name, n_images):
    """The pipelined accelerator on a small network: the whole reply (every word, its cycle),
    every dumped map and the logits are equal on both simulators and to intref."""
    model = net(name)
    images = images_for(model, n_images, 1)
    idle, bp = PROBS[1]
    runs, wall = {}, {}
    for sim in SIMS:
        runs[sim], wall[sim] = _timed(lambda: dp_cocotb.run_model(model, images, params=BUILD, seed=1, idle=idle,
                                                                  backpressure=bp, sim=sim))
    print(f"dp {name}, {n_images} image(s), {ver_cycles(runs)} cycles: " + ", ".join(f"{sim} {wall[sim]:.1f} s (run {runs[sim].tb.wall_s:.1f} s)" for sim in SIMS))
    ver, ica = runs["verilator"], runs["icarus"]
    assert ver.exact and ica.exact, f"mismatches: verilator {ver.report()!r}, icarus {ica.report()!r}"
    assert ver.tb.out == ica.tb.out
    assert ver.tb.stamps == ica.tb.stamps and ver.tb.total_cycles == ica.tb.total_cycles
    refs = intref.run_model(model, images)
    assert sorted(ver.maps) == sorted(ica.maps) == list(range(len(model.layers) - 1))
    for i in ver.maps:
        assert np.array_equal(ver.maps[i], ica.maps[i]) and np.array_equal(ica.maps[i], refs[i]), model.layers[i].name
    assert np.array_equal(ver.logits, ica.logits)
    assert np.array_equal(ica.logits, intref.predict(model, images))
    assert np.array_equal(ver.check.layer_cycles, ica.check.layer_cycles)
    assert np.array_equal(ver.check.cycles, ica.check.cycles)


# --------------------------------------------------------------------------------------------------
# The time-zero construct (binaccel.hw.verilog.convert)


def ver_cycles(runs) -> int:
    return runs["verilator"].tb.total_cycles


def test_time_zero_text():
    """The Icarus text sets Yosys's time-zero dummy in ``initial #0``; otherwise it is Amaranth's
    text (the Verilator builds keep it unchanged)."""
    plain = hw_verilog.convert(TimeZeroHold(), name="time_zero")
    fixed = hw_verilog.convert(TimeZeroHold(), name="time_zero", time_zero=True)
    dummies = re.findall(r"reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) *= 0;", plain)
    assert len(dummies) == 1 and "always @*" in plain
    assert f"reg {dummies[0]};" in fixed and f"initial #0 {dummies[0]} = 1'h0;" in fixed
    assert "= 0;" not in fixed.replace(f"reg {dummies[0]};", "")
    assert fixed.replace(f"reg {dummies[0]};\n  initial #0 {dummies[0]} = 1'h0;", f"reg {dummies[0]} = 0;") == plain


@pytest.mark.parametrize("sim", SIMS)
def test_comb_logic_evaluated_at_time_zero(sim):
    """A reset_less register loaded through logic whose inputs keep their initial values reads its
    initial value from the first edge on (the Verilog-2005 text left it x on Icarus)."""
    build = build_component(TimeZeroHold, name="time_zero", sim=sim)
    assert build.sim == sim and build.executable.is_file()
    run_cocotb(build, test_module="tests.sim.tb_time_zero", seed=0)
