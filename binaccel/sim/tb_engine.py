"""cocotb testbench of the engine (``binaccel.hw.engine.Engine``) on Verilator.

Driven by :mod:`binaccel.sim.layer`, which writes a job (pickle) and passes its path in
``tb_params = {"job": path}``. A job holds the engine parameters, a list of layers, their inputs
(``chain``: each layer's input is the previous layer's *hardware* output), the idle and backpressure
probabilities and optionally ``reset_after`` (send that many beats of the first layer, reset the
engine in the middle of the layer, then run everything cleanly).

For every layer the host side runs as the real driver would: fold/pack (``binaccel.sw.pack``),
stream the beats in with random idle cycles, take the output beats with random backpressure,
unpack/unfold. Each layer's output must equal ``binaccel.sw.intref.run_layer`` (whole tensors).
Cycles per layer (first input beat accepted .. last output beat transferred, inclusive), the ideal
cycles and the utilisation are written to the job's ``record`` (JSON) and the outputs to ``out``.
"""

from __future__ import annotations

import json
import pickle
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from binaccel.hw.params import EngineParams
from binaccel.hw.perf import ideal_cycles, layer_cycles
from binaccel.sim.runner import load_tb_params
from binaccel.sim.streams import CycleCounter, StreamDriver, StreamMonitor, bus, reset, value_of
from binaccel.sw import intref, pack
from binaccel.sw.atomic import write_bytes_atomic


def _timeout_ns(n_in, n_out, idle, bp, latency):
    slow = 1.0 / (1.0 - max(idle, bp, 0.0))
    return int(10 * (4 * slow * (n_in + n_out) + 50 * latency + 2000))


async def _abort_layer_midway(dut, params, layer, x, n_beats, rng, idle, bp, counter):
    """Send the first ``n_beats`` beats of a layer, leave some in flight, then reset the engine."""
    beats = pack.pack_layer(layer, x, params).beats
    n_beats = min(n_beats, len(beats) - 1)
    drv = StreamDriver(dut.clk, *bus(dut, "i_stream"), idle_prob=idle, rng=random.Random(rng.random()),
                       counter=counter)
    mon = StreamMonitor(dut.clk, *bus(dut, "o_stream"), backpressure_prob=bp,
                        rng=random.Random(rng.random()), counter=counter)
    await with_timeout(drv.send_all(beats[:n_beats]), _timeout_ns(n_beats, 0, idle, bp, params.latency), "ns")
    await ClockCycles(dut.clk, rng.randrange(1, 3 * params.latency))
    mon.stop()
    assert value_of(dut.busy) == 1, "the engine should be busy in the middle of a layer"
    dut.i_stream__valid.value = 0
    await reset(dut.clk, dut.rst, cycles=2)
    await RisingEdge(dut.clk)
    assert value_of(dut.busy) == 0 and value_of(dut.o_stream__valid) == 0, "reset did not clear the engine"
    return n_beats, len(mon.beats)


@cocotb.test()
async def run_job(dut):
    """Run the job's layers on the engine and check every output tensor against intref."""
    job_path = load_tb_params({})["job"]
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    params = EngineParams(**job["params"])
    idle, bp = float(job["idle"]), float(job["backpressure"])
    rng = random.Random(cocotb.RANDOM_SEED)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    await reset(dut.clk, dut.rst)
    await RisingEdge(dut.clk)
    counter = CycleCounter(dut.clk)
    record = {"engine": params.as_dict(), "config": params.tag, "seed": cocotb.RANDOM_SEED, "idle": idle,
              "backpressure": bp, "layers": []}

    layers, inputs = job["layers"], job["inputs"]
    if job.get("reset_after") is not None:
        sent, got = await _abort_layer_midway(dut, params, layers[0], inputs[0], int(job["reset_after"]), rng,
                                              idle, bp, counter)
        record["reset"] = {"beats_sent_before_reset": sent, "outputs_seen_before_reset": got}

    outputs, failures = [], []
    x = inputs[0]
    for i, layer in enumerate(layers):
        if not job["chain"]:
            x = inputs[i]
        pk = pack.pack_layer(layer, x, params)
        in_beats = pk.beats
        drv = StreamDriver(dut.clk, *bus(dut, "i_stream"), idle_prob=idle, rng=random.Random(rng.random()),
                           counter=counter)
        mon = StreamMonitor(dut.clk, *bus(dut, "o_stream"), backpressure_prob=bp,
                            rng=random.Random(rng.random()), counter=counter)
        send = cocotb.start_soon(drv.send_all(in_beats))
        beats = await with_timeout(mon.recv(pk.out_beats),
                                   _timeout_ns(len(in_beats), pk.out_beats, idle, bp, params.latency), "ns")
        await send
        await RisingEdge(dut.clk)
        mon.stop()
        cycles = mon.cycles[-1] - drv.sent_cycles[0] + 1
        y = pack.unfold_outputs(layer, pack.unpack_outputs(pk, beats))
        ref = intref.run_layer(layer, x)
        ok = bool(y.shape == ref.shape and np.array_equal(y, ref))
        if not ok:
            bad = int(np.sum(y != ref)) if y.shape == ref.shape else -1
            failures.append(f"layer {i} ({layer.name}): {bad} of {ref.size} values differ from intref")
        n = x.shape[0]
        ideal = ideal_cycles(layer, params.rows, params.cols, params.word, n=n)
        model = layer_cycles(layer, params.rows, params.cols, params.word, n=n, params=params)
        record["layers"].append({
            "layer": layer.name, "kind": layer.kind, "mode": layer.mode, "in_bits": layer.in_bits, "images": n,
            "in_beats": len(in_beats), "out_beats": pk.out_beats, "cycles": cycles, "ideal_cycles": ideal,
            "utilisation": ideal / cycles, "model_cycles": model, "bit_exact": ok,
        })
        dut._log.info("layer %s: %d cycles (model without stalls %d), ideal %.1f, utilisation %.3f, %s",
                      layer.name, cycles, model, ideal, ideal / cycles, "bit-exact" if ok else "MISMATCH")
        outputs.append(y)
        x = y

    # nothing more comes out, and no protocol error was flagged
    mon = StreamMonitor(dut.clk, *bus(dut, "o_stream"), counter=counter)
    await ClockCycles(dut.clk, 2 * params.latency)
    mon.stop()
    extra = len(mon.beats)
    error = value_of(dut.error)
    record["extra_output_beats"], record["error_flag"] = extra, error
    write_bytes_atomic(job["record"], json.dumps(record, indent=1).encode())
    write_bytes_atomic(job["out"], pickle.dumps(outputs))
    assert not failures, "; ".join(failures)
    assert extra == 0, f"{extra} unexpected output beats after the last layer"
    assert error == 0, "the engine flagged a stream error"
