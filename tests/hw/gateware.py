"""Helpers for simulating the hardware blocks in Amaranth's simulator (used by tests/hw/ and
tests/sim/test_engine_link.py)."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Signal, Value
from amaranth.sim import Simulator


def run_sim(dut, testbench, *, vcd=None):
    """Run one async ``testbench(ctx)`` on ``dut`` with a 1 MHz sync clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


def read_port(m, mem, addr, data, *, latency=1):
    """A read port of ``mem`` in ``m`` addressed by ``addr`` whose data reaches ``data`` ``latency``
    cycles later (1: the memory's registered read; 2: a further output register; 3: and an address
    register)."""
    rp = mem.read_port()
    if latency == 3:
        a_q = Signal.like(rp.addr)
        m.d.sync += a_q.eq(addr)
        m.d.comb += rp.addr.eq(a_q)
    else:
        m.d.comb += rp.addr.eq(addr)
    if latency >= 2:
        m.d.sync += data.eq(rp.data)
    else:
        m.d.comb += data.eq(rp.data)


def popcount(x) -> np.ndarray:
    return np.bitwise_count(np.asarray(x, dtype=np.uint64)).astype(np.int64)


def step_contrib(a, w, m, b, word):
    """Reference of one PE step: ``(2*popcount(~(a^w) & m) - popcount(m)) << b``."""
    mask = (1 << word) - 1
    a, w, m = int(a), int(w), int(m)
    p = bin((~(a ^ w)) & m & mask).count("1")
    return (2 * p - bin(m & mask).count("1")) << int(b)


async def drive_engine(ctx, engine, beats, *, rng, idle=0.0, backpressure=0.0, n_out, max_cycles=200000):
    """Async helper for an Amaranth testbench: send ``beats`` to ``engine.i_stream`` (random idle
    cycles with probability ``idle``) while collecting ``n_out`` beats from ``engine.o_stream``
    (ready low with probability ``backpressure``). ``engine``: the engine, or any component with
    those two streams (payloads of any shape, given and returned as ints).

    Returns ``(out_beats, first_in_cycle, last_out_cycle, in_cycles)``: cycle numbers count clock
    edges from the call. Raises AssertionError on a stream protocol violation or a timeout.
    """
    i_payload = Value.cast(engine.i_stream.payload)
    o_payload = Value.cast(engine.o_stream.payload)
    out, in_cycles, out_cycles = [], [], []
    k, cycle, pending = 0, 0, None
    offering = False
    while len(out) < n_out or k < len(beats):
        if cycle > max_cycles:
            raise AssertionError(f"timeout: {k}/{len(beats)} beats sent, {len(out)}/{n_out} received")
        if not offering and k < len(beats) and not (idle and rng.random() < idle):
            offering = True
            ctx.set(i_payload, beats[k])
        ctx.set(engine.i_stream.valid, int(offering))
        rdy = int(not (backpressure and rng.random() < backpressure))
        ctx.set(engine.o_stream.ready, rdy)
        in_fire = offering and ctx.get(engine.i_stream.ready)
        o_valid = ctx.get(engine.o_stream.valid)
        o_word = ctx.get(o_payload) if o_valid else None
        if pending is not None:
            assert o_word == pending, f"output stream protocol violation at cycle {cycle}"
        await ctx.tick()
        cycle += 1
        if in_fire:
            in_cycles.append(cycle)
            k += 1
            offering = False
        if o_valid and rdy:
            out.append(o_word)
            out_cycles.append(cycle)
            pending = None
        else:
            pending = o_word
    ctx.set(engine.i_stream.valid, 0)
    return out, in_cycles[0], out_cycles[-1], in_cycles
