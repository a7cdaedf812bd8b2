# amaranth: UnusedElaboratable=no
"""The word/byte converters between the frame link and the accelerator (binaccel.hw.linked), in
Amaranth's simulator with random idle cycles and backpressure, against the host side
(binaccel.sw.link): every payload byte in order, whole words, transfers closed after a flush."""

import random

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from tests.hw.test_link_hw import Gap, run_streams

from binaccel.hw.link import RX_BEAT, FrameTx
from binaccel.hw.linked import BytesToWords, LinkedAccelerator, UartAccelerator, WordsToBytes
from binaccel.sim.streams import pack_fields
from binaccel.sw.link import FrameDecoder, FrameKind, join_transfers


def _le_words(data: bytes) -> list:
    return np.frombuffer(data, dtype="<u4").tolist()


@pytest.mark.parametrize("idle, bp, seed", [(0.0, 0.0, 1), (0.5, 0.5, 2), (0.2, 0.7, 3)])
def test_bytes_to_words_ignores_frame_boundaries_and_empty_beats(idle, bp, seed):
    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(4 * 50))
    beats, i = [], 0
    while i < len(data):
        n = min(rng.choice([1, 3, 4, 5, 17]), len(data) - i)   # frames of odd lengths: words straddle them
        for k in range(n):
            beats.append(pack_fields(RX_BEAT, data=data[i + k], kind=int(FrameKind.WEIGHTS), first=int(k == 0),
                                     last=int(k == n - 1), empty=0, sot=1, eot=1))
        i += n
        if rng.random() < 0.3:   # an empty frame: one empty beat, whose data must be ignored
            beats.append(pack_fields(RX_BEAT, data=0xA5, kind=int(FrameKind.IMAGE), first=1, last=1, empty=1,
                                     sot=1, eot=1))
        if rng.random() < 0.2:
            beats.append(Gap(rng.randrange(1, 9)))
    res = run_streams(BytesToWords(), inputs={"i_stream": beats}, outputs={"o_stream": bp},
                      until=lambda r: len(r["out"]["o_stream"]) >= 50 and r["consumed"]["i_stream"] ==
                      sum(not isinstance(b, Gap) for b in beats), idle=idle, seed=seed, extra=20)
    assert res["out"]["o_stream"] == _le_words(data)


class _W2BTx(wiring.Component):
    """WordsToBytes -> FrameTx, with the flush input exposed."""

    i_stream: In(stream.Signature(32))
    o_stream: Out(stream.Signature(8))
    flush: In(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.w2b = w2b = WordsToBytes()
        m.submodules.tx = tx = FrameTx()
        wiring.connect(m, wiring.flipped(self.i_stream), w2b.i_stream)
        wiring.connect(m, w2b.o_stream, tx.i_stream)
        wiring.connect(m, tx.o_stream, wiring.flipped(self.o_stream))
        m.d.comb += w2b.flush.eq(self.flush)
        return m


@pytest.mark.parametrize("idle, bp, seed", [(0.0, 0.0, 4), (0.5, 0.5, 5)])
def test_words_to_bytes_result_transfers_round_trip(idle, bp, seed):
    rng = random.Random(seed)
    words, inputs = [], []
    for burst in range(12):
        n = rng.choice([1, 2, 10, 70, 130])      # 130 words = 520 bytes: frames cut at 256 bytes
        ws = [rng.getrandbits(32) for _ in range(n)]
        words += ws
        inputs += ws + [Gap(rng.randrange(30, 60))]
    expect = b"".join(int(w).to_bytes(4, "little") for w in words)
    dut = _W2BTx()
    got = bytearray()
    dec = FrameDecoder(seq_start=0)
    frames = []

    def done(r):
        new = bytes(r["out"]["o_stream"][len(got):])
        got.extend(new)
        frames.extend(dec.feed(new))
        return sum(len(f.payload) for f in frames) >= len(expect)

    run_streams(dut, inputs={"i_stream": inputs}, outputs={"o_stream": bp}, until=done, idle=idle, seed=seed,
                max_cycles=400_000)
    assert all(f.kind == FrameKind.RESULT for f in frames)
    transfers = join_transfers(frames)       # checks SOT/EOT pairing
    assert b"".join(p for _, p in transfers) == expect
    # bursts separated by idle time travel as separate transfers; without input idle cycles a burst
    # is never split (with them, a gap inside a burst may end a transfer: that is allowed)
    if idle == 0:
        assert len(transfers) == 12
    else:
        assert len(transfers) >= 12


def test_words_to_bytes_flush_closes_an_open_transfer():
    """A flush in the middle of a word: the rest of that word is dropped, the open RESULT transfer is
    closed by an empty last beat (the frame transmitter is not left waiting) and later words travel in
    a new transfer."""
    from amaranth.sim import Simulator

    dut = _W2BTx()
    out = bytearray()

    async def bench(ctx):
        ctx.set(dut.o_stream.ready, 1)
        for w in (0x11223344, 0x55667788):
            ctx.set(dut.i_stream.payload, w)
            ctx.set(dut.i_stream.valid, 1)
            await ctx.tick().until(dut.i_stream.ready)
        ctx.set(dut.i_stream.valid, 0)
        await ctx.tick().repeat(2)           # 2 bytes of the second word have gone
        ctx.set(dut.flush, 1)
        await ctx.tick()
        ctx.set(dut.flush, 0)
        await ctx.tick().repeat(40)
        ctx.set(dut.i_stream.payload, 0xCAFEF00D)
        ctx.set(dut.i_stream.valid, 1)
        await ctx.tick().until(dut.i_stream.ready)
        ctx.set(dut.i_stream.valid, 0)
        await ctx.tick().repeat(60)

    async def monitor(ctx):
        async for _, _, v, r, p in ctx.tick().sample(dut.o_stream.valid, dut.o_stream.ready, dut.o_stream.payload):
            if v and r:
                out.append(p)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(monitor)
    sim.run()
    frames = FrameDecoder(seq_start=0).feed(bytes(out))
    transfers = join_transfers(frames)
    assert len(transfers) == 2
    first, second = (p for _, p in transfers)
    sent = bytes.fromhex("4433221188776655")
    assert 4 < len(first) < 8 and first == sent[:len(first)]   # flushed in the middle of the second word
    assert second == (0xCAFEF00D).to_bytes(4, "little")


def test_parameter_checks():
    with pytest.raises(ValueError, match="rows"):
        LinkedAccelerator(rows=0)
    with pytest.raises(ValueError, match="max_payload"):
        LinkedAccelerator(max_payload=100)
    with pytest.raises(ValueError, match="divisor"):
        UartAccelerator(divisor=2)
    with pytest.raises(TypeError):
        LinkedAccelerator(bogus=1)
