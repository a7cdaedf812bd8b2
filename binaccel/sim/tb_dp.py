"""cocotb testbench of the pipelined accelerator (``binaccel.hw.dp.accel.DpAccelerator``) on Verilator.

Driven by :mod:`binaccel.sim.dp_cocotb`, which writes a job (pickle) and passes its path in
``tb_params = {"job": path}``. A job holds the input words (the program's setup words and one RUN
command per image, built by :mod:`binaccel.sw.dpprog`), the number of output words expected, the
idle and backpressure probabilities, a cycle budget, and optionally ``reset``: a reset in the
middle of a run followed by a clean rerun from the start. ``reset = {"after_words": k,
"after_outputs": m, "wait": w}``: send the first ``k`` words, wait until ``m`` output words came
out, let the accelerator work ``w`` cycles more, reset it, then send every word again (the
returned outputs are those of the clean rerun).

The testbench streams the words in (:class:`~binaccel.sim.streams.StreamDriver`, random idle
cycles with garbage on the idle payload), takes the output words
(:class:`~binaccel.sim.streams.StreamMonitor`, random backpressure; the monitor fails the test if
the payload changes or ``valid`` drops before a transfer), then keeps taking words for
``tail`` cycles and fails if any further word comes out, if the error flag is high or if the
accelerator is still busy. It writes the output words, their transfer cycles and the reset
record to ``job["out"]`` (pickle) before those checks, so a failing run leaves its record. The
comparison with :mod:`binaccel.sw.intref` is the caller's, on the decoded reply.
"""

from __future__ import annotations

import pickle
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from binaccel.sim.runner import load_tb_params
from binaccel.sim.streams import CycleCounter, StreamDriver, StreamMonitor, bus, reset, value_of
from binaccel.sw.atomic import write_bytes_atomic

#: Clock period of the simulation (ns); the job's cycle budget is converted with it.
PERIOD_NS = 10


def _streams(dut, idle, bp, rng, counter):
    drv = StreamDriver(dut.clk, *bus(dut, "i_stream"), idle_prob=idle, rng=random.Random(rng.random()),
                       counter=counter)
    mon = StreamMonitor(dut.clk, *bus(dut, "o_stream"), backpressure_prob=bp, rng=random.Random(rng.random()),
                        counter=counter)
    return drv, mon


async def _reset_mid_run(dut, words, job, idle, bp, rng, counter, budget_ns) -> dict:
    """Run the first part of the job, reset the accelerator while it works, check the reset cleared it."""
    spec = job["reset"]
    k = min(int(spec["after_words"]), len(words))
    m = int(spec.get("after_outputs", 0))
    drv, mon = _streams(dut, idle, bp, rng, counter)
    send = cocotb.start_soon(drv.send_all(words[:k]))
    if m:
        await with_timeout(mon.recv(m), budget_ns, "ns")
    await with_timeout(send, budget_ns, "ns")
    await ClockCycles(dut.clk, int(spec.get("wait", 20)))
    mon.stop()
    rec = {"words_sent_before_reset": k, "outputs_before_reset": len(mon.beats),
           "busy_at_reset": value_of(dut.busy), "error_at_reset": value_of(dut.error)}
    dut.i_stream__valid.value = 0
    await reset(dut.clk, dut.rst, cycles=2)
    await RisingEdge(dut.clk)
    assert value_of(dut.busy) == 0 and value_of(dut.o_stream__valid) == 0 and value_of(dut.error) == 0, \
        "the reset did not clear the accelerator (busy, o_stream valid or error still high)"
    return rec


@cocotb.test()
async def run_job(dut):
    """Stream the job's words through the accelerator and record the output words."""
    with open(load_tb_params({})["job"], "rb") as f:
        job = pickle.load(f)
    words, n_out = [int(w) for w in job["words"]], int(job["n_out"])
    idle, bp = float(job["idle"]), float(job["backpressure"])
    budget_ns = PERIOD_NS * int(job["max_cycles"])
    tail = int(job.get("tail", 200))
    rng = random.Random(cocotb.RANDOM_SEED)

    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.i_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    await reset(dut.clk, dut.rst)
    await RisingEdge(dut.clk)
    counter = CycleCounter(dut.clk)
    record = {"seed": cocotb.RANDOM_SEED, "idle": idle, "backpressure": bp}
    if job.get("reset") is not None:
        record["reset"] = await _reset_mid_run(dut, words, job, idle, bp, rng, counter, budget_ns)

    drv, mon = _streams(dut, idle, bp, rng, counter)
    start = counter.count
    send = cocotb.start_soon(drv.send_all(words))
    out = await with_timeout(mon.recv(n_out), budget_ns, "ns")
    await with_timeout(send, budget_ns, "ns")
    stamps = [c - start for c in mon.cycles[:n_out]]
    # a further word, if the design sends one, comes out while the monitor keeps taking words
    await ClockCycles(dut.clk, tail)
    mon.stop()
    extra = len(mon.beats) - n_out
    record.update(out=out, stamps=stamps, in_stamps=[c - start for c in drv.sent_cycles], extra_words=extra,
                  extra_out=mon.beats[n_out:], error=value_of(dut.error), busy=value_of(dut.busy),
                  total_cycles=counter.count - start)
    write_bytes_atomic(job["out"], pickle.dumps(record))
    assert extra == 0, f"{extra} output words after the {n_out} expected: {[hex(w) for w in mon.beats[n_out:][:8]]}"
    assert record["error"] == 0 or job.get("allow_error"), "the accelerator raised its error flag"
    assert record["busy"] == 0, f"the accelerator is still busy {tail} cycles after the last output word"
