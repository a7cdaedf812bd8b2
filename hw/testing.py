"""Helpers for simulating the hardware blocks in Amaranth's simulator (used by tests/test_hw_*.py)."""

from __future__ import annotations

import numpy as np
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


def popcount(x) -> np.ndarray:
    return np.bitwise_count(np.asarray(x, dtype=np.uint64)).astype(np.int64)


def step_contrib(a, w, m, b, word):
    """Reference of one PE step: ``(2*popcount(~(a^w) & m) - popcount(m)) << b``."""
    mask = (1 << word) - 1
    a, w, m = int(a), int(w), int(m)
    p = bin((~(a ^ w)) & m & mask).count("1")
    return (2 * p - bin(m & mask).count("1")) << int(b)
