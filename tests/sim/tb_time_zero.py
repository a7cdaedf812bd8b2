"""cocotb testbench of ``tests/sim/time_zero_designs.py: TimeZeroHold``: ``value`` reads the held
register's initial value after reset and keeps it while nothing is loaded, then takes a loaded word."""
import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from binaccel.sim.streams import reset, value_of
from tests.sim.time_zero_designs import HELD_INIT


@cocotb.test()
async def held_from_time_zero(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.load.value = 0
    dut.data.value = 0
    await reset(dut.clk, dut.rst)
    for cycle in range(4):
        await RisingEdge(dut.clk)
        await ReadOnly()
        v = dut.value.value
        assert v.is_resolvable, f"value is {v} (unresolved) {cycle + 1} cycles after reset, expected {HELD_INIT:#x}"
        assert value_of(dut.value) == HELD_INIT, f"value {value_of(dut.value):#x}, expected {HELD_INIT:#x}"
    await RisingEdge(dut.clk)
    dut.load.value = 1
    dut.data.value = 0xC3
    await RisingEdge(dut.clk)
    dut.load.value = 0
    await ClockCycles(dut.clk, 2)
    await ReadOnly()
    assert value_of(dut.value) == 0xC3, f"value {value_of(dut.value):#x} after loading 0xc3"
