# amaranth: UnusedElaboratable=no
"""Frame link gateware (binaccel.hw.link) in Amaranth's simulator, against the host side
(binaccel.sw.link): FrameRx from host-encoded bytes, FrameTx into the host decoder, errors,
timeouts, RESET, and the whole link echoing over the UART."""

import random
from dataclasses import dataclass

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from binaccel.hw.link import (
    RX_BEAT, RX_STATUS, TX_BEAT, FrameLink, FrameRx, FrameTx, crc16_byte,
)
from binaccel.sim.streams import pack_fields, unpack_fields
from tests.sim.link_designs import LinkEcho, UartLinkEcho
from binaccel.sw.link import (
    ALL_KINDS, HEADER_SIZE, MAX_PAYLOAD, OVERHEAD, Frame, FrameDecoder, FrameEncoder, FrameKind, RxCode,
    StatusEvent, crc16, decode_frames, encode_frame, encode_frames, join_transfers, parse_status,
    type_byte,
)

DATA_KINDS = [FrameKind.PROGRAM, FrameKind.WEIGHTS, FrameKind.TABLES, FrameKind.IMAGE]


# ------------------------------------------------------------------ stream harness

@dataclass
class Gap:
    """In an input word list: the input stays idle (valid low) for ``cycles`` cycles."""
    cycles: int


def _raw(payload):
    return payload.as_value() if hasattr(payload, "as_value") else payload


def run_streams(dut, *, inputs, outputs, until, idle=0.0, seed=0, max_cycles=200_000, watch=(),
                withdraw=None, extra=0):
    """Drive ``inputs`` ({port name: word list, Gap items allowed}) with random idle cycles
    (probability ``idle``), take ``outputs`` ({port name: backpressure probability, or a function
    cycle -> ready}) until ``until(result)`` is true, then ``extra`` more cycles. Checks the stream rules on every output,
    except in a cycle where the 1-bit signal named ``withdraw`` is high (a reset of the consumer).

    Returns a dict: ``out[name]`` payload lists, ``stamps[name]`` their transfer cycles,
    ``watch[name]`` the cycles at which each watched 1-bit signal was high, ``cycles``,
    ``consumed[name]`` number of input words taken.
    """
    rng = random.Random(seed)
    res = {"out": {n: [] for n in outputs}, "stamps": {n: [] for n in outputs},
           "watch": {n: [] for n in watch}, "consumed": {n: 0 for n in inputs}, "cycles": 0}

    async def bench(ctx):
        state = {n: {"words": list(w), "k": 0, "offer": False, "gap": 0} for n, w in inputs.items()}
        pending = {n: None for n in outputs}
        cycle = 0
        done_at = None
        while done_at is None or cycle < done_at + extra:
            if done_at is None and until(res):
                done_at = cycle
                continue
            cycle += 1
            if cycle > max_cycles:
                raise AssertionError(f"timeout after {max_cycles} cycles: consumed {res['consumed']}, "
                                     f"received { {n: len(v) for n, v in res['out'].items()} }")
            for n, s in state.items():
                port = getattr(dut, n)
                if not s["offer"] and s["gap"] == 0 and s["k"] < len(s["words"]):
                    w = s["words"][s["k"]]
                    if isinstance(w, Gap):
                        s["gap"], s["k"] = w.cycles, s["k"] + 1
                    elif not (idle and rng.random() < idle):
                        s["offer"] = True
                        ctx.set(_raw(port.payload), w)
                if s["gap"]:
                    s["gap"] -= 1
                if not s["offer"]:
                    ctx.set(_raw(port.payload), rng.getrandbits(len(_raw(port.payload))))
                ctx.set(port.valid, int(s["offer"]))
            for n, bp in outputs.items():
                ready = bp(cycle) if callable(bp) else not (bp and rng.random() < bp)
                ctx.set(getattr(dut, n).ready, int(ready))
            fired = [n for n, s in state.items() if s["offer"] and ctx.get(getattr(dut, n).ready)]
            seen = []
            if withdraw is not None and ctx.get(getattr(dut, withdraw)):
                pending = {n: None for n in outputs}
            for n in outputs:
                port = getattr(dut, n)
                valid = ctx.get(port.valid)
                word = ctx.get(_raw(port.payload)) if valid else None
                if pending[n] is not None:
                    assert word == pending[n], (f"{n}: valid dropped or payload changed before the "
                                                f"transfer at cycle {cycle}")
                seen.append((n, valid, ctx.get(port.ready), word))
            for n in watch:
                if ctx.get(getattr(dut, n)):
                    res["watch"][n].append(cycle)
            await ctx.tick()
            for n in fired:
                state[n]["k"] += 1
                state[n]["offer"] = False
                res["consumed"][n] += 1
            for n, valid, ready, word in seen:
                if valid and ready:
                    res["out"][n].append(word)
                    res["stamps"][n].append(cycle)
                    pending[n] = None
                else:
                    pending[n] = word
            res["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return res


def rx_frames(beats):
    """Group FrameRx output beats into frames: (kind, sot, eot, payload bytes)."""
    frames, cur = [], None
    for w in beats:
        b = unpack_fields(RX_BEAT, w)
        assert (cur is None) == bool(b["first"]), f"first marker out of place: {b}"
        if b["first"]:
            cur = (b["kind"], b["sot"], b["eot"], bytearray())
        assert (b["kind"], b["sot"], b["eot"]) == cur[:3], "frame fields change inside a frame"
        if b["empty"]:
            assert b["first"] and b["last"] and b["data"] == 0, b
        else:
            cur[3].append(b["data"])
        if b["last"]:
            frames.append((cur[0], bool(cur[1]), bool(cur[2]), bytes(cur[3])))
            cur = None
    assert cur is None, "output ended inside a frame"
    return frames


def host_frames(data, **kw):
    return [(int(f.kind), f.sot, f.eot, f.payload) for f in decode_frames(data, **kw)]


def events(words):
    return [StatusEvent(RxCode(e["code"]), e["kind"], e["seq"], e["expect"])
            for e in (unpack_fields(RX_STATUS, w) for w in words)]


def split_events(words):
    """(OK events as (kind, seq), error events as StatusEvent), each in the order posted. (An error
    is posted when detected, an OK when the frame has been handed on, so the two interleave with
    timing.) Checks that each OK's ``expect`` is past its frame."""
    ev = events(words)
    oks = [e for e in ev if e.code == RxCode.OK]
    assert all(e.expect != e.seq for e in oks), oks
    return [(e.kind, e.seq) for e in oks], [e for e in ev if e.code != RxCode.OK]


def rand_bytes(rng, n, avoid=()):
    return bytes(b for b in (rng.randrange(256) for _ in range(4 * n + 8)) if b not in avoid)[:n]


# ------------------------------------------------------------------ CRC

def test_crc16_byte_gateware_matches_host():
    crc, byte = Signal(16), Signal(8)
    nxt = Signal(16)
    m = Module()
    m.d.comb += nxt.eq(crc16_byte(crc, byte))
    rng = random.Random(2)
    cases = [(0xFFFF, 0x00), (0x0000, 0xFF), (0x8000, 0x80)] + \
            [(rng.randrange(1 << 16), rng.randrange(256)) for _ in range(300)]
    got = []

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            got.append(ctx.get(nxt))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == [crc16(bytes([b]), c) for c, b in cases]


# ------------------------------------------------------------------ FrameRx

def rx_run(dut, data, *, n_frames, idle=0.0, bp=0.0, status_bp=0.0, seed=0, watch=(), **kw):
    """Feed ``data`` (bytes, Gap items allowed) until ``n_frames`` status events arrived, then 60
    more cycles (the last beat, and nothing more, must come out)."""
    return run_streams(dut, inputs={"i_stream": data},
                       outputs={"o_stream": bp, "o_status": status_bp},
                       until=lambda r: len(r["out"]["o_status"]) >= n_frames,
                       idle=idle, seed=seed, watch=watch, extra=60, **kw)


@pytest.mark.parametrize("idle, bp", [(0.0, 0.0), (0.3, 0.3), (0.6, 0.7)])
def test_rx_roundtrip_host_frames(idle, bp):
    rng = random.Random(int(idle * 10 + bp * 100))
    enc = FrameEncoder(seq=250)                                      # crosses the 255 -> 0 wrap
    transfers = [(DATA_KINDS[i % 4], rand_bytes(rng, n))
                 for i, n in enumerate([0, 1, 255, 256, 257, 700, 3])]
    data = b"".join(enc.encode(k, p) for k, p in transfers)
    expected = host_frames(data, seq_start=250)
    dut = FrameRx(timeout=50)
    # the receiver expects SEQ 0 after reset: start it with a RESET frame carrying 249
    data = encode_frame(FrameKind.RESET, 249, b"") + data
    res = rx_run(dut, list(data), n_frames=len(expected) + 1, idle=idle, bp=bp, status_bp=bp, seed=1)
    got = rx_frames(res["out"]["o_stream"])
    assert got == expected                                          # kinds, flags, whole payloads
    assert join_transfers([Frame(FrameKind(k), 0, p, s, e) for k, s, e, p in got]) == transfers
    ev = events(res["out"]["o_status"])
    assert ev[0] == StatusEvent(RxCode.OK, FrameKind.RESET, 249, 250)
    assert [(e.code, e.kind, e.seq) for e in ev[1:]] == \
        [(RxCode.OK, k, (250 + i) % 256) for i, (k, _, _, _) in enumerate(expected)]
    assert res["consumed"]["i_stream"] == len(data)


def test_rx_full_speed_one_byte_per_cycle():
    """Full frames back to back, no idle, no backpressure: the input takes one byte per cycle
    except one cycle per frame (the header decision), and the payload leaves at one byte per
    cycle: 256 payload bytes per 267 cycles."""
    rng = random.Random(12)
    n = 8
    payload = rand_bytes(rng, n * MAX_PAYLOAD)
    data = encode_frames(FrameKind.IMAGE, payload)
    res = rx_run(FrameRx(timeout=50), list(data), n_frames=n, seed=2)
    beats = res["out"]["o_stream"]
    assert bytes(unpack_fields(RX_BEAT, w)["data"] for w in beats) == payload
    stamps = res["stamps"]["o_stream"]
    # a frame's first byte leaves 3 cycles after its last line byte (frame decision, commit,
    # read register); the last frame's last byte 256 cycles later
    assert stamps[0] == (MAX_PAYLOAD + OVERHEAD + 1) + 3
    assert stamps[-1] == len(data) + n + 2 + MAX_PAYLOAD
    assert len(beats) / (stamps[-1] - stamps[0] + 1) > MAX_PAYLOAD / (MAX_PAYLOAD + OVERHEAD + 1) - 1e-9


@pytest.mark.parametrize("max_payload, depth", [(16, 1), (16, 4), (1, 2)])
def test_rx_small_geometries(max_payload, depth):
    rng = random.Random(max_payload * 10 + depth)
    enc = FrameEncoder(max_payload=max_payload)
    transfers = [(DATA_KINDS[i % 4], rand_bytes(rng, n)) for i, n in enumerate([0, 1, 15, 16, 17, 50])]
    data = b"".join(enc.encode(k, p) for k, p in transfers)
    expected = host_frames(data, max_payload=max_payload)
    dut = FrameRx(max_payload=max_payload, depth=depth, timeout=50)
    res = rx_run(dut, list(data), n_frames=len(expected), idle=0.3, bp=0.5, seed=3)
    assert rx_frames(res["out"]["o_stream"]) == expected
    assert [e.code for e in events(res["out"]["o_status"])] == [RxCode.OK] * len(expected)
    assert dut.memory_bytes == max_payload * depth


def corrupt(frame, how, rng):
    """A defective copy of ``frame`` (bytes) and the error code FrameRx must report."""
    f = bytearray(frame)
    typ, seq, length = f[2], f[3], f[4] | (f[5] << 8)
    if how == "payload":
        f[HEADER_SIZE + rng.randrange(length)] ^= 1 << rng.randrange(8)
        return bytes(f), RxCode.CRC
    if how == "crc":
        f[-1] ^= 0x40
        return bytes(f), RxCode.CRC
    if how == "header":
        f[3] ^= 0x04                                                 # SEQ
        return bytes(f), RxCode.HEADER_CRC
    if how == "type":                                                # unknown kind, header CRC good
        return _rehead(f, 0x09 | (typ & 0x30)), RxCode.TYPE
    if how == "length":                                              # LEN 300 > 256, header CRC good
        f[4], f[5] = 300 & 0xFF, 300 >> 8
        return _rehead(f, typ), RxCode.LENGTH
    raise ValueError(how)


def _rehead(f, typ):
    """The frame with TYPE replaced and a correct header CRC (frame CRC left as is)."""
    head = bytes([typ]) + bytes(f[3:6])
    return bytes(f[:2]) + head + crc16(head).to_bytes(2, "little") + bytes(f[HEADER_SIZE:])


@pytest.mark.parametrize("how", ["payload", "crc", "header", "type", "length"])
def test_rx_corrupted_frame_dropped_reported_next_received(how):
    """F0, F1 corrupted, then F1 again (what the host sends after the error report), F2."""
    rng = random.Random(hash(how) & 0xFFFF)
    enc = FrameEncoder()
    payloads = [rand_bytes(rng, 40, avoid=(0xA5,)) for _ in range(3)]
    frames = [enc.encode(FrameKind.IMAGE, p) for p in payloads]
    bad, code = corrupt(frames[1], how, rng)
    data = frames[0] + bad + frames[1] + frames[2]
    dut = FrameRx(timeout=64)
    res = rx_run(dut, list(data), n_frames=4, idle=0.2, bp=0.3, seed=5)
    got = rx_frames(res["out"]["o_stream"])
    assert [p for _, _, _, p in got] == payloads                    # the bad copy never came out
    oks, errors = split_events(res["out"]["o_status"])
    bad_seq = 1 ^ 0x04 if how == "header" else 1
    bad_kind = 9 if how == "type" else int(FrameKind.IMAGE)
    assert oks == [(FrameKind.IMAGE, 0), (FrameKind.IMAGE, 1), (FrameKind.IMAGE, 2)]
    assert errors == [StatusEvent(code, bad_kind, bad_seq, 1)]


def test_rx_go_back_after_error_sequence_drops_then_resend():
    """F0, F1 bad, F2 (sequence error: skipped by its LEN), then the host resends F1, F2, F3."""
    rng = random.Random(9)
    enc = FrameEncoder()
    payloads = [rand_bytes(rng, 100) for _ in range(4)]             # A5 5A inside payloads is fine
    frames = [enc.encode(FrameKind.WEIGHTS, p) for p in payloads]
    bad = bytearray(frames[1]); bad[HEADER_SIZE + 10] ^= 0xFF
    data = frames[0] + bytes(bad) + frames[2] + frames[1] + frames[2] + frames[3]
    res = rx_run(FrameRx(timeout=64), list(data), n_frames=6, idle=0.3, bp=0.3, seed=6)
    assert [p for _, _, _, p in rx_frames(res["out"]["o_stream"])] == payloads
    oks, errors = split_events(res["out"]["o_status"])
    assert [seq for _, seq in oks] == [0, 1, 2, 3]
    assert [(e.code, e.seq, e.expect) for e in errors] == [(RxCode.CRC, 1, 1), (RxCode.SEQUENCE, 2, 1)]


def test_rx_garbage_between_frames_is_skipped():
    rng = random.Random(4)
    enc = FrameEncoder()
    payloads = [rand_bytes(rng, 30) for _ in range(3)]
    frames = [enc.encode(FrameKind.TABLES, p) for p in payloads]
    junk = bytes([0x00, 0xA5, 0xA5, 0x13, 0xFF, 0x5A])              # no SYNC0 SYNC1 pair
    data = junk + frames[0] + junk + frames[1] + frames[2]
    res = rx_run(FrameRx(timeout=64), list(data), n_frames=3, idle=0.2, bp=0.2, seed=7)
    assert [p for _, _, _, p in rx_frames(res["out"]["o_stream"])] == payloads
    assert [e.code for e in events(res["out"]["o_status"])] == [RxCode.OK] * 3


@pytest.mark.parametrize("cut", [3, HEADER_SIZE + 20, HEADER_SIZE + 60 + 1])
def test_rx_truncated_frame_times_out_then_recovers(cut):
    timeout = 80
    rng = random.Random(cut)
    enc = FrameEncoder()
    payloads = [rand_bytes(rng, 60, avoid=(0xA5,)) for _ in range(3)]
    frames = [enc.encode(FrameKind.PROGRAM, p) for p in payloads]
    slow = []                                                       # F2 with pauses below the limit
    for i, b in enumerate(frames[2]):
        slow.append(b)
        if i % 17 == 5:
            slow.append(Gap(timeout - 3))
    data = list(frames[0]) + list(frames[1][:cut]) + [Gap(timeout + 40)] + list(frames[1]) + slow
    res = rx_run(FrameRx(timeout=timeout), data, n_frames=4, idle=0.0, bp=0.2, seed=8)
    assert [p for _, _, _, p in rx_frames(res["out"]["o_stream"])] == payloads
    oks, errors = split_events(res["out"]["o_status"])
    seq_seen = 1 if cut > 3 else 0                                  # cut=3: SEQ not yet received
    assert oks == [(FrameKind.PROGRAM, 0), (FrameKind.PROGRAM, 1), (FrameKind.PROGRAM, 2)]
    assert errors == [StatusEvent(RxCode.TIMEOUT, FrameKind.PROGRAM, seq_seen, 1)]
    # the timeout event comes `timeout` cycles after the last byte of the truncated frame
    last_byte_cycle = len(frames[0]) + cut                          # no idle on the input
    t_event = res["stamps"]["o_status"][[e.code for e in events(res["out"]["o_status"])].index(
        RxCode.TIMEOUT)]
    assert timeout <= t_event - last_byte_cycle <= timeout + 8, (t_event, last_byte_cycle)


def test_rx_reset_frame_unsticks_a_stalled_consumer():
    rng = random.Random(10)
    enc = FrameEncoder()
    stuck = [enc.encode(FrameKind.IMAGE, rand_bytes(rng, 50)) for _ in range(2)]   # fill 2 buffers
    reset = encode_frame(FrameKind.RESET, 40, b"")
    enc.seq = 41
    after = [rand_bytes(rng, 20) for _ in range(2)]
    later = [enc.encode(FrameKind.IMAGE, p) for p in after]
    data = list(b"".join(stuck)) + [Gap(60)] + list(reset) + [Gap(20)] + list(b"".join(later))
    t_release = len(data) + 40 + 60 + 20                            # consumer stalled until then
    dut = FrameRx(timeout=200)
    res = run_streams(dut, inputs={"i_stream": data},
                      outputs={"o_stream": lambda c: c > t_release, "o_status": 0.0},
                      until=lambda r: len(r["out"]["o_status"]) >= 3, watch=("o_reset",), seed=11,
                      withdraw="o_reset")
    assert [p for _, _, _, p in rx_frames(res["out"]["o_stream"])] == after
    ev = events(res["out"]["o_status"])
    assert ev == [StatusEvent(RxCode.OK, FrameKind.RESET, 40, 41),
                  StatusEvent(RxCode.OK, FrameKind.IMAGE, 41, 43),    # both committed by
                  StatusEvent(RxCode.OK, FrameKind.IMAGE, 42, 43)]    # the time they leave
    assert len(res["watch"]["o_reset"]) == 1                        # a one-cycle pulse
    t_reset = res["watch"]["o_reset"][0]
    # one header-decision cycle per frame; the RESET is decided in the cycle after its last byte,
    # the buffers are cleared at the end of the next one, and o_reset is high in the cycle after
    assert t_reset == (len(b"".join(stuck)) + 2) + 60 + (len(reset) + 1) + 1 + 1 + 1


def test_rx_reset_frame_is_taken_with_any_sequence_number_and_bad_reset_is_ignored():
    enc = FrameEncoder()
    f0 = enc.encode(FrameKind.TABLES, b"abc")
    bad_reset = bytearray(encode_frame(FrameKind.RESET, 200, b"")); bad_reset[-2] ^= 1
    f1 = enc.encode(FrameKind.TABLES, b"def")
    data = f0 + bytes(bad_reset) + f1
    dut = FrameRx(timeout=50)
    res = rx_run(dut, list(data), n_frames=3, seed=12, watch=("o_reset",))
    assert [p for _, _, _, p in rx_frames(res["out"]["o_stream"])] == [b"abc", b"def"]
    oks, errors = split_events(res["out"]["o_status"])
    assert oks == [(FrameKind.TABLES, 0), (FrameKind.TABLES, 1)]
    assert errors == [StatusEvent(RxCode.CRC, FrameKind.RESET, 200, 1)]
    assert res["watch"]["o_reset"] == []


def test_rx_rejects_kinds_it_was_not_built_for():
    enc = FrameEncoder()
    data = enc.encode(FrameKind.RESULT, b"xyz")                     # device -> host kind
    enc.seq = 0
    data += enc.encode(FrameKind.IMAGE, b"ok")
    res = rx_run(FrameRx(timeout=50), list(data), n_frames=2, seed=13)
    assert [p for _, _, _, p in rx_frames(res["out"]["o_stream"])] == [b"ok"]
    assert split_events(res["out"]["o_status"]) == (
        [(FrameKind.IMAGE, 0)], [StatusEvent(RxCode.TYPE, FrameKind.RESULT, 0, 0)])


# ------------------------------------------------------------------ FrameTx

def tx_beats(kind, payload, *, empty_last=False, noise=None):
    """TX_BEAT words of one transfer; ``empty_last``: the end comes as an extra empty beat;
    ``noise``: an rng that inserts empty non-last beats (which FrameTx must ignore)."""
    words = []
    for i, b in enumerate(payload):
        if noise is not None and noise.random() < 0.05:
            words.append(pack_fields(TX_BEAT, data=noise.randrange(256), kind=int(kind), last=0, empty=1))
        last = (i == len(payload) - 1) and not empty_last
        words.append(pack_fields(TX_BEAT, data=b, kind=int(kind), last=int(last), empty=0))
    if empty_last or not payload:
        words.append(pack_fields(TX_BEAT, data=0, kind=int(kind), last=1, empty=1))
    return words


def tx_expected(transfers, max_payload=MAX_PAYLOAD):
    """The bytes FrameTx must send for ``transfers`` [(kind, payload, empty_last)], seq from 0."""
    out, seq = b"", 0
    for kind, payload, empty_last in transfers:
        pieces = [payload[i:i + max_payload] for i in range(0, len(payload), max_payload)] or [b""]
        if empty_last and payload and len(payload) % max_payload == 0:
            pieces.append(b"")                                       # the end came after a full frame
        for i, piece in enumerate(pieces):
            out += encode_frame(kind, seq, piece, sot=(i == 0), eot=(i == len(pieces) - 1),
                                max_payload=max_payload)
            seq = (seq + 1) & 0xFF
    return out


@pytest.mark.parametrize("idle, bp", [(0.0, 0.0), (0.4, 0.4)])
def test_tx_roundtrip_into_host_decoder(idle, bp):
    rng = random.Random(20 + int(idle * 10))
    transfers = [(FrameKind.RESULT, rand_bytes(rng, n), e) for n, e in
                 [(0, False), (1, False), (255, False), (256, False), (257, False), (600, False),
                  (10, True), (256, True), (0, True)]]
    transfers.append((FrameKind.STATUS, bytes([0, 4, 7, 8]), False))
    words = [w for k, p, e in transfers for w in tx_beats(k, p, empty_last=e, noise=rng)]
    expected = tx_expected(transfers)
    dut = FrameTx()
    res = run_streams(dut, inputs={"i_stream": words}, outputs={"o_stream": bp},
                      until=lambda r: len(r["out"]["o_stream"]) >= len(expected), idle=idle, seed=21)
    out = bytes(res["out"]["o_stream"])
    assert out == expected
    dec = FrameDecoder(kinds=ALL_KINDS)
    frames = dec.feed(out)
    dec.finish()
    assert join_transfers(frames) == [(k, p) for k, p, _ in transfers]


def test_tx_full_speed_one_byte_per_cycle():
    """A long transfer, no idle, no backpressure: each frame is sent as soon as it is complete,
    the next one filling meanwhile; the output runs at one byte per cycle."""
    rng = random.Random(23)
    payload = rand_bytes(rng, 8 * MAX_PAYLOAD)
    words = tx_beats(FrameKind.RESULT, payload)
    expected = encode_frames(FrameKind.RESULT, payload)
    res = run_streams(FrameTx(), inputs={"i_stream": words}, outputs={"o_stream": 0.0}, seed=24,
                      until=lambda r: len(r["out"]["o_stream"]) >= len(expected), extra=20)
    assert bytes(res["out"]["o_stream"]) == expected
    stamps = res["stamps"]["o_stream"]
    assert stamps[0] == MAX_PAYLOAD + 3                             # commit, stage 1, output register
    assert stamps[-1] - stamps[0] + 1 == len(expected)              # no bubble at all


@pytest.mark.parametrize("max_payload, depth", [(16, 1), (4, 4)])
def test_tx_small_geometries(max_payload, depth):
    rng = random.Random(max_payload + depth)
    transfers = [(FrameKind.RESULT, rand_bytes(rng, n), e) for n, e in
                 [(0, False), (max_payload, False), (max_payload, True), (3 * max_payload + 1, False)]]
    words = [w for k, p, e in transfers for w in tx_beats(k, p, empty_last=e)]
    expected = tx_expected(transfers, max_payload)
    res = run_streams(FrameTx(max_payload=max_payload, depth=depth), inputs={"i_stream": words},
                      outputs={"o_stream": 0.3}, idle=0.3, seed=22,
                      until=lambda r: len(r["out"]["o_stream"]) >= len(expected))
    assert bytes(res["out"]["o_stream"]) == expected


# ------------------------------------------------------------------ whole link

def test_link_echo_status_frames_and_transfers():
    """LinkEcho (FrameLink + echo) at the byte level: transfers come back, STATUS per frame."""
    rng = random.Random(30)
    enc = FrameEncoder()
    transfers = [(FrameKind.IMAGE, rand_bytes(rng, 300)), (FrameKind.PROGRAM, b""),
                 (FrameKind.WEIGHTS, rand_bytes(rng, 5))]
    data = b"".join(enc.encode(k, p) for k, p in transfers)
    n_frames = 4
    n_out = len(data) + n_frames * (10 + 4)                         # echo + one STATUS frame each
    res = run_streams(LinkEcho(timeout=100), inputs={"i_stream": list(data)},
                      outputs={"o_stream": 0.3}, idle=0.3, seed=31,
                      until=lambda r: len(r["out"]["o_stream"]) >= n_out)
    frames = decode_frames(bytes(res["out"]["o_stream"]))
    status = [parse_status(f.payload) for f in frames if f.kind == FrameKind.STATUS]
    assert join_transfers([f for f in frames if f.kind != FrameKind.STATUS]) == transfers
    assert [(s.code, s.seq) for s in status] == [(RxCode.OK, i) for i in range(n_frames)]


def _uart_bits(byte):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [1]


def test_uart_end_to_end_echo():
    """host bytes -> UARTRx -> FrameRx -> echo -> FrameTx -> UARTTx -> host decoder, one corrupted
    frame on the way (reported in a STATUS frame, then resent by the host)."""
    divisor = 4
    rng = random.Random(40)
    enc = FrameEncoder()
    transfers = [(FrameKind.PROGRAM, rand_bytes(rng, 24)), (FrameKind.IMAGE, rand_bytes(rng, 270))]
    frames = [encode_frames(FrameKind.PROGRAM, transfers[0][1], seq_start=0)]
    image = encode_frames(FrameKind.IMAGE, transfers[1][1], seq_start=1)
    f1, f2 = image[:MAX_PAYLOAD + 10], image[MAX_PAYLOAD + 10:]
    bad = bytearray(f2); bad[HEADER_SIZE + 3] ^= 0x21
    line_bytes = frames[0] + f1 + bytes(bad) + f2                   # the host resends frame 2
    dut = UartLinkEcho(divisor=divisor, timeout=2000)
    received = bytearray()
    n_expect = len(frames[0]) + len(f1) + len(f2) + 4 * 14

    async def host_tx(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        for byte in line_bytes:
            for bit in _uart_bits(byte):
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(divisor)
            if rng.random() < 0.1:
                await ctx.tick().repeat(rng.randrange(1, 3 * divisor))

    async def host_rx(ctx):
        while len(received) < n_expect:
            await ctx.negedge(dut.tx)                                # start bit
            await ctx.tick().repeat(divisor // 2)
            assert ctx.get(dut.tx) == 0
            byte = 0
            for i in range(8):
                await ctx.tick().repeat(divisor)
                byte |= ctx.get(dut.tx) << i
            await ctx.tick().repeat(divisor)
            assert ctx.get(dut.tx) == 1, "stop bit"
            received.append(byte)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host_tx, background=True)
    sim.add_testbench(host_rx)
    sim.run_until((len(line_bytes) + n_expect) * 12 * divisor * 1e-6)
    assert len(received) == n_expect, f"received {len(received)} of {n_expect} bytes"
    frames_back = decode_frames(bytes(received))
    echoed = [f for f in frames_back if f.kind != FrameKind.STATUS]
    status = [parse_status(f.payload) for f in frames_back if f.kind == FrameKind.STATUS]
    assert join_transfers(echoed) == transfers
    assert [(s.code, s.kind, s.seq, s.expect) for s in status] == [
        (RxCode.OK, FrameKind.PROGRAM, 0, 1), (RxCode.OK, FrameKind.IMAGE, 1, 2),
        (RxCode.CRC, FrameKind.IMAGE, 2, 2), (RxCode.OK, FrameKind.IMAGE, 2, 3)]


# ------------------------------------------------------------------ parameters

def test_parameter_checks():
    with pytest.raises(ValueError, match="max_payload must be a power of two"):
        FrameRx(max_payload=200)
    with pytest.raises(ValueError, match="max_payload must be in 1..32768"):
        FrameTx(max_payload=65536)
    with pytest.raises(ValueError, match="depth .* power of two"):
        FrameTx(depth=3)
    with pytest.raises(TypeError, match="timeout must be an int"):
        FrameRx(timeout=1.5)
    with pytest.raises(ValueError, match="kinds must name at least one"):
        FrameRx(kinds=[])
    with pytest.raises(ValueError, match="kinds must be FrameKind"):
        FrameRx(kinds=[0])
    with pytest.raises(TypeError):
        FrameRx(256)                                                 # keyword-only
    with pytest.raises(ValueError, match="status_depth"):
        FrameLink(status_depth=0)
    assert FrameRx().memory_bytes == 512 and FrameTx().memory_bytes == 512
