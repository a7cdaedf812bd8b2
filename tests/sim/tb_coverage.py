"""cocotb testbench of ``tests/sim/coverage_designs.py: CovCounter``: counts ``n`` enabled cycles
(``tb_params``; default 20) with codes that are never ``MAGIC``."""
import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from binaccel.sim.runner import load_tb_params
from tests.sim.coverage_designs import MAGIC


@cocotb.test()
async def count_cycles(dut):
    n = int(load_tb_params({}).get("n", 20))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.en.value = 0
    dut.code.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    for i in range(n):
        dut.en.value = 1
        dut.code.value = (i * 7) % 256 if (i * 7) % 256 != MAGIC else 0
        await RisingEdge(dut.clk)
    dut.en.value = 0
    await ClockCycles(dut.clk, 2)
    assert int(dut.count.value) == n % 256
    assert int(dut.flag.value) == 0
