"""cocotb testbench of the frame link in loopback (``tests/sim/link_designs.py: LinkEcho``:
FrameRx -> echo -> FrameTx, with STATUS frames) on Verilator.

The host side is ``binaccel.sw.link``: frames are made by ``FrameEncoder``, sent into ``i_stream``
with random idle cycles, and the bytes of ``o_stream`` (random backpressure) are decoded by
``FrameDecoder``: every transfer must come back unchanged, and every frame must be accounted for by
one STATUS frame. Parameters (``tb_params``): ``idle``, ``backpressure`` probabilities.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from binaccel.sim.runner import load_tb_params
from binaccel.sim.streams import CycleCounter, StreamDriver, StreamMonitor, bus, reset
from binaccel.sw.link import (
    HEADER_SIZE, OVERHEAD, STATUS_SIZE, FrameDecoder, FrameEncoder, FrameKind, RxCode,
    encode_frame, join_transfers, parse_status,
)

STATUS_FRAME = OVERHEAD + STATUS_SIZE
CLK_NS = 10


async def _setup(dut):
    cocotb.start_soon(Clock(dut.clk, CLK_NS, unit="ns").start())
    dut.i_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    await reset(dut.clk, dut.rst)


def _params():
    p = load_tb_params({})
    return float(p.get("idle", 0.3)), float(p.get("backpressure", 0.3))


async def _exchange(dut, data, n_out, *, idle, bp, rng, counter=None):
    """Send ``data`` bytes, receive ``n_out`` bytes; then 200 more cycles must bring nothing."""
    counter = counter or CycleCounter(dut.clk)
    drv = StreamDriver(dut.clk, *bus(dut, "i_stream"), idle_prob=idle, rng=random.Random(rng.random()),
                       counter=counter)
    mon = StreamMonitor(dut.clk, *bus(dut, "o_stream"), backpressure_prob=bp,
                        rng=random.Random(rng.random()), counter=counter)
    send = cocotb.start_soon(drv.send_all(list(data)))
    limit = int(CLK_NS * (4 * (len(data) + n_out) / (1 - max(idle, bp)) + 2000))
    got = await with_timeout(mon.recv(n_out), limit, "ns")
    await send
    await ClockCycles(dut.clk, 200)
    assert len(mon.beats) == n_out, f"{len(mon.beats) - n_out} bytes more than expected"
    mon.stop()
    return bytes(got), drv, mon


def _decode(out):
    dec = FrameDecoder()
    frames = dec.feed(out)
    dec.finish()
    echo = [f for f in frames if f.kind != FrameKind.STATUS]
    status = [parse_status(f.payload) for f in frames if f.kind == FrameKind.STATUS]
    return join_transfers(echo), status


@cocotb.test()
async def echo_roundtrip(dut):
    """Transfers of many lengths plus one corrupted frame (then resent): echoed exactly, one
    STATUS per frame (OK, or CRC for the corrupted copy)."""
    idle, bp = _params()
    rng = random.Random(cocotb.RANDOM_SEED)
    await _setup(dut)
    enc = FrameEncoder()
    kinds = [FrameKind.PROGRAM, FrameKind.WEIGHTS, FrameKind.TABLES, FrameKind.IMAGE]
    transfers = [(kinds[i % 4], bytes(rng.randrange(256) for _ in range(n)))
                 for i, n in enumerate([0, 1, 255, 256, 257, 1000, 17])]
    chunks = [enc.encode(k, p) for k, p in transfers]
    data = b"".join(chunks)
    n_frames = enc.seq
    # corrupt one frame of the 1000-byte transfer and send the good copy right after it
    start = sum(len(c) for c in chunks[:5]) + 266
    bad = bytearray(data[start:start + 266])
    bad[HEADER_SIZE + rng.randrange(256)] ^= 1 << rng.randrange(8)
    bad_seq = bad[3]
    data = data[:start] + bytes(bad) + data[start:]
    n_out = len(data) - len(bad) + STATUS_FRAME * (n_frames + 1)

    counter = CycleCounter(dut.clk)
    out, drv, mon = await _exchange(dut, data, n_out, idle=idle, bp=bp, rng=rng, counter=counter)
    echoed, status = _decode(out)
    assert echoed == transfers, "echoed transfers differ from those sent"
    oks = [s.seq for s in status if s.code == RxCode.OK]
    errors = [(s.code, s.seq) for s in status if s.code != RxCode.OK]
    assert oks == list(range(n_frames)), oks
    assert errors == [(RxCode.CRC, bad_seq)], errors
    cycles = mon.cycles[-1] - drv.sent_cycles[0] + 1
    dut._log.info("%d bytes in, %d bytes out in %d cycles (idle %.2f, backpressure %.2f)",
                  len(data), n_out, cycles, idle, bp)


@cocotb.test()
async def reset_input_mid_frame(dut):
    """The reset input in the middle of a frame returns the link to idle: a fresh stream from
    sequence number 0 then goes through as if nothing had happened."""
    idle, bp = _params()
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    await _setup(dut)
    partial = FrameEncoder().encode(FrameKind.IMAGE, bytes(range(200)))[:120]
    drv = StreamDriver(dut.clk, *bus(dut, "i_stream"), idle_prob=idle, rng=random.Random(1))
    await drv.send_all(list(partial))
    await RisingEdge(dut.clk)
    await reset(dut.clk, dut.rst)
    enc = FrameEncoder()
    transfers = [(FrameKind.TABLES, bytes(rng.randrange(256) for _ in range(300))),
                 (FrameKind.IMAGE, b"\x01\x02")]
    data = b"".join(enc.encode(k, p) for k, p in transfers)
    n_out = len(data) + STATUS_FRAME * enc.seq
    out, _, _ = await _exchange(dut, data, n_out, idle=idle, bp=bp, rng=rng)
    echoed, status = _decode(out)                              # the transmitter restarts at SEQ 0 too
    assert echoed == transfers
    assert [(s.code, s.seq) for s in status] == [(RxCode.OK, i) for i in range(enc.seq)]


@cocotb.test()
async def reset_frame_restarts_sequence(dut):
    """A RESET frame with any sequence number is taken; the receiver then expects the next one."""
    idle, bp = _params()
    rng = random.Random(cocotb.RANDOM_SEED + 2)
    await _setup(dut)
    enc = FrameEncoder()
    first = enc.encode(FrameKind.WEIGHTS, b"abc")
    enc.seq = 100
    data = first + enc.reset() + enc.encode(FrameKind.PROGRAM, b"after reset")
    n_out = len(first) + (OVERHEAD + len(b"after reset")) + STATUS_FRAME * 3
    out, _, _ = await _exchange(dut, data, n_out, idle=idle, bp=bp, rng=rng)
    echoed, status = _decode(out)
    assert echoed == [(FrameKind.WEIGHTS, b"abc"), (FrameKind.PROGRAM, b"after reset")]
    assert [(s.code, s.kind, s.seq, s.expect) for s in status] == [
        (RxCode.OK, FrameKind.WEIGHTS, 0, 1), (RxCode.OK, FrameKind.RESET, 100, 101),
        (RxCode.OK, FrameKind.PROGRAM, 101, 102)]
    assert encode_frame(FrameKind.RESET, 100, b"") in data
