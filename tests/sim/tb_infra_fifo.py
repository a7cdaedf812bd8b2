"""cocotb testbench of the infrastructure FIFO (``tests/sim/infra_designs.py: InfraFIFO``).

Parameters (``run_cocotb(..., tb_params=...)``): ``n`` words, ``idle`` and ``backpressure``
probabilities, ``expect_offset`` (0; a non-zero value corrupts the expected list on purpose, to
show that a wrong result fails the test).
"""
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from binaccel.sim.runner import load_tb_params
from binaccel.sim.streams import (
    CycleCounter, StreamDriver, StreamMonitor, StreamProtocolError, bus, pack_fields, reset, unpack_fields,
)
from tests.sim.infra_designs import INFRA_LAYOUT


def _random_fields(rng):
    return {"a": rng.randrange(256), "b": rng.randrange(-8, 8), "last": rng.randrange(2)}


@cocotb.test()
async def fifo_roundtrip(dut):
    p = load_tb_params({})
    n, idle, bp = int(p.get("n", 200)), float(p.get("idle", 0.3)), float(p.get("backpressure", 0.3))
    rng = random.Random(cocotb.RANDOM_SEED)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    await reset(dut.clk, dut.rst)

    fields = [_random_fields(rng) for _ in range(n)]
    words = [pack_fields(INFRA_LAYOUT, **f) for f in fields]
    assert [unpack_fields(INFRA_LAYOUT, w) for w in words] == fields

    counter = CycleCounter(dut.clk)
    drv = StreamDriver(dut.clk, *bus(dut, "i_stream"), idle_prob=idle, rng=random.Random(rng.random()),
                       counter=counter)
    mon = StreamMonitor(dut.clk, *bus(dut, "o_stream"), backpressure_prob=bp,
                        rng=random.Random(rng.random()), counter=counter)
    send = cocotb.start_soon(drv.send_all(words))
    got = await with_timeout(mon.recv(n), 20 * (n + 10) * 10, "ns")
    await send
    await ClockCycles(dut.clk, 10)

    expected = [w + int(p.get("expect_offset", 0)) for w in words]
    assert got == expected, "FIFO output differs from its input"
    assert mon.beats == expected, f"extra beats after the last word: {len(mon.beats)} != {n}"
    assert all(a < b for a, b in zip(mon.cycles, mon.cycles[1:])), "output cycles not increasing"
    # each word leaves the FIFO at least one cycle after it entered
    assert all(o > i for i, o in zip(drv.sent_cycles, mon.cycles)), (drv.sent_cycles[:10], mon.cycles[:10])
    if idle == 0 and bp == 0:
        assert mon.cycles[-1] - mon.cycles[0] == n - 1, "no full throughput without idle/backpressure"
    elif n >= 100:  # the random idle/backpressure pattern really stalled the stream
        assert mon.cycles[-1] - mon.cycles[0] > n - 1 + n * max(idle, bp) / 2, (mon.cycles[0], mon.cycles[-1])
    dut._log.info("%d words, first out at cycle %d, last at %d", n, mon.cycles[0], mon.cycles[-1])


@cocotb.test()
async def fifo_reset_idle(dut):
    """After reset, with no input, the FIFO offers nothing."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i_stream__valid.value = 0
    await reset(dut.clk, dut.rst)
    mon = StreamMonitor(dut.clk, *bus(dut, "o_stream"))
    await ClockCycles(dut.clk, 20)
    await RisingEdge(dut.clk)
    assert mon.beats == []


async def _offer_then(dut, violation):
    """Drive i_stream by hand against a monitor that never takes (ready low), then break the rule."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i_stream__valid.value = 0
    await reset(dut.clk, dut.rst)
    # the monitor watches the stimulus side; its ready goes to o_stream__ready (unused here)
    StreamMonitor(dut.clk, dut.i_stream__valid, dut.o_stream__ready, dut.i_stream__payload,
                  backpressure_prob=0.999999, rng=random.Random(1))
    dut.i_stream__valid.value = 1
    dut.i_stream__payload.value = 5
    await ClockCycles(dut.clk, 3)
    violation(dut)
    await ClockCycles(dut.clk, 3)


@cocotb.test(expect_error=StreamProtocolError)
async def monitor_detects_payload_change(dut):
    """The monitor's protocol check catches a payload change while valid and not ready."""
    def change(d):
        d.i_stream__payload.value = 6
    await _offer_then(dut, change)


@cocotb.test(expect_error=StreamProtocolError)
async def monitor_detects_valid_drop(dut):
    """The monitor's protocol check catches valid dropped before the transfer."""
    def drop(d):
        d.i_stream__valid.value = 0
    await _offer_then(dut, drop)


@cocotb.test()
async def monitor_accepts_held_offer(dut):
    """Control for the two tests above: holding valid and payload is no violation."""
    await _offer_then(dut, lambda d: None)
