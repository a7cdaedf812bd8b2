"""cocotb testbench of the accelerator behind its UART (``binaccel.hw.linked.UartAccelerator``).

Driven by :mod:`binaccel.sim.transport` (the ``uart`` transport), which writes a job (pickle) and
passes its path in ``tb_params = {"job": path}``. The host side is the driver's own
:class:`binaccel.sw.hostlink.HostLink`: this testbench only moves its bytes over the simulated
serial line, bit by bit (8N1, ``divisor`` clock cycles per bit, an int or a ``Fraction``), as a
USB-UART cable would. A fractional bit period is kept exactly along each byte: bit ``k`` starts
``round(k * divisor)`` cycles after the start bit, and the host samples bit ``k`` at
``round((k + 1/2) * divisor)`` cycles after the falling edge, each within a cycle of its ideal time.

A job holds:

* ``transfers``: ``[(kind, payload bytes)]``, the host's transfers in order (program, weights,
  tables, then one IMAGE transfer per image);
* ``n_out_bytes``: RESULT bytes expected;
* ``divisor``, ``window``, ``max_cycles``, ``host_timeout`` (cycles without a byte from the device,
  with frames unconfirmed, before the host resends);
* ``corrupt``: ``[(frame number, byte offset, xor mask)]`` applied to the first transmission of
  those host frames (the device must report them; the host resends);
* ``truncate``: ``(frame number, bytes)`` or None: a first session sends that frame only up to
  ``bytes`` and then goes silent (a host that died mid-frame); the device's receiver times out.
  A second session, a new ``HostLink``, starts with a RESET frame and runs the whole job; its
  results are the job's;
* ``corrupt_rx``: a device-to-host byte number and xor mask, or None: the host must detect the
  damaged frame (a ``LinkError``), which is recorded and ends the run.

Every session starts with a RESET frame (the device's state is unknown to a host that just
connected). The record (pickle, ``job["out"]``): ``result`` bytes, ``events`` (device STATUS
errors and host timeouts, with the cycle), ``cycles`` per session, line byte counts, resent
frames, ``link_error`` (text) if the host's decoder refused a frame, ``uart_error`` and ``error``
flags at the end.
"""

import pickle
from fractions import Fraction

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer
from cocotb.utils import get_sim_time

from binaccel.sim.runner import load_tb_params
from binaccel.sim.streams import reset, value_of
from binaccel.sw.atomic import write_bytes_atomic
from binaccel.sw.hostlink import HostLink
from binaccel.sw.link import FrameKind, LinkError


PERIOD_NS = 10


class SimCycles:
    """Clock cycles since construction, read from the simulation time (no per-cycle coroutine)."""

    def __init__(self):
        self.t0 = get_sim_time(unit="ns")

    @property
    def count(self) -> int:
        return int((get_sim_time(unit="ns") - self.t0) // PERIOD_NS)


class UartLine:
    """Host end of the serial line: a transmitter on ``dut.rx`` and a receiver on ``dut.tx``."""

    def __init__(self, dut, divisor, counter):
        self.dut, self.counter = dut, counter
        self.divisor = Fraction(divisor)
        self.d = int(round(self.divisor))   # whole cycles per bit, for waits that need not be exact
        # bit edges within a frame, in cycles from the start bit: round(k * divisor), k = 0..10
        self._edges = [round(k * self.divisor) for k in range(11)]
        # host samples, in cycles from the falling edge: start bit, 8 data bits, stop bit
        self._samples = [round((k + Fraction(1, 2)) * self.divisor) for k in range(10)]
        self.rx_bytes = 0
        self.last_rx_cycle = 0
        self.sink = None          # callable(byte) for received bytes
        self.corrupt_rx = None    # (byte number, xor)
        self.log = None           # a bytearray: every byte received, as received
        dut.rx.value = 1

    async def send_byte(self, b: int) -> None:
        bits = [0] + [(b >> i) & 1 for i in range(8)] + [1]
        for k, bit in enumerate(bits):
            self.dut.rx.value = bit
            await Timer((self._edges[k + 1] - self._edges[k]) * PERIOD_NS, unit="ns")

    async def send(self, data: bytes) -> None:
        for b in data:
            await self.send_byte(b)

    async def receive_forever(self) -> None:
        s = self._samples
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(s[0] * PERIOD_NS, unit="ns")
            if value_of(self.dut.tx):
                continue  # a glitch, not a start bit
            b = 0
            for i in range(8):
                await Timer((s[i + 1] - s[i]) * PERIOD_NS, unit="ns")
                b |= value_of(self.dut.tx) << i
            await Timer((s[9] - s[8]) * PERIOD_NS, unit="ns")   # stop bit
            if self.corrupt_rx is not None and self.rx_bytes == self.corrupt_rx[0]:
                b ^= self.corrupt_rx[1]
            self.rx_bytes += 1
            if self.log is not None:
                self.log.append(b)
            self.last_rx_cycle = self.counter.count
            if self.sink is not None:
                self.sink(b)


async def _session(dut, line, job, counter, *, corrupt=(), truncate=None):
    """One host session: RESET, then the job's transfers; returns the HostLink when done (or cut off)."""
    link = HostLink(window=int(job["window"]))
    link.send_reset()
    for kind, payload in job["transfers"]:
        link.send(FrameKind(kind), payload)
    corrupt = {int(f): (int(o), int(x)) for f, o, x in corrupt}
    error = []

    def sink(b):
        link.note = counter.count
        if error:
            return
        try:
            link.feed(bytes([b]))
        except LinkError as e:
            error.append(e)

    line.sink = sink
    start = counter.count
    want = int(job["n_out_bytes"])
    host_timeout = int(job["host_timeout"])
    last_progress = counter.count
    while True:
        if error:
            break
        if link.idle and len(link.result) >= want:
            break
        if counter.count - start > int(job["max_cycles"]):
            raise AssertionError(f"uart run exceeded {job['max_cycles']} cycles: {len(link.result)} of {want} result "
                                 f"bytes, {link.acked} of {link.queued} frames confirmed; events {link.events[-5:]}")
        frames = link.take_frames()
        if not frames:
            if link.next > link.acked and counter.count - max(line.last_rx_cycle, last_progress) > host_timeout:
                link.note = counter.count
                link.on_timeout()
                last_progress = counter.count
            await Timer(10 * line.d * PERIOD_NS, unit="ns")
            continue
        for idx, data in frames:
            last_progress = counter.count
            if truncate is not None and idx == truncate[0]:
                await line.send(data[:truncate[1]])
                return link, counter.count - start, None
            if idx in corrupt:
                off, x = corrupt.pop(idx)
                data = bytearray(data)
                data[off % len(data)] ^= x
            await line.send(bytes(data))
    return link, counter.count - start, (error[0] if error else None)


@cocotb.test()
async def run_job(dut):
    """Run the job's transfers through the UART; record the results."""
    with open(load_tb_params({})["job"], "rb") as f:
        job = pickle.load(f)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rx.value = 1
    await reset(dut.clk, dut.rst)
    await RisingEdge(dut.clk)
    counter = SimCycles()
    line = UartLine(dut, job["divisor"], counter)
    if job.get("corrupt_rx") is not None:
        line.corrupt_rx = tuple(job["corrupt_rx"])
    if job.get("log_rx"):
        line.log = bytearray()
    cocotb.start_soon(line.receive_forever())
    record = {"sessions": []}

    if job.get("truncate") is not None:
        link, cycles, _ = await _session(dut, line, job, counter, truncate=job["truncate"])
        # The host is gone mid-frame: wait for the device's receiver to time out and report it.
        await Timer((int(job["rx_timeout"]) + 400 * line.d) * PERIOD_NS, unit="ns")
        record["sessions"].append({"cycles": cycles, "events": list(link.events), "truncated": list(job["truncate"]),
                                   "busy_after": value_of(dut.busy)})
        line.sink = None

    t0 = counter.count
    link, cycles, error = await _session(dut, line, job, counter, corrupt=job.get("corrupt", ()))
    # Nothing more may come: wait four byte times and check that no byte arrived.
    rx_before = line.rx_bytes
    await Timer(40 * line.d * PERIOD_NS, unit="ns")
    record["sessions"].append({"cycles": cycles, "events": list(link.events), "resent_frames": link.resent_frames,
                               "bytes_out": link.bytes_out, "bytes_in": link.bytes_in, "frames": link.queued})
    record.update(result=bytes(link.result), cycles=cycles, first_cycle=t0, total_cycles=counter.count,
                  link_error=str(error) if error else None,
                  link_error_fields=({"code": error.code, "frame": error.frame, "field": error.field} if error else None),
                  extra_bytes=line.rx_bytes - rx_before, uart_error=value_of(dut.uart_error), error=value_of(dut.error),
                  events=[e for s in record["sessions"] for e in s["events"]],
                  rx_log=bytes(line.log) if line.log is not None else None)
    write_bytes_atomic(job["out"], pickle.dumps(record))
