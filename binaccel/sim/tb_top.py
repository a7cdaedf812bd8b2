"""cocotb testbench of the accelerator (``binaccel.hw.top.Accelerator``) on Verilator.

Driven by :mod:`binaccel.sim.top`, which writes a job (pickle) and passes its path in
``tb_params = {"job": path}``. A job holds the input words (program set-up plus one RUN command per
image, built by :mod:`binaccel.sw.program`), the number of output words expected, the idle and
backpressure probabilities and optionally ``reset_after``: send that many input words, let the
accelerator work for a while, reset it in the middle of the run, then send every word again from
the start (the returned outputs are those of the clean rerun).

The testbench streams the words in (random idle cycles), takes the output words (random
backpressure, protocol checked), checks that no further word comes out and that the error flag
is low, and writes the output words and their transfer cycles to ``job["out"]`` (pickle). The
comparison with :mod:`binaccel.sw.intref` is done by the caller on the decoded outputs.
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


@cocotb.test()
async def run_job(dut):
    """Stream the job's words through the accelerator and record the output words."""
    with open(load_tb_params({})["job"], "rb") as f:
        job = pickle.load(f)
    words, n_out = job["words"], int(job["n_out"])
    idle, bp = float(job["idle"]), float(job["backpressure"])
    budget_ns = 10 * int(job["max_cycles"])
    rng = random.Random(cocotb.RANDOM_SEED)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    await reset(dut.clk, dut.rst)
    await RisingEdge(dut.clk)
    counter = CycleCounter(dut.clk)
    record = {"seed": cocotb.RANDOM_SEED, "idle": idle, "backpressure": bp}

    if job.get("reset_after") is not None:
        k = min(int(job["reset_after"]), len(words) - 1)
        drv = StreamDriver(dut.clk, *bus(dut, "i_stream"), idle_prob=idle, rng=random.Random(rng.random()),
                           counter=counter)
        mon = StreamMonitor(dut.clk, *bus(dut, "o_stream"), backpressure_prob=bp,
                            rng=random.Random(rng.random()), counter=counter)
        await with_timeout(drv.send_all(words[:k]), budget_ns, "ns")
        await ClockCycles(dut.clk, int(job.get("reset_wait", 50)))
        mon.stop()
        record["reset"] = {"words_sent_before_reset": k, "outputs_before_reset": len(mon.beats),
                           "busy_at_reset": value_of(dut.busy)}
        dut.i_stream__valid.value = 0
        await reset(dut.clk, dut.rst, cycles=2)
        await RisingEdge(dut.clk)
        assert value_of(dut.busy) == 0 and value_of(dut.o_stream__valid) == 0, "reset did not clear the accelerator"

    drv = StreamDriver(dut.clk, *bus(dut, "i_stream"), idle_prob=idle, rng=random.Random(rng.random()),
                       counter=counter)
    mon = StreamMonitor(dut.clk, *bus(dut, "o_stream"), backpressure_prob=bp, rng=random.Random(rng.random()),
                        counter=counter)
    start = counter.count
    send = cocotb.start_soon(drv.send_all(words))
    out = await with_timeout(mon.recv(n_out), budget_ns, "ns")
    await send
    stamps = [c - start for c in mon.cycles[:n_out]]
    await ClockCycles(dut.clk, 200)
    mon.stop()
    extra = len(mon.beats) - n_out
    record.update(out=out, stamps=stamps, in_stamps=[c - start for c in drv.sent_cycles], extra_words=extra,
                  error=value_of(dut.error), busy=value_of(dut.busy))
    write_bytes_atomic(job["out"], pickle.dumps(record))
    assert extra == 0, f"{extra} unexpected output words"
    assert record["error"] == 0 or job.get("allow_error"), "the accelerator flagged an error"
    assert record["busy"] == 0, "the accelerator is still busy after the last output"
